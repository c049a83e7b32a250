// fuzz_capi.cc — libFuzzer target over the C ABI's selection, gather and
// compaction ops (grip_topk, grip_gumbel_topk, grip_gather_rows,
// grip_compact_kv, grip_compact_kv_inplace). The input picks an op, bounded
// dims, a dtype, a device (cpu or the SIMT emulator), the values, and now and
// then one corrupted argument (ndim, an extent, a dtype, a device, a NULL).
// Buffers always hold exactly what their descriptor says, so any crash or
// sanitizer report is grip's. Checks: a clean call returns GRIP_OK (or
// GRIP_ERR_RANGE exactly when the in-file reference finds a bad value) and
// matches the reference; a failed call names an error "expected ..." and
// leaves its outputs untouched. Build and run: scripts/fuzz-capi.sh.
#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "grip/grip.h"

namespace {

#define FUZZ_CHECK(cond, ...)                                  \
  do {                                                         \
    if (!(cond)) {                                             \
      std::fprintf(stderr, "fuzz_capi check failed: %s: ", #cond); \
      std::fprintf(stderr, __VA_ARGS__);                       \
      std::fprintf(stderr, "\n");                              \
      std::abort();                                            \
    }                                                          \
  } while (0)

size_t ElemSize(int dtype) { return (dtype == GRIP_F16 || dtype == GRIP_BF16) ? 2 : 4; }
// The dtype field as an int: a corrupted one is out of the C++ enum's range.
int RawDtype(const grip_tensor& t) {
  int raw;
  std::memcpy(&raw, &t.dtype, sizeof raw);
  return raw;
}

// A tensor and the bytes its descriptor promises.
struct Buf {
  std::vector<uint8_t> bytes;
  grip_tensor t{};
  bool null_pointer = false;  // pass NULL instead of &t
  grip_tensor* ptr() { return null_pointer ? nullptr : &t; }
};

int64_t Count(const grip_tensor& t) {
  if (t.ndim < 0 || t.ndim > GRIP_MAX_DIMS) return 0;
  __int128 n = 1;
  for (int i = 0; i < t.ndim; ++i) {
    if (t.shape[i] < 0) return 0;
    n *= t.shape[i];
    if (n > (1 << 20)) return -1;  // too big to back with memory: data stays NULL
  }
  return (int64_t)n;
}

// (Re)allocates the bytes for the descriptor; huge shapes get NULL data.
void Back(Buf& b, FuzzedDataProvider& in) {
  const int64_t n = Count(b.t);
  if (n < 0) {
    b.bytes.clear();
    b.t.data = nullptr;
    return;
  }
  b.bytes.assign((size_t)n * ElemSize(RawDtype(b.t)), 0);
  for (auto& byte : b.bytes) byte = in.remaining_bytes() ? in.ConsumeIntegral<uint8_t>() : 0;
  b.t.data = b.bytes.empty() ? nullptr : b.bytes.data();
}

Buf Make(grip_dtype dtype, grip_device device, std::initializer_list<int64_t> shape) {
  Buf b;
  b.t.dtype = dtype;
  b.t.device = device;
  b.t.ndim = (int32_t)shape.size();
  int i = 0;
  for (int64_t e : shape) b.t.shape[i++] = e;
  b.bytes.assign((size_t)Count(b.t) * ElemSize(dtype), 0);
  b.t.data = b.bytes.empty() ? nullptr : b.bytes.data();
  return b;
}

// One corruption of one tensor's descriptor.
void Corrupt(Buf& b, FuzzedDataProvider& in) {
  static const int64_t kHuge[] = {INT32_MAX, (int64_t)INT32_MAX + 1, 1 << 30, INT64_MAX, INT64_MIN, -1};
  switch (in.ConsumeIntegralInRange(0, 5)) {
    case 0: b.t.ndim = in.ConsumeIntegralInRange(-1, GRIP_MAX_DIMS + 1); break;
    case 1: {
      const int d = in.ConsumeIntegralInRange(0, GRIP_MAX_DIMS - 1);
      b.t.shape[d] = in.ConsumeBool() ? in.ConsumeIntegralInRange<int64_t>(-2, 9) : kHuge[in.ConsumeIntegralInRange(0, 5)];
      break;
    }
    case 2: { const int raw = in.ConsumeIntegralInRange(-1, 5); std::memcpy(&b.t.dtype, &raw, sizeof raw); break; }
    case 3: { const int raw = in.ConsumeIntegralInRange(-1, 4); std::memcpy(&b.t.device, &raw, sizeof raw); return; }  // memory unchanged
    case 4: b.t.data = nullptr; return;
    default: b.null_pointer = true; return;
  }
  Back(b, in);
}

float SmallFloat(FuzzedDataProvider& in) {
  const int code = in.ConsumeIntegralInRange(-12, 12);
  if (code == 12) return INFINITY;
  if (code == -12) return -INFINITY;
  if (code == 11) return NAN;
  if (code == -11) return -0.0f;
  return code * 0.5f;
}

void FillFloats(Buf& b, FuzzedDataProvider& in) {
  float* p = reinterpret_cast<float*>(b.bytes.data());
  for (size_t i = 0; i < b.bytes.size() / 4; ++i) p[i] = SmallFloat(in);
}

void FillInts(Buf& b, const std::vector<int32_t>& values) {
  if (!values.empty()) std::memcpy(b.bytes.data(), values.data(), values.size() * 4);
}

void ExpectFailureShape(grip_status status, const std::vector<Buf*>& outs,
                        const std::vector<std::vector<uint8_t>>& before) {
  if (status == GRIP_OK) return;
  const char* message = grip_last_error();
  FUZZ_CHECK(message != nullptr && std::strncmp(message, "expected ", 9) == 0, "status %d message '%s'",
             (int)status, message ? message : "(null)");
  for (size_t i = 0; i < outs.size(); ++i)
    FUZZ_CHECK(outs[i]->bytes == before[i], "a failed call (%d: %s) wrote output %zu", (int)status, message, i);
}

// A keep row for cache length T and K slots: valid (ascending, then -1) or junk.
std::vector<int32_t> KeepRows(FuzzedDataProvider& in, int64_t B, int64_t K, int64_t T, bool junk) {
  std::vector<int32_t> keep((size_t)(B * K), -1);
  for (int64_t b = 0; b < B; ++b) {
    if (junk) {
      for (int64_t k = 0; k < K; ++k) keep[b * K + k] = in.ConsumeIntegralInRange<int32_t>(-3, (int32_t)T + 1);
      continue;
    }
    const int64_t kept = in.ConsumeIntegralInRange<int64_t>(0, K);
    std::vector<int32_t> all((size_t)T);
    for (int64_t t = 0; t < T; ++t) all[t] = (int32_t)t;
    for (int64_t j = 0; j < kept; ++j) std::swap(all[j], all[j + in.ConsumeIntegralInRange<int64_t>(0, T - 1 - j)]);
    std::sort(all.begin(), all.begin() + kept);
    for (int64_t j = 0; j < kept; ++j) keep[b * K + j] = all[j];
  }
  return keep;
}

bool KeepValid(const std::vector<int32_t>& keep, int64_t B, int64_t K, int64_t T) {
  for (int64_t b = 0; b < B; ++b) {
    bool padding = false;
    int32_t last = -1;
    for (int64_t k = 0; k < K; ++k) {
      const int32_t v = keep[b * K + k];
      if (v < -1 || v >= T) return false;
      if (v == -1) { padding = true; continue; }
      if (padding || (k > 0 && v <= last)) return false;
      last = v;
    }
  }
  return true;
}

void FuzzGather(FuzzedDataProvider& in, grip_device dev, bool corrupt) {
  const int64_t B = in.ConsumeIntegralInRange(0, 3), N = in.ConsumeIntegralInRange(0, 9);
  const int64_t D = in.ConsumeIntegralInRange(0, 7), K = in.ConsumeIntegralInRange(0, 9);
  const grip_dtype dt = (grip_dtype)in.ConsumeIntegralInRange(0, 2);
  Buf x = Make(dt, dev, {B, N, D}), idx = Make(GRIP_I32, dev, {B, K}), out = Make(dt, dev, {B, K, D});
  for (auto& byte : x.bytes) byte = in.ConsumeIntegral<uint8_t>();
  std::vector<int32_t> indices((size_t)(B * K));
  bool valid = true;
  for (auto& v : indices) {
    v = in.ConsumeIntegralInRange<int32_t>(-1, (int32_t)N - 1);
    if (in.ConsumeIntegralInRange(0, 15) == 0) v = in.ConsumeIntegralInRange<int32_t>(-3, (int32_t)N + 2);
    valid = valid && v >= -1 && v < N;
  }
  FillInts(idx, indices);
  if (corrupt) { Buf* all[] = {&x, &idx, &out}; Corrupt(*all[in.ConsumeIntegralInRange(0, 2)], in); }
  const std::vector<std::vector<uint8_t>> before{out.bytes};
  const grip_status st = grip_gather_rows(x.ptr(), idx.ptr(), out.ptr());
  ExpectFailureShape(st, {&out}, before);
  if (corrupt) return;
  FUZZ_CHECK(st == (valid ? GRIP_OK : GRIP_ERR_RANGE), "gather status %d (%s), valid %d", (int)st, grip_last_error(), valid);
  if (st != GRIP_OK) return;
  const size_t row = (size_t)D * ElemSize(dt);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t k = 0; k < K; ++k) {
      const int32_t i = indices[b * K + k];
      const uint8_t* got = out.bytes.data() + (size_t)(b * K + k) * row;
      std::vector<uint8_t> want(row, 0);
      if (i >= 0 && row) std::memcpy(want.data(), x.bytes.data() + (size_t)(b * N + i) * row, row);
      FUZZ_CHECK(row == 0 || std::memcmp(got, want.data(), row) == 0, "gather row b=%lld k=%lld", (long long)b, (long long)k);
    }
}

void FuzzCompact(FuzzedDataProvider& in, grip_device dev, bool corrupt, bool inplace) {
  const int64_t B = in.ConsumeIntegralInRange(0, 3), H = in.ConsumeIntegralInRange(0, 3);
  const int64_t T = in.ConsumeIntegralInRange(0, 9), Dh = in.ConsumeIntegralInRange(0, 5);
  const int64_t K = in.ConsumeIntegralInRange<int64_t>(0, T + (in.ConsumeIntegralInRange(0, 7) == 0 ? 2 : 0));
  const grip_dtype dt = (grip_dtype)in.ConsumeIntegralInRange(0, 2);
  Buf cache = Make(dt, dev, {B, H, T, Dh}), keep = Make(GRIP_I32, dev, {B, K}), out = Make(dt, dev, {B, H, K, Dh});
  for (auto& byte : cache.bytes) byte = in.ConsumeIntegral<uint8_t>();
  const std::vector<int32_t> rows = KeepRows(in, B, std::min(K, T), T, in.ConsumeIntegralInRange(0, 5) == 0);
  std::vector<int32_t> keepv((size_t)(B * K), -1);
  const int64_t Kr = std::min(K, T);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t k = 0; k < Kr; ++k) keepv[b * K + k] = rows[b * Kr + k];
  FillInts(keep, keepv);
  const bool valid = K <= T && KeepValid(keepv, B, K, T);
  if (corrupt) { Buf* all[] = {&cache, &keep, &out}; Corrupt(*all[in.ConsumeIntegralInRange(0, inplace ? 1 : 2)], in); }
  const std::vector<uint8_t> original = cache.bytes;
  std::vector<int32_t> lengths((size_t)B + 1, 12345);
  const std::vector<int32_t> lengths_before = lengths;
  grip_status st;
  if (inplace) {
    st = grip_compact_kv_inplace(cache.ptr(), keep.ptr(), lengths.data());
    ExpectFailureShape(st, {&cache}, {original});
    if (st != GRIP_OK) FUZZ_CHECK(lengths == lengths_before, "a failed in-place compaction wrote new_lengths");
  } else {
    const std::vector<std::vector<uint8_t>> before{out.bytes};
    st = grip_compact_kv(cache.ptr(), keep.ptr(), out.ptr());
    ExpectFailureShape(st, {&out}, before);
  }
  if (corrupt) return;
  const grip_status want_status = valid ? GRIP_OK : (K > T ? GRIP_ERR_SHAPE : GRIP_ERR_RANGE);
  FUZZ_CHECK(st == want_status, "compact status %d (%s), want %d", (int)st, grip_last_error(), (int)want_status);
  if (st != GRIP_OK) return;
  const size_t row = (size_t)Dh * ElemSize(dt);
  for (int64_t b = 0; b < B; ++b) {
    int32_t kept = 0;
    while (kept < K && keepv[b * K + kept] >= 0) ++kept;
    if (inplace) FUZZ_CHECK(lengths[b] == kept, "new length %d, want %d", lengths[b], kept);
    for (int64_t h = 0; h < H; ++h)
      for (int64_t k = 0; k < (inplace ? T : K); ++k) {
        std::vector<uint8_t> want(row, 0);
        const uint8_t* src = original.data() + (size_t)((b * H + h) * T) * row;
        if (row == 0) continue;
        if (k < kept) std::memcpy(want.data(), src + (size_t)keepv[b * K + k] * row, row);
        else if (inplace) std::memcpy(want.data(), src + (size_t)k * row, row);  // left as it was
        const uint8_t* got = inplace ? cache.bytes.data() + (size_t)((b * H + h) * T + k) * row
                                     : out.bytes.data() + (size_t)((b * H + h) * K + k) * row;
        FUZZ_CHECK(row == 0 || std::memcmp(got, want.data(), row) == 0, "compact b=%lld h=%lld k=%lld",
                   (long long)b, (long long)h, (long long)k);
      }
  }
}

void FuzzTopk(FuzzedDataProvider& in, grip_device dev, bool corrupt) {
  const int64_t B = in.ConsumeIntegralInRange(0, 3), N = in.ConsumeIntegralInRange(0, 12);
  // Room for a corrupted B (extents up to 9; larger ones get NULL data and fail first).
  std::vector<int32_t> k(16, 0);
  int32_t max_k = 0;
  bool k_ok = true;
  for (int64_t b = 0; b < B; ++b) {
    k[b] = in.ConsumeIntegralInRange<int32_t>(0, (int32_t)N);
    if (in.ConsumeIntegralInRange(0, 15) == 0) k[b] = in.ConsumeIntegralInRange<int32_t>(-2, (int32_t)N + 2);
    k_ok = k_ok && k[b] >= 0 && k[b] <= N;
    max_k = std::max(max_k, k[b]);
  }
  Buf scores = Make(GRIP_F32, dev, {B, N}), idx = Make(GRIP_I32, dev, {B, max_k}), val = Make(GRIP_F32, dev, {B, max_k});
  FillFloats(scores, in);
  const float* s = reinterpret_cast<const float*>(scores.bytes.data());
  bool nan = false;
  for (int64_t i = 0; i < B * N; ++i) nan = nan || std::isnan(s[i]);
  if (corrupt) { Buf* all[] = {&scores, &idx, &val}; Corrupt(*all[in.ConsumeIntegralInRange(0, 2)], in); }
  // k_per_row is host memory of B entries: a larger B than it holds is a caller's lie, not grip's bug.
  if (scores.t.shape[0] > 16 || scores.t.shape[0] < 0) scores.t.shape[0] = B;
  const std::vector<std::vector<uint8_t>> before{idx.bytes, val.bytes};
  const grip_status st = grip_topk(scores.ptr(), k.data(), idx.ptr(), val.ptr());
  if (corrupt) { ExpectFailureShape(st, {&idx, &val}, before); return; }
  if (st != GRIP_OK) FUZZ_CHECK(std::strncmp(grip_last_error(), "expected ", 9) == 0, "message");
  FUZZ_CHECK(st == (!k_ok ? GRIP_ERR_RANGE : nan ? GRIP_ERR_RANGE : GRIP_OK), "topk status %d (%s)", (int)st, grip_last_error());
  if (st != GRIP_OK) return;
  const int32_t* gi = reinterpret_cast<const int32_t*>(idx.bytes.data());
  const float* gv = reinterpret_cast<const float*>(val.bytes.data());
  for (int64_t b = 0; b < B; ++b) {
    std::vector<int32_t> order((size_t)N);
    for (int64_t n = 0; n < N; ++n) order[n] = (int32_t)n;
    std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t c) { return s[b * N + a] > s[b * N + c]; });
    std::sort(order.begin(), order.begin() + k[b]);
    for (int32_t j = 0; j < max_k; ++j) {
      const int32_t want = j < k[b] ? order[j] : -1;
      FUZZ_CHECK(gi[b * max_k + j] == want, "topk index b=%lld j=%d: %d, want %d", (long long)b, j, gi[b * max_k + j], want);
      const float wv = want >= 0 ? s[b * N + want] : -INFINITY;
      FUZZ_CHECK(std::memcmp(&gv[b * max_k + j], &wv, 4) == 0, "topk value b=%lld j=%d", (long long)b, j);
    }
  }
}

void FuzzGumbel(FuzzedDataProvider& in, grip_device dev, bool corrupt) {
  const int64_t B = in.ConsumeIntegralInRange(0, 3), N = in.ConsumeIntegralInRange(0, 10);
  int32_t k = in.ConsumeIntegralInRange<int32_t>(0, (int32_t)N), G = in.ConsumeIntegralInRange(1, 4);
  if (in.ConsumeIntegralInRange(0, 15) == 0) k = in.ConsumeIntegralInRange<int32_t>(-2, (int32_t)N + 2);
  if (in.ConsumeIntegralInRange(0, 15) == 0) G = in.ConsumeIntegralInRange(-1, 0);
  const uint64_t seed = in.ConsumeIntegral<uint64_t>();
  const int32_t kk = std::max(k, 0), gg = std::max(G, 0);
  Buf logits = Make(GRIP_F32, dev, {B, N}), idx = Make(GRIP_I32, dev, {B, gg, kk}), lp = Make(GRIP_F32, dev, {B, gg});
  FillFloats(logits, in);
  const float* l = reinterpret_cast<const float*>(logits.bytes.data());
  bool bad = false;
  for (int64_t i = 0; i < B * N; ++i) bad = bad || !(l[i] < INFINITY);
  if (corrupt) { Buf* all[] = {&logits, &idx, &lp}; Corrupt(*all[in.ConsumeIntegralInRange(0, 2)], in); }
  const std::vector<std::vector<uint8_t>> before{idx.bytes, lp.bytes};
  const grip_status st = grip_gumbel_topk(logits.ptr(), k, G, seed, idx.ptr(), lp.ptr());
  ExpectFailureShape(st, {&idx, &lp}, before);
  if (corrupt) return;
  const bool args_ok = k >= 0 && k <= N && G >= 1;
  FUZZ_CHECK(st == (args_ok && !bad ? GRIP_OK : GRIP_ERR_RANGE), "gumbel status %d (%s)", (int)st, grip_last_error());
  if (st != GRIP_OK) return;
  // Distinct in-range draws whose Plackett-Luce log-probability (in double, here) matches.
  const int32_t* gi = reinterpret_cast<const int32_t*>(idx.bytes.data());
  const float* glp = reinterpret_cast<const float*>(lp.bytes.data());
  for (int64_t b = 0; b < B; ++b)
    for (int32_t g = 0; g < G; ++g) {
      std::vector<bool> used((size_t)N, false);
      double want = 0;
      for (int32_t j = 0; j < k; ++j) {
        const int32_t i = gi[(b * G + g) * k + j];
        FUZZ_CHECK(i >= 0 && i < N && !used[i], "gumbel draw b=%lld g=%d j=%d: %d", (long long)b, g, j, i);
        double m = -INFINITY, sum = 0;
        for (int64_t n = 0; n < N; ++n) if (!used[n]) m = std::max(m, (double)l[b * N + n]);
        for (int64_t n = 0; n < N; ++n) if (!used[n] && m > -INFINITY) sum += std::exp((double)l[b * N + n] - m);
        want += (double)l[b * N + i] == -INFINITY ? -INFINITY : (double)l[b * N + i] - (m + std::log(sum));
        used[i] = true;
      }
      const double got = glp[b * G + g];
      FUZZ_CHECK(want == -INFINITY ? got == -INFINITY : std::fabs(got - want) <= 1e-5 * (1 + std::fabs(want)),
                 "gumbel log_prob b=%lld g=%d: %.9g, want %.9g", (long long)b, g, got, want);
    }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  grip_set_num_threads(2);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  const int op = in.ConsumeIntegralInRange(0, 4);
  // The emulator runs the CUDA kernels (slow: fibers), one call in eight.
  const grip_device dev = in.ConsumeIntegralInRange(0, 7) == 0 ? GRIP_DEVICE_EMU : GRIP_DEVICE_CPU;
  const bool corrupt = in.ConsumeIntegralInRange(0, 3) == 0;
  switch (op) {
    case 0: FuzzTopk(in, dev, corrupt); break;
    case 1: FuzzGumbel(in, dev, corrupt); break;
    case 2: FuzzGather(in, dev, corrupt); break;
    case 3: FuzzCompact(in, dev, corrupt, false); break;
    default: FuzzCompact(in, dev, corrupt, true); break;
  }
  return 0;
}
