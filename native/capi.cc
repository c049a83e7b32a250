// capi.cc — the C ABI: checks every argument (shapes, dtypes, devices,
// ranges), fills the validated argument structs and dispatches to the backend
// that owns the memory (grip::cpu, grip::cuda or grip::emu). Nothing here
// throws: exceptions from a backend become GRIP_ERR_INTERNAL.
#include <cmath>
#include <cstring>
#include <exception>
#include <new>
#include <string>
#include <algorithm>
#include <vector>

#include "core/backend.h"
#include "core/cpu_features.h"
#include "core/threadpool.h"
#include "cpu/q8_0.h"
#include "grip/grip.h"

#if defined(GRIP_WITH_CUDA)
#include <cuda_runtime.h>
#endif

namespace simt {
enum class Schedule : int;
void set_schedule(Schedule schedule, uint64_t seed);
}  // namespace simt

namespace grip {
namespace {

thread_local std::string g_last_error;

grip_status Report(const Status& status) {
  g_last_error = status.message;
  return status.code;
}

}  // namespace

grip_status ReportStatus(const Status& status) { return Report(status); }

namespace {

// Runs a backend op, turning a stray C++ exception into an error code.
template <typename F>
grip_status Guard(F&& body) {
  try {
    return Report(body());
  } catch (const std::bad_alloc&) {
    return Report(Error(GRIP_ERR_INTERNAL, "enough memory", "the op", "an allocation failure"));
  } catch (const std::exception& e) {
    return Report(Error(GRIP_ERR_INTERNAL, "no internal error", "the op", e.what()));
  } catch (...) {
    return Report(Error(GRIP_ERR_INTERNAL, "no internal error", "the op", "an unknown exception"));
  }
}

const char* DTypeName(int dtype) {
  switch (dtype) {
    case GRIP_F32: return "f32";
    case GRIP_F16: return "f16";
    case GRIP_BF16: return "bf16";
    case GRIP_I32: return "i32";
    case GRIP_Q8_0: return "q8_0";
    default: return "an unknown dtype";
  }
}

const char* DeviceName(int device) {
  switch (device) {
    case GRIP_DEVICE_CPU: return "cpu";
    case GRIP_DEVICE_CUDA: return "cuda";
    case GRIP_DEVICE_EMU: return "emu";
    default: return "an unknown device";
  }
}

std::string ShapeString(const int64_t* shape, int ndim) {
  std::string s = "[";
  for (int i = 0; i < ndim; ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

int64_t NumElements(const grip_tensor& t) {
  int64_t n = 1;
  for (int i = 0; i < t.ndim; ++i) n *= t.shape[i];
  return n;
}

enum DTypeSet { kF32Only, kFloatAny, kI32Only, kWeightAny, kQ8Only };

const char* DTypeSetName(DTypeSet set) {
  switch (set) {
    case kF32Only: return "f32";
    case kFloatAny: return "f32, f16 or bf16";
    case kWeightAny: return "f32, f16, bf16 or q8_0";
    case kQ8Only: return "q8_0";
    default: return "i32";
  }
}

bool InSet(grip_dtype dtype, DTypeSet set) {
  switch (set) {
    case kF32Only: return dtype == GRIP_F32;
    case kFloatAny: return dtype == GRIP_F32 || dtype == GRIP_F16 || dtype == GRIP_BF16;
    case kWeightAny: return dtype == GRIP_F32 || dtype == GRIP_F16 || dtype == GRIP_BF16 || dtype == GRIP_Q8_0;
    case kQ8Only: return dtype == GRIP_Q8_0;
    default: return dtype == GRIP_I32;
  }
}

// Checks one tensor against an expected shape (-1 = any extent, recorded into
// `extents` on first sight so that later tensors must agree) and dtype set.
struct Checker {
  grip_device device = GRIP_DEVICE_CPU;
  const char* first_name = nullptr;

  Status Tensor(const grip_tensor* t, const char* name, int ndim, const int64_t* expected,
                DTypeSet dtypes, const char* layout) {
    if (t == nullptr) return Error(GRIP_ERR_SHAPE, "a tensor", name, "NULL");
    if (t->ndim != ndim || t->ndim < 0 || t->ndim > GRIP_MAX_DIMS) {
      const int shown = (t->ndim >= 0 && t->ndim <= GRIP_MAX_DIMS) ? t->ndim : 0;
      return Error(GRIP_ERR_SHAPE, std::to_string(ndim) + " dimensions " + layout, name,
                   std::to_string(t->ndim) + " dimensions " + ShapeString(t->shape, shown));
    }
    for (int i = 0; i < ndim; ++i) {
      if (t->shape[i] < 0 || t->shape[i] > INT32_MAX)
        return Error(GRIP_ERR_SHAPE, "extents in [0, 2147483647] " + std::string(layout), name,
                     ShapeString(t->shape, ndim));
    }
    // The byte count of the view must fit in int64 (8 extents of 2^31 - 1 do not),
    // so that no backend's offset arithmetic wraps around.
    int64_t bytes = 8;
    for (int i = 0; i < ndim; ++i) {
      if (__builtin_mul_overflow(bytes, t->shape[i], &bytes))
        return Error(GRIP_ERR_SHAPE, "fewer than 2^60 elements " + std::string(layout), name,
                     ShapeString(t->shape, ndim));
    }
    if (expected != nullptr) {
      for (int i = 0; i < ndim; ++i) {
        if (expected[i] >= 0 && expected[i] != t->shape[i])
          return Error(GRIP_ERR_SHAPE, ShapeString(expected, ndim) + " " + layout, name,
                       ShapeString(t->shape, ndim));
      }
    }
    // A C caller may store any int in the enum fields; loading an out-of-range
    // value as the C++ enum is undefined (UBSan, found by fuzz_capi), so read the int.
    int raw_dtype, raw_device;
    std::memcpy(&raw_dtype, &t->dtype, sizeof raw_dtype);
    std::memcpy(&raw_device, &t->device, sizeof raw_device);
    if (raw_dtype < GRIP_F32 || raw_dtype > GRIP_Q8_0 || !InSet(t->dtype, dtypes))
      return Error(GRIP_ERR_DTYPE, DTypeSetName(dtypes), std::string("dtype of ") + name,
                   DTypeName(raw_dtype));
    if (raw_device != GRIP_DEVICE_CPU && raw_device != GRIP_DEVICE_CUDA &&
        raw_device != GRIP_DEVICE_EMU)
      return Error(GRIP_ERR_DEVICE, "cpu, cuda or emu", std::string("device of ") + name,
                   DeviceName(raw_device));
    if (first_name == nullptr) {
      first_name = name;
      device = t->device;
    } else if (t->device != device) {
      return Error(GRIP_ERR_DEVICE,
                   std::string("the device of ") + first_name + " (" + DeviceName(device) + ")",
                   name, DeviceName(t->device));
    }
    if (t->data == nullptr && NumElements(*t) > 0)
      return Error(GRIP_ERR_SHAPE, "a data pointer", name, "NULL");
    return Status::Ok();
  }
};

template <typename Args>
Status Dispatch(grip_device device, Status (*cpu_op)(const Args&), Status (*cuda_op)(const Args&),
                Status (*emu_op)(const Args&), const Args& args) {
  switch (device) {
    case GRIP_DEVICE_CUDA: return cuda_op(args);
    case GRIP_DEVICE_EMU: return emu_op(args);
    default: return cpu_op(args);
  }
}

#define GRIP_DISPATCH(device, op, args) Dispatch(device, &cpu::op, &cuda::op, &emu::op, args)

// The scorer's params: shapes follow from D (x), H (b1) and R (wq).
Status CheckScorer(Checker& c, const grip_scorer_params* p, int64_t D, int64_t* H, int64_t* R,
                   const char* prefix) {
  if (p == nullptr) {
    std::string what = prefix;  // "params." -> "params"
    if (!what.empty() && what.back() == '.') what.pop_back();
    return Error(GRIP_ERR_SHAPE, "scorer params", what, "NULL");
  }
  const std::string pre = prefix;
  auto name = [&](const char* field) { return pre + field; };
  std::string n;
  const int64_t d1[1] = {D};
  GRIP_RETURN_IF_ERROR(c.Tensor(&p->ln_weight, (n = name("lnWeight")).c_str(), 1, d1, kF32Only, "[D]"));
  GRIP_RETURN_IF_ERROR(c.Tensor(&p->ln_bias, (n = name("lnBias")).c_str(), 1, d1, kF32Only, "[D]"));
  GRIP_RETURN_IF_ERROR(c.Tensor(&p->b1, (n = name("b1")).c_str(), 1, nullptr, kF32Only, "[H]"));
  *H = p->b1.shape[0];
  if (*H < 1) return Error(GRIP_ERR_SHAPE, "H >= 1 [H]", name("b1"), ShapeString(p->b1.shape, 1));
  const int64_t w1[2] = {D, *H};
  GRIP_RETURN_IF_ERROR(c.Tensor(&p->w1, (n = name("w1")).c_str(), 2, w1, kF32Only, "[D,H]"));
  const int64_t fw[2] = {kFourierFeatures, 2 * *H};
  GRIP_RETURN_IF_ERROR(c.Tensor(&p->film_w, (n = name("filmW")).c_str(), 2, fw, kF32Only, "[16,2H]"));
  const int64_t fb[1] = {2 * *H};
  GRIP_RETURN_IF_ERROR(c.Tensor(&p->film_b, (n = name("filmB")).c_str(), 1, fb, kF32Only, "[2H]"));
  const int64_t h1[1] = {*H};
  GRIP_RETURN_IF_ERROR(c.Tensor(&p->w2, (n = name("w2")).c_str(), 1, h1, kF32Only, "[H]"));
  const int64_t one[1] = {1};
  GRIP_RETURN_IF_ERROR(c.Tensor(&p->b2, (n = name("b2")).c_str(), 1, one, kF32Only, "[1]"));
  GRIP_RETURN_IF_ERROR(c.Tensor(&p->wq, (n = name("wq")).c_str(), 2, nullptr, kF32Only, "[D,R]"));
  *R = p->wq.shape[1];
  const int64_t wq[2] = {D, *R};
  GRIP_RETURN_IF_ERROR(c.Tensor(&p->wq, (n = name("wq")).c_str(), 2, wq, kF32Only, "[D,R]"));
  if (*R < 1) return Error(GRIP_ERR_SHAPE, "R >= 1 [D,R]", name("wq"), ShapeString(p->wq.shape, 2));
  GRIP_RETURN_IF_ERROR(c.Tensor(&p->wk, (n = name("wk")).c_str(), 2, wq, kF32Only, "[D,R]"));
  return Status::Ok();
}

ScorerParamPtrs ParamPtrs(const grip_scorer_params& p) {
  auto f = [](const grip_tensor& t) { return static_cast<const float*>(t.data); };
  return {f(p.ln_weight), f(p.ln_bias), f(p.w1), f(p.b1), f(p.film_w),
          f(p.film_b),    f(p.w2),      f(p.b2), f(p.wq), f(p.wk)};
}

ScorerGradPtrs GradPtrs(const grip_scorer_params& p) {
  auto f = [](const grip_tensor& t) { return static_cast<float*>(t.data); };
  return {f(p.ln_weight), f(p.ln_bias), f(p.w1), f(p.b1), f(p.film_w),
          f(p.film_b),    f(p.w2),      f(p.b2), f(p.wq), f(p.wk)};
}

// keep_ratio values are checked on the host only when the tensor is on the
// host; on CUDA the scorer kernels clamp nothing and trust the caller (the TS
// layer validates before uploading).
Status CheckKeepRatio(const grip_tensor& t) {
  if (t.device == GRIP_DEVICE_CUDA) return Status::Ok();
  const float* r = static_cast<const float*>(t.data);
  for (int64_t b = 0; b < t.shape[0]; ++b) {
    if (!(r[b] > 0.f && r[b] <= 1.f))
      return Error(GRIP_ERR_RANGE, "values in (0, 1]", "keepRatio",
                   std::to_string(r[b]) + " at [" + std::to_string(b) + "]");
  }
  return Status::Ok();
}

Status ScoreCommon(Checker& c, const grip_tensor* x, const grip_tensor* query,
                   const grip_tensor* keep_ratio, const grip_scorer_params* params,
                   ScoreArgs* args) {
  GRIP_RETURN_IF_ERROR(c.Tensor(x, "x", 3, nullptr, kFloatAny, "[B,N,D]"));
  const int64_t B = x->shape[0], N = x->shape[1], D = x->shape[2];
  const int64_t q[2] = {B, D};
  GRIP_RETURN_IF_ERROR(c.Tensor(query, "query", 2, q, kF32Only, "[B,D]"));
  const int64_t r[1] = {B};
  GRIP_RETURN_IF_ERROR(c.Tensor(keep_ratio, "keepRatio", 1, r, kF32Only, "[B]"));
  int64_t H = 0, R = 0;
  GRIP_RETURN_IF_ERROR(CheckScorer(c, params, D, &H, &R, "params."));
  GRIP_RETURN_IF_ERROR(CheckKeepRatio(*keep_ratio));
  args->x = x->data;
  args->x_dtype = x->dtype;
  args->query = static_cast<const float*>(query->data);
  args->keep_ratio = static_cast<const float*>(keep_ratio->data);
  args->params = ParamPtrs(*params);
  args->B = B; args->N = N; args->D = D; args->H = H; args->R = R;
  return Status::Ok();
}

// A "[..., D]" tensor: any rank >= 1 (at most GRIP_MAX_DIMS); M = the product
// of the leading extents, *last = the last extent.
Status CheckRows(Checker& c, const grip_tensor* t, const char* name, DTypeSet dtypes,
                 const char* layout, int64_t* M, int64_t* last) {
  if (t == nullptr) return Error(GRIP_ERR_SHAPE, "a tensor", name, "NULL");
  if (t->ndim < 1 || t->ndim > GRIP_MAX_DIMS)
    return Error(GRIP_ERR_SHAPE, std::string("1 to 8 dimensions ") + layout, name,
                 std::to_string(t->ndim) + " dimensions");
  GRIP_RETURN_IF_ERROR(c.Tensor(t, name, t->ndim, nullptr, dtypes, layout));
  *last = t->shape[t->ndim - 1];
  *M = 1;
  for (int i = 0; i + 1 < t->ndim; ++i) *M *= t->shape[i];
  return Status::Ok();
}

// A tensor of any rank (0..8).
Status CheckAny(Checker& c, const grip_tensor* t, const char* name, DTypeSet dtypes) {
  if (t == nullptr) return Error(GRIP_ERR_SHAPE, "a tensor", name, "NULL");
  if (t->ndim < 0 || t->ndim > GRIP_MAX_DIMS)
    return Error(GRIP_ERR_SHAPE, "0 to 8 dimensions (any shape)", name,
                 std::to_string(t->ndim) + " dimensions");
  return c.Tensor(t, name, t->ndim, nullptr, dtypes, "(any shape)");
}

// out with exactly `like`'s shape (ndim extents), f32.
Status CheckOutLike(Checker& c, const grip_tensor* out, int ndim, const int64_t* shape,
                    const char* layout) {
  return c.Tensor(out, "out", ndim, shape, kF32Only, layout);
}

// A host array of B int32 values, each in [lo, hi]; NULL -> ok (a default).
Status CheckHostRange(const int32_t* values, int64_t n, int64_t lo, int64_t hi, const char* name) {
  if (values == nullptr) return Status::Ok();
  for (int64_t i = 0; i < n; ++i) {
    if (values[i] < lo || values[i] > hi)
      return Error(GRIP_ERR_RANGE,
                   "values in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]", name,
                   std::to_string(values[i]) + " at [" + std::to_string(i) + "]");
  }
  return Status::Ok();
}

Status CheckLogits(Checker& c, const grip_tensor* logits) {
  return c.Tensor(logits, "logits", 2, nullptr, kF32Only, "[B,N]");
}

// A q8_0 matrix [N,K]: whole blocks of 32 along each row, in host memory (no CUDA kernels).
Status CheckQ8_0(const grip_tensor& t, const char* name) {
  if (t.shape[1] % 32 != 0)
    return Error(GRIP_ERR_SHAPE, "a row length K that is a multiple of 32 (q8_0 blocks)", name,
                 "K = " + std::to_string(t.shape[1]));
  if (t.device != GRIP_DEVICE_CPU)
    return Error(GRIP_ERR_UNSUPPORTED, "a cpu tensor (q8_0 has CPU kernels only)", std::string("device of ") + name,
                 DeviceName(t.device));
  return Status::Ok();
}

}  // namespace
}  // namespace grip

using namespace grip;

extern "C" {

const char* grip_last_error(void) { return g_last_error.c_str(); }
const char* grip_version(void) { return "0.1.0"; }
const char* grip_simd(void) { return simd_level(); }
const char* grip_q8_0_kernel(void) { return grip::cpu::q8_0_kernel_name(); }
int grip_num_threads(void) { return num_threads(); }

grip_status grip_set_num_threads(int n) {
  if (n < 0 || n > 256)
    return Report(Error(GRIP_ERR_RANGE, "an integer in [0, 256]", "threads", std::to_string(n)));
  set_num_threads(n);
  return Report(Status::Ok());
}

size_t grip_dtype_size(grip_dtype dtype) {
  return (dtype == GRIP_F16 || dtype == GRIP_BF16) ? 2 : (dtype == GRIP_F32 || dtype == GRIP_I32) ? 4 : 0;
}

size_t grip_storage_bytes(grip_dtype dtype, int64_t count) {
  if (count < 0) return 0;
  if (dtype == GRIP_Q8_0) return count % 32 == 0 ? (size_t)(count / 32 * 34) : 0;
  return (size_t)count * grip_dtype_size(dtype);
}

#if defined(GRIP_WITH_CUDA)
static grip_status CudaReport(cudaError_t err, const char* what) {
  if (err == cudaSuccess) return Report(Status::Ok());
  cudaGetLastError();  // clear the sticky-free error state
  return Report(Error(GRIP_ERR_CUDA, "cudaSuccess", what, cudaGetErrorString(err)));
}
int grip_cuda_compiled(void) { return 1; }
int grip_cuda_device_count(void) {
  int count = 0;
  // Without a driver this is cudaErrorInsufficientDriver (35), not "no
  // device": any error means no usable GPU.
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return count;
}
grip_status grip_cuda_malloc(size_t bytes, void** out) {
  if (out == nullptr) return Report(Error(GRIP_ERR_RANGE, "an output pointer", "out", "NULL"));
  *out = nullptr;
  if (grip_cuda_device_count() == 0)
    return Report(Error(GRIP_ERR_DEVICE, "a visible CUDA device", "cuda malloc", "none"));
  return CudaReport(cudaMalloc(out, bytes ? bytes : 1), "cudaMalloc");
}
grip_status grip_cuda_free(void* ptr) { return CudaReport(cudaFree(ptr), "cudaFree"); }
grip_status grip_cuda_mem_info(size_t* free_bytes, size_t* total_bytes) {
  if (free_bytes == nullptr || total_bytes == nullptr)
    return Report(Error(GRIP_ERR_RANGE, "two output pointers", "free_bytes, total_bytes", "NULL"));
  *free_bytes = *total_bytes = 0;
  if (grip_cuda_device_count() == 0)
    return Report(Error(GRIP_ERR_DEVICE, "a visible CUDA device", "cuda mem info", "none"));
  return CudaReport(cudaMemGetInfo(free_bytes, total_bytes), "cudaMemGetInfo");
}
grip_status grip_cuda_memcpy_to_device(void* dst, const void* src, size_t bytes) {
  return CudaReport(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice), "cudaMemcpy to device");
}
grip_status grip_cuda_memcpy_to_host(void* dst, const void* src, size_t bytes) {
  return CudaReport(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost), "cudaMemcpy to host");
}
#else
static grip_status NoCuda(const char* what) {
  return Report(Error(GRIP_ERR_UNSUPPORTED, "a build with CUDA", what, "a CPU-only build"));
}
int grip_cuda_compiled(void) { return 0; }
int grip_cuda_device_count(void) { return 0; }
grip_status grip_cuda_malloc(size_t, void** out) {
  if (out) *out = nullptr;
  return NoCuda("cuda malloc");
}
grip_status grip_cuda_free(void*) { return NoCuda("cuda free"); }
grip_status grip_cuda_mem_info(size_t* free_bytes, size_t* total_bytes) {
  if (free_bytes) *free_bytes = 0;
  if (total_bytes) *total_bytes = 0;
  return NoCuda("cuda mem info");
}
grip_status grip_cuda_memcpy_to_device(void*, const void*, size_t) { return NoCuda("cuda memcpy"); }
grip_status grip_cuda_memcpy_to_host(void*, const void*, size_t) { return NoCuda("cuda memcpy"); }
#endif

grip_status grip_emu_set_schedule(int schedule, uint64_t seed) {
  if (schedule < 0 || schedule > 2)
    return Report(Error(GRIP_ERR_RANGE, "0 (forward), 1 (reverse) or 2 (random)", "schedule",
                        std::to_string(schedule)));
  simt::set_schedule(static_cast<simt::Schedule>(schedule), seed);
  return Report(Status::Ok());
}

grip_status grip_score_tokens(const grip_tensor* x, const grip_tensor* query,
                              const grip_tensor* keep_ratio, const grip_scorer_params* params,
                              grip_tensor* scores) {
  return Guard([&]() -> Status {
    Checker c;
    ScoreForwardArgs args{};
    GRIP_RETURN_IF_ERROR(ScoreCommon(c, x, query, keep_ratio, params, &args));
    const int64_t s[2] = {args.B, args.N};
    GRIP_RETURN_IF_ERROR(c.Tensor(scores, "scores", 2, s, kF32Only, "[B,N]"));
    args.scores = static_cast<float*>(scores->data);
    return GRIP_DISPATCH(c.device, score_tokens, args);
  });
}

grip_status grip_score_tokens_backward(const grip_tensor* x, const grip_tensor* query,
                                       const grip_tensor* keep_ratio,
                                       const grip_scorer_params* params,
                                       const grip_tensor* d_scores, grip_scorer_params* grads) {
  return Guard([&]() -> Status {
    Checker c;
    ScoreBackwardArgs args{};
    GRIP_RETURN_IF_ERROR(ScoreCommon(c, x, query, keep_ratio, params, &args));
    const int64_t s[2] = {args.B, args.N};
    GRIP_RETURN_IF_ERROR(c.Tensor(d_scores, "dScores", 2, s, kF32Only, "[B,N]"));
    int64_t H = 0, R = 0;
    GRIP_RETURN_IF_ERROR(CheckScorer(c, grads, args.D, &H, &R, "grads."));
    if (H != args.H || R != args.R)
      return Error(GRIP_ERR_SHAPE, "the shapes of params", "grads",
                   "H = " + std::to_string(H) + ", R = " + std::to_string(R));
    args.d_scores = static_cast<const float*>(d_scores->data);
    args.grads = GradPtrs(*grads);
    return GRIP_DISPATCH(c.device, score_tokens_backward, args);
  });
}

grip_status grip_topk(const grip_tensor* scores, const int32_t* k_per_row, grip_tensor* indices,
                      grip_tensor* values) {
  return Guard([&]() -> Status {
    Checker c;
    GRIP_RETURN_IF_ERROR(c.Tensor(scores, "scores", 2, nullptr, kF32Only, "[B,N]"));
    const int64_t B = scores->shape[0], N = scores->shape[1];
    if (k_per_row == nullptr && B > 0) return Error(GRIP_ERR_SHAPE, "k per row", "k", "NULL");
    int64_t max_k = 0;
    for (int64_t b = 0; b < B; ++b) {
      if (k_per_row[b] < 0 || k_per_row[b] > N)
        return Error(GRIP_ERR_RANGE, "k in [0, " + std::to_string(N) + "]", "k",
                     std::to_string(k_per_row[b]) + " at [" + std::to_string(b) + "]");
      if (k_per_row[b] > max_k) max_k = k_per_row[b];
    }
    const int64_t out[2] = {B, max_k};
    GRIP_RETURN_IF_ERROR(c.Tensor(indices, "indices", 2, out, kI32Only, "[B,maxK]"));
    GRIP_RETURN_IF_ERROR(c.Tensor(values, "values", 2, out, kF32Only, "[B,maxK]"));
    TopkArgs args{static_cast<const float*>(scores->data), k_per_row, B, N, max_k,
                  static_cast<int32_t*>(indices->data), static_cast<float*>(values->data)};
    return GRIP_DISPATCH(c.device, topk, args);
  });
}

grip_status grip_gumbel_topk(const grip_tensor* logits, int32_t k, int32_t samples, uint64_t seed,
                             grip_tensor* indices, grip_tensor* log_prob) {
  return Guard([&]() -> Status {
    Checker c;
    GRIP_RETURN_IF_ERROR(CheckLogits(c, logits));
    const int64_t B = logits->shape[0], N = logits->shape[1];
    if (k < 0 || k > N)
      return Error(GRIP_ERR_RANGE, "k in [0, " + std::to_string(N) + "]", "k", std::to_string(k));
    if (samples < 1)
      return Error(GRIP_ERR_RANGE, "an integer >= 1", "samples", std::to_string(samples));
    const int64_t idx[3] = {B, samples, k};
    GRIP_RETURN_IF_ERROR(c.Tensor(indices, "indices", 3, idx, kI32Only, "[B,G,k]"));
    const int64_t lp[2] = {B, samples};
    GRIP_RETURN_IF_ERROR(c.Tensor(log_prob, "logProb", 2, lp, kF32Only, "[B,G]"));
    GumbelTopkArgs args{static_cast<const float*>(logits->data), B, N, k, samples, seed,
                        static_cast<int32_t*>(indices->data), static_cast<float*>(log_prob->data)};
    return GRIP_DISPATCH(c.device, gumbel_topk, args);
  });
}

static Status PlackettLuceCommon(Checker& c, const grip_tensor* logits, const grip_tensor* indices,
                                 PlackettLuceArgs* args) {
  GRIP_RETURN_IF_ERROR(CheckLogits(c, logits));
  const int64_t B = logits->shape[0], N = logits->shape[1];
  const int64_t idx[3] = {B, -1, -1};
  GRIP_RETURN_IF_ERROR(c.Tensor(indices, "indices", 3, idx, kI32Only, "[B,G,k]"));
  if (indices->shape[2] > N)
    return Error(GRIP_ERR_SHAPE, "k <= N = " + std::to_string(N) + " [B,G,k]", "indices",
                 ShapeString(indices->shape, 3));
  *args = PlackettLuceArgs{};
  args->logits = static_cast<const float*>(logits->data);
  args->indices = static_cast<const int32_t*>(indices->data);
  args->B = B; args->N = N; args->G = indices->shape[1]; args->k = indices->shape[2];
  return Status::Ok();
}

grip_status grip_plackett_luce_log_prob(const grip_tensor* logits, const grip_tensor* indices,
                                        grip_tensor* log_prob) {
  return Guard([&]() -> Status {
    Checker c;
    PlackettLuceArgs args;
    GRIP_RETURN_IF_ERROR(PlackettLuceCommon(c, logits, indices, &args));
    const int64_t lp[2] = {args.B, args.G};
    GRIP_RETURN_IF_ERROR(c.Tensor(log_prob, "logProb", 2, lp, kF32Only, "[B,G]"));
    args.log_prob = static_cast<float*>(log_prob->data);
    return GRIP_DISPATCH(c.device, plackett_luce_log_prob, args);
  });
}

grip_status grip_plackett_luce_backward(const grip_tensor* logits, const grip_tensor* indices,
                                        const grip_tensor* d_log_prob, grip_tensor* d_logits) {
  return Guard([&]() -> Status {
    Checker c;
    PlackettLuceArgs args;
    GRIP_RETURN_IF_ERROR(PlackettLuceCommon(c, logits, indices, &args));
    const int64_t lp[2] = {args.B, args.G};
    GRIP_RETURN_IF_ERROR(c.Tensor(d_log_prob, "dLogProb", 2, lp, kF32Only, "[B,G]"));
    const int64_t dl[2] = {args.B, args.N};
    GRIP_RETURN_IF_ERROR(c.Tensor(d_logits, "dLogits", 2, dl, kF32Only, "[B,N]"));
    args.d_log_prob = static_cast<const float*>(d_log_prob->data);
    args.d_logits = static_cast<float*>(d_logits->data);
    return GRIP_DISPATCH(c.device, plackett_luce_backward, args);
  });
}

grip_status grip_gather_rows(const grip_tensor* x, const grip_tensor* indices, grip_tensor* out) {
  return Guard([&]() -> Status {
    Checker c;
    GRIP_RETURN_IF_ERROR(c.Tensor(x, "x", 3, nullptr, kFloatAny, "[B,N,D]"));
    const int64_t B = x->shape[0], N = x->shape[1], D = x->shape[2];
    const int64_t idx[2] = {B, -1};
    GRIP_RETURN_IF_ERROR(c.Tensor(indices, "indices", 2, idx, kI32Only, "[B,K]"));
    const int64_t K = indices->shape[1];
    const int64_t o[3] = {B, K, D};
    GRIP_RETURN_IF_ERROR(c.Tensor(out, "out", 3, o, kFloatAny, "[B,K,D]"));
    if (out->dtype != x->dtype)
      return Error(GRIP_ERR_DTYPE, std::string(DTypeName(x->dtype)) + " (the dtype of x)",
                   "dtype of out", DTypeName(out->dtype));
    GatherArgs args{x->data, x->dtype, static_cast<const int32_t*>(indices->data), B, N, D, K,
                    out->data};
    return GRIP_DISPATCH(c.device, gather_rows, args);
  });
}

static Status CompactCommon(Checker& c, const grip_tensor* cache, const grip_tensor* keep,
                            CompactKVArgs* args) {
  GRIP_RETURN_IF_ERROR(c.Tensor(cache, "cache", 4, nullptr, kFloatAny, "[B,Hkv,T,Dh]"));
  const int64_t B = cache->shape[0];
  const int64_t kp[2] = {B, -1};
  GRIP_RETURN_IF_ERROR(c.Tensor(keep, "keep", 2, kp, kI32Only, "[B,K]"));
  if (keep->shape[1] > cache->shape[2])
    return Error(GRIP_ERR_SHAPE, "K <= T = " + std::to_string(cache->shape[2]) + " [B,K]", "keep",
                 ShapeString(keep->shape, 2));
  *args = CompactKVArgs{};
  args->cache = cache->data;
  args->dtype = cache->dtype;
  args->keep = static_cast<const int32_t*>(keep->data);
  args->B = B; args->Hkv = cache->shape[1]; args->T = cache->shape[2]; args->Dh = cache->shape[3];
  args->K = keep->shape[1];
  return Status::Ok();
}

grip_status grip_compact_kv(const grip_tensor* cache, const grip_tensor* keep, grip_tensor* out) {
  return Guard([&]() -> Status {
    Checker c;
    CompactKVArgs args;
    GRIP_RETURN_IF_ERROR(CompactCommon(c, cache, keep, &args));
    const int64_t o[4] = {args.B, args.Hkv, args.K, args.Dh};
    GRIP_RETURN_IF_ERROR(c.Tensor(out, "out", 4, o, kFloatAny, "[B,Hkv,K,Dh]"));
    if (out->dtype != cache->dtype)
      return Error(GRIP_ERR_DTYPE, std::string(DTypeName(cache->dtype)) + " (the dtype of cache)",
                   "dtype of out", DTypeName(out->dtype));
    args.out = out->data;
    return GRIP_DISPATCH(c.device, compact_kv, args);
  });
}

grip_status grip_compact_kv_inplace(grip_tensor* cache, const grip_tensor* keep,
                                    int32_t* new_lengths) {
  return Guard([&]() -> Status {
    Checker c;
    CompactKVArgs args;
    GRIP_RETURN_IF_ERROR(CompactCommon(c, cache, keep, &args));
    if (new_lengths == nullptr && args.B > 0)
      return Error(GRIP_ERR_SHAPE, "an output array [B]", "newLengths", "NULL");
    args.new_lengths = new_lengths;
    return GRIP_DISPATCH(c.device, compact_kv_inplace, args);
  });
}

grip_status grip_adamw(grip_tensor* param, const grip_tensor* grad, grip_tensor* m, grip_tensor* v,
                       const grip_adamw_options* o) {
  return Guard([&]() -> Status {
    Checker c;
    if (param == nullptr) return Error(GRIP_ERR_SHAPE, "a tensor", "param", "NULL");
    GRIP_RETURN_IF_ERROR(c.Tensor(param, "param", param->ndim, nullptr, kF32Only, "(any shape)"));
    GRIP_RETURN_IF_ERROR(c.Tensor(grad, "grad", param->ndim, param->shape, kF32Only, "(the shape of param)"));
    GRIP_RETURN_IF_ERROR(c.Tensor(m, "m", param->ndim, param->shape, kF32Only, "(the shape of param)"));
    GRIP_RETURN_IF_ERROR(c.Tensor(v, "v", param->ndim, param->shape, kF32Only, "(the shape of param)"));
    if (o == nullptr) return Error(GRIP_ERR_RANGE, "options", "adamw", "NULL");
    if (o->step < 1) return Error(GRIP_ERR_RANGE, "an integer >= 1", "step", std::to_string(o->step));
    if (!(o->lr >= 0.f) || !std::isfinite(o->lr))
      return Error(GRIP_ERR_RANGE, "a finite number >= 0", "lr", std::to_string(o->lr));
    if (!(o->beta1 >= 0.f && o->beta1 < 1.f))
      return Error(GRIP_ERR_RANGE, "a number in [0, 1)", "beta1", std::to_string(o->beta1));
    if (!(o->beta2 >= 0.f && o->beta2 < 1.f))
      return Error(GRIP_ERR_RANGE, "a number in [0, 1)", "beta2", std::to_string(o->beta2));
    if (!(o->eps > 0.f) || !std::isfinite(o->eps))
      return Error(GRIP_ERR_RANGE, "a finite number > 0", "eps", std::to_string(o->eps));
    if (!(o->weight_decay >= 0.f) || !std::isfinite(o->weight_decay))
      return Error(GRIP_ERR_RANGE, "a finite number >= 0", "weightDecay",
                   std::to_string(o->weight_decay));
    AdamWArgs args{static_cast<float*>(param->data), static_cast<const float*>(grad->data),
                   static_cast<float*>(m->data), static_cast<float*>(v->data), NumElements(*param), *o};
    return GRIP_DISPATCH(c.device, adamw, args);
  });
}

grip_status grip_matmul(const grip_tensor* a, const grip_tensor* b, int trans_b, grip_tensor* out) {
  return Guard([&]() -> Status {
    Checker c;
    GRIP_RETURN_IF_ERROR(c.Tensor(a, "a", 2, nullptr, kF32Only, "[M,K]"));
    const int64_t M = a->shape[0], K = a->shape[1];
    const int64_t bk[2] = {trans_b ? -1 : K, trans_b ? K : -1};
    GRIP_RETURN_IF_ERROR(c.Tensor(b, "b", 2, bk, kFloatAny, trans_b ? "[N,K]" : "[K,N]"));
    const int64_t N = trans_b ? b->shape[0] : b->shape[1];
    const int64_t o[2] = {M, N};
    GRIP_RETURN_IF_ERROR(c.Tensor(out, "out", 2, o, kF32Only, "[M,N]"));
    MatmulArgs args{static_cast<const float*>(a->data), b->data, b->dtype, trans_b != 0, M, N, K,
                    static_cast<float*>(out->data)};
    return GRIP_DISPATCH(c.device, matmul, args);
  });
}

grip_status grip_linear(const grip_tensor* x, const grip_tensor* weight, const grip_tensor* bias,
                        grip_tensor* out) {
  return Guard([&]() -> Status {
    Checker c;
    int64_t M = 0, K = 0;
    GRIP_RETURN_IF_ERROR(CheckRows(c, x, "x", kF32Only, "[..., K]", &M, &K));
    const int64_t w[2] = {-1, K};
    GRIP_RETURN_IF_ERROR(c.Tensor(weight, "weight", 2, w, kWeightAny, "[N,K]"));
    const int64_t N = weight->shape[0];
    if (weight->dtype == GRIP_Q8_0) GRIP_RETURN_IF_ERROR(CheckQ8_0(*weight, "weight"));
    if (bias != nullptr) {
      const int64_t bn[1] = {N};
      GRIP_RETURN_IF_ERROR(c.Tensor(bias, "bias", 1, bn, kF32Only, "[N]"));
    }
    int64_t o[GRIP_MAX_DIMS];
    for (int i = 0; i < x->ndim; ++i) o[i] = x->shape[i];
    o[x->ndim - 1] = N;
    GRIP_RETURN_IF_ERROR(CheckOutLike(c, out, x->ndim, o, "[..., N]"));
    LinearArgs args{static_cast<const float*>(x->data), weight->data, weight->dtype,
                    bias ? static_cast<const float*>(bias->data) : nullptr, M, N, K,
                    static_cast<float*>(out->data)};
    return GRIP_DISPATCH(c.device, linear, args);
  });
}

grip_status grip_quantize_q8_0(const grip_tensor* x, grip_tensor* out) {
  return Guard([&]() -> Status {
    Checker c;
    GRIP_RETURN_IF_ERROR(c.Tensor(x, "x", 2, nullptr, kF32Only, "[N,K]"));
    GRIP_RETURN_IF_ERROR(c.Tensor(out, "out", 2, x->shape, kQ8Only, "[N,K]"));
    GRIP_RETURN_IF_ERROR(CheckQ8_0(*out, "out"));
    grip::cpu::quantize_q8_0(static_cast<const float*>(x->data), x->shape[0], x->shape[1], x->shape[1],
                             static_cast<uint8_t*>(out->data));
    return Status::Ok();
  });
}

static Status NormCommon(Checker& c, const grip_tensor* x, const grip_tensor* weight,
                         const grip_tensor* bias, float eps, grip_tensor* out, NormArgs* args) {
  int64_t M = 0, D = 0;
  GRIP_RETURN_IF_ERROR(CheckRows(c, x, "x", kF32Only, "[..., D]", &M, &D));
  const int64_t d[1] = {D};
  GRIP_RETURN_IF_ERROR(c.Tensor(weight, "weight", 1, d, kF32Only, "[D]"));
  if (bias != nullptr) GRIP_RETURN_IF_ERROR(c.Tensor(bias, "bias", 1, d, kF32Only, "[D]"));
  if (!(eps >= 0.f) || !std::isfinite(eps))
    return Error(GRIP_ERR_RANGE, "a finite number >= 0", "eps", std::to_string(eps));
  GRIP_RETURN_IF_ERROR(CheckOutLike(c, out, x->ndim, x->shape, "(the shape of x)"));
  *args = NormArgs{static_cast<const float*>(x->data), static_cast<const float*>(weight->data),
                   bias ? static_cast<const float*>(bias->data) : nullptr, eps, M, D,
                   static_cast<float*>(out->data)};
  return Status::Ok();
}

grip_status grip_layer_norm(const grip_tensor* x, const grip_tensor* weight,
                            const grip_tensor* bias, float eps, grip_tensor* out) {
  return Guard([&]() -> Status {
    Checker c;
    if (bias == nullptr) return Error(GRIP_ERR_SHAPE, "a tensor [D]", "bias", "NULL");
    NormArgs args;
    GRIP_RETURN_IF_ERROR(NormCommon(c, x, weight, bias, eps, out, &args));
    return GRIP_DISPATCH(c.device, layer_norm, args);
  });
}

grip_status grip_rms_norm(const grip_tensor* x, const grip_tensor* weight, float eps,
                          grip_tensor* out) {
  return Guard([&]() -> Status {
    Checker c;
    NormArgs args;
    GRIP_RETURN_IF_ERROR(NormCommon(c, x, weight, nullptr, eps, out, &args));
    return GRIP_DISPATCH(c.device, rms_norm, args);
  });
}

grip_status grip_rope(const grip_tensor* x, const grip_tensor* positions, double theta,
                      grip_tensor* out) {
  return Guard([&]() -> Status {
    Checker c;
    GRIP_RETURN_IF_ERROR(c.Tensor(x, "x", 4, nullptr, kF32Only, "[B,T,H,Dh]"));
    const int64_t B = x->shape[0], T = x->shape[1], H = x->shape[2], Dh = x->shape[3];
    if (Dh % 2 != 0)
      return Error(GRIP_ERR_SHAPE, "an even head dim Dh [B,T,H,Dh]", "x", ShapeString(x->shape, 4));
    const int64_t p[2] = {B, T};
    GRIP_RETURN_IF_ERROR(c.Tensor(positions, "positions", 2, p, kI32Only, "[B,T]"));
    if (!(theta > 0.0) || !std::isfinite(theta))
      return Error(GRIP_ERR_RANGE, "a finite number > 0", "theta", std::to_string(theta));
    GRIP_RETURN_IF_ERROR(CheckOutLike(c, out, 4, x->shape, "[B,T,H,Dh]"));
    RopeArgs args{static_cast<const float*>(x->data), static_cast<const int32_t*>(positions->data),
                  theta, B, T, H, Dh, static_cast<float*>(out->data)};
    return GRIP_DISPATCH(c.device, rope, args);
  });
}

grip_status grip_cache_write(grip_tensor* cache, const grip_tensor* src, const int32_t* start,
                             const int32_t* count) {
  return Guard([&]() -> Status {
    Checker c;
    GRIP_RETURN_IF_ERROR(c.Tensor(cache, "cache", 4, nullptr, kFloatAny, "[B,Hkv,Tmax,Dh]"));
    const int64_t B = cache->shape[0], Hkv = cache->shape[1], Tmax = cache->shape[2],
                  Dh = cache->shape[3];
    const int64_t s[4] = {B, -1, Hkv, Dh};
    GRIP_RETURN_IF_ERROR(c.Tensor(src, "src", 4, s, kF32Only, "[B,T,Hkv,Dh]"));
    const int64_t T = src->shape[1];
    if ((start == nullptr || count == nullptr) && B > 0)
      return Error(GRIP_ERR_SHAPE, "start and count arrays [B]", start ? "count" : "start", "NULL");
    GRIP_RETURN_IF_ERROR(CheckHostRange(count, B, 0, T, "count"));
    GRIP_RETURN_IF_ERROR(CheckHostRange(start, B, 0, Tmax, "start"));
    for (int64_t b = 0; b < B; ++b) {
      if ((int64_t)start[b] + count[b] > Tmax)
        return Error(GRIP_ERR_RANGE, "start + count <= Tmax = " + std::to_string(Tmax),
                     "row " + std::to_string(b),
                     std::to_string(start[b]) + " + " + std::to_string(count[b]));
    }
    CacheWriteArgs args{cache->data, cache->dtype, static_cast<const float*>(src->data),
                        start, count, B, Hkv, Tmax, T, Dh};
    return GRIP_DISPATCH(c.device, cache_write, args);
  });
}

grip_status grip_attention(const grip_tensor* q, const grip_tensor* k, const grip_tensor* v,
                           const grip_attention_options* options, grip_tensor* out,
                           grip_tensor* probs) {
  return Guard([&]() -> Status {
    Checker c;
    if (options == nullptr) return Error(GRIP_ERR_RANGE, "options", "attention", "NULL");
    GRIP_RETURN_IF_ERROR(c.Tensor(q, "q", 4, nullptr, kF32Only, "[B,Tq,Hq,Dh]"));
    const int64_t B = q->shape[0], Tq = q->shape[1], Hq = q->shape[2], Dh = q->shape[3];
    const int64_t ks[4] = {B, -1, -1, Dh};
    GRIP_RETURN_IF_ERROR(c.Tensor(k, "k", 4, ks, kF32Only, "[B,Hkv,Tk,Dh]"));
    const int64_t Hkv = k->shape[1], Tk = k->shape[2];
    GRIP_RETURN_IF_ERROR(c.Tensor(v, "v", 4, k->shape, kF32Only, "[B,Hkv,Tk,Dh]"));
    // Hq = 0 < Hkv would make the head group Hq / Hkv zero, a divisor in the kernels.
    if (Hkv == 0 ? Hq != 0 : Hq == 0 || Hq % Hkv != 0)
      return Error(GRIP_ERR_SHAPE, "a positive multiple of Hkv = " + std::to_string(Hkv) + " query heads [B,Tq,Hq,Dh]",
                   "q", ShapeString(q->shape, 4));
    if (!std::isfinite(options->scale))
      return Error(GRIP_ERR_RANGE, "a finite number", "scale", std::to_string(options->scale));
    GRIP_RETURN_IF_ERROR(CheckHostRange(options->kv_len, B, 0, Tk, "kvLen"));
    for (int64_t b = 0; b < B && options->q_len; ++b) {
      const int64_t limit = std::min<int64_t>(Tq, options->kv_len ? options->kv_len[b] : Tk);
      if (options->q_len[b] < 0 || options->q_len[b] > limit)
        return Error(GRIP_ERR_RANGE, "values in [0, " + std::to_string(limit) + "] (qLen <= Tq and qLen <= kvLen)",
                     "qLen", std::to_string(options->q_len[b]) + " at [" + std::to_string(b) + "]");
    }
    const int64_t R = options->num_prob_rows;
    if (R < 0) return Error(GRIP_ERR_RANGE, "an integer >= 0", "numProbRows", std::to_string(R));
    if (R > 0 && options->prob_rows == nullptr)
      return Error(GRIP_ERR_SHAPE, "an array [R]", "probRows", "NULL");
    GRIP_RETURN_IF_ERROR(CheckHostRange(options->prob_rows, R, 0, Tq - 1, "probRows"));
    GRIP_RETURN_IF_ERROR(CheckOutLike(c, out, 4, q->shape, "[B,Tq,Hq,Dh]"));
    if (R > 0) {
      const int64_t ps[4] = {B, Hq, R, Tk};
      GRIP_RETURN_IF_ERROR(c.Tensor(probs, "probs", 4, ps, kF32Only, "[B,Hq,R,Tk]"));
    }
    // Defaults as arrays, so that every backend reads per-row lengths. The
    // default q_len (Tq) must fit under each row's kv_len.
    std::vector<int32_t> q_len(options->q_len ? 0 : B), kv_len(options->kv_len ? 0 : B);
    if (!options->kv_len)
      for (int64_t b = 0; b < B; ++b) kv_len[b] = (int32_t)Tk;
    for (int64_t b = 0; b < B && !options->q_len; ++b) {
      const int32_t kvl = options->kv_len ? options->kv_len[b] : (int32_t)Tk;
      if (Tq > kvl)
        return Error(GRIP_ERR_RANGE, "Tq <= kvLen (or an explicit qLen)", "q",
                     "Tq = " + std::to_string(Tq) + " > kvLen = " + std::to_string(kvl) + " at [" + std::to_string(b) + "]");
      q_len[b] = (int32_t)Tq;
    }
    AttentionArgs args{};
    args.q = static_cast<const float*>(q->data);
    args.k = static_cast<const float*>(k->data);
    args.v = static_cast<const float*>(v->data);
    args.q_len = options->q_len ? options->q_len : q_len.data();
    args.kv_len = options->kv_len ? options->kv_len : kv_len.data();
    args.prob_rows = options->prob_rows;
    args.B = B; args.Tq = Tq; args.Tk = Tk; args.Hq = Hq; args.Hkv = Hkv; args.Dh = Dh; args.R = R;
    args.causal = options->causal != 0;
    args.scale = options->scale;
    args.out = static_cast<float*>(out->data);
    args.probs = R > 0 ? static_cast<float*>(probs->data) : nullptr;
    return GRIP_DISPATCH(c.device, attention, args);
  });
}

grip_status grip_gelu(const grip_tensor* x, grip_gelu_kind kind, grip_tensor* out) {
  return Guard([&]() -> Status {
    Checker c;
    GRIP_RETURN_IF_ERROR(CheckAny(c, x, "x", kF32Only));
    if (kind != GRIP_GELU_ERF && kind != GRIP_GELU_TANH && kind != GRIP_GELU_QUICK)
      return Error(GRIP_ERR_RANGE, "0 (erf), 1 (tanh) or 2 (quick)", "kind", std::to_string((int)kind));
    GRIP_RETURN_IF_ERROR(CheckOutLike(c, out, x->ndim, x->shape, "(the shape of x)"));
    GeluArgs args{static_cast<const float*>(x->data), kind, NumElements(*x),
                  static_cast<float*>(out->data)};
    return GRIP_DISPATCH(c.device, gelu, args);
  });
}

grip_status grip_silu_mul(const grip_tensor* gate, const grip_tensor* up, grip_tensor* out) {
  return Guard([&]() -> Status {
    Checker c;
    GRIP_RETURN_IF_ERROR(CheckAny(c, gate, "gate", kF32Only));
    GRIP_RETURN_IF_ERROR(c.Tensor(up, "up", gate->ndim, gate->shape, kF32Only, "(the shape of gate)"));
    GRIP_RETURN_IF_ERROR(CheckOutLike(c, out, gate->ndim, gate->shape, "(the shape of gate)"));
    SiluMulArgs args{static_cast<const float*>(gate->data), static_cast<const float*>(up->data),
                     NumElements(*gate), static_cast<float*>(out->data)};
    return GRIP_DISPATCH(c.device, silu_mul, args);
  });
}

grip_status grip_add(const grip_tensor* a, const grip_tensor* b, grip_tensor* out) {
  return Guard([&]() -> Status {
    Checker c;
    GRIP_RETURN_IF_ERROR(CheckAny(c, a, "a", kF32Only));
    GRIP_RETURN_IF_ERROR(CheckAny(c, b, "b", kF32Only));
    bool trailing = b->ndim <= a->ndim;
    for (int i = 0; trailing && i < b->ndim; ++i)
      trailing = b->shape[i] == a->shape[a->ndim - b->ndim + i];
    if (!trailing)
      return Error(GRIP_ERR_SHAPE, "a trailing part of " + ShapeString(a->shape, a->ndim) + " (the shape of a)",
                   "b", ShapeString(b->shape, b->ndim));
    GRIP_RETURN_IF_ERROR(CheckOutLike(c, out, a->ndim, a->shape, "(the shape of a)"));
    AddArgs args{static_cast<const float*>(a->data), static_cast<const float*>(b->data),
                 NumElements(*a), NumElements(*b), static_cast<float*>(out->data)};
    return GRIP_DISPATCH(c.device, add, args);
  });
}

grip_status grip_softmax(const grip_tensor* x, int log, grip_tensor* out) {
  return Guard([&]() -> Status {
    Checker c;
    int64_t M = 0, N = 0;
    GRIP_RETURN_IF_ERROR(CheckRows(c, x, "x", kF32Only, "[..., N]", &M, &N));
    GRIP_RETURN_IF_ERROR(CheckOutLike(c, out, x->ndim, x->shape, "(the shape of x)"));
    SoftmaxArgs args{static_cast<const float*>(x->data), M, N, log != 0,
                     static_cast<float*>(out->data)};
    return GRIP_DISPATCH(c.device, softmax, args);
  });
}

grip_status grip_embedding(const grip_tensor* table, const grip_tensor* ids, grip_tensor* out) {
  return Guard([&]() -> Status {
    Checker c;
    GRIP_RETURN_IF_ERROR(c.Tensor(table, "table", 2, nullptr, kFloatAny, "[V,D]"));
    const int64_t V = table->shape[0], D = table->shape[1];
    GRIP_RETURN_IF_ERROR(CheckAny(c, ids, "ids", kI32Only));
    if (ids->ndim >= GRIP_MAX_DIMS)
      return Error(GRIP_ERR_SHAPE, "at most 7 dimensions", "ids", std::to_string(ids->ndim) + " dimensions");
    int64_t o[GRIP_MAX_DIMS];
    for (int i = 0; i < ids->ndim; ++i) o[i] = ids->shape[i];
    o[ids->ndim] = D;
    GRIP_RETURN_IF_ERROR(CheckOutLike(c, out, ids->ndim + 1, o, "[..., D]"));
    EmbeddingArgs args{};
    args.table = table->data;
    args.dtype = table->dtype;
    args.ids = static_cast<const int32_t*>(ids->data);
    args.ids_ndim = ids->ndim;
    for (int i = 0; i < ids->ndim; ++i) args.ids_shape[i] = ids->shape[i];
    args.V = V; args.D = D; args.n = NumElements(*ids);
    args.out = static_cast<float*>(out->data);
    return GRIP_DISPATCH(c.device, embedding, args);
  });
}

}  // extern "C"
