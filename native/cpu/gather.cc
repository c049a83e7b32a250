// gather.cc — CPU twins of gather_rows, compact_kv and compact_kv_inplace:
// row bit-copies (memcpy by element size), indices validated before any write.
#include <algorithm>
#include <cstring>

#include "../core/backend.h"
#include "../core/errors.h"
#include "../core/threadpool.h"

namespace grip {
namespace cpu {
namespace {

size_t elem_size(grip_dtype dtype) { return dtype == GRIP_F32 || dtype == GRIP_I32 ? 4 : 2; }

// Rows of `bytes` each per task: aim for ~64 KiB per chunk.
int64_t row_grain(size_t bytes) {
  return std::max<int64_t>(1, (int64_t)(65536 / std::max<size_t>(1, bytes)));
}

Status check_keep(const int32_t* keep, int64_t B, int64_t K, int64_t T) {
  for (int64_t b = 0; b < B; ++b) {
    const int32_t* row = keep + b * K;
    bool padded = false;
    int64_t prev = -1;
    for (int64_t k = 0; k < K; ++k) {
      const int32_t v = row[k];
      if (v < -1 || v >= T) return KeepIndexError(v, T, b, k);
      if (v == -1) {
        padded = true;
        continue;
      }
      if (padded || (k > 0 && v <= prev)) return KeepIndexError(v, T, b, k);
      prev = v;
    }
  }
  return Status::Ok();
}

}  // namespace

Status gather_rows(const GatherArgs& a) {
  const int64_t B = a.B, N = a.N, K = a.K;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t k = 0; k < K; ++k) {
      const int32_t v = a.indices[b * K + k];
      if (v < -1 || v >= N) return GatherIndexError(v, N, b, k);
    }
  const size_t row_bytes = (size_t)a.D * elem_size(a.dtype);
  if (row_bytes == 0) return Status::Ok();
  const char* x = static_cast<const char*>(a.x);
  char* out = static_cast<char*>(a.out);
  parallel_for(B * K, row_grain(row_bytes), [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t b = t / K;
      const int32_t v = a.indices[t];
      char* dst = out + (size_t)t * row_bytes;
      if (v < 0)
        std::memset(dst, 0, row_bytes);
      else
        std::memcpy(dst, x + (size_t)(b * N + v) * row_bytes, row_bytes);
    }
  });
  return Status::Ok();
}

Status compact_kv(const CompactKVArgs& a) {
  const int64_t B = a.B, Hkv = a.Hkv, T = a.T, K = a.K;
  GRIP_RETURN_IF_ERROR(check_keep(a.keep, B, K, T));
  const size_t row_bytes = (size_t)a.Dh * elem_size(a.dtype);
  if (row_bytes == 0) return Status::Ok();
  const char* cache = static_cast<const char*>(a.cache);
  char* out = static_cast<char*>(a.out);
  // Tasks over output rows (b, h, k).
  parallel_for(B * Hkv * K, row_grain(row_bytes), [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t k = t % K, bh = t / K, b = bh / Hkv;
      const int32_t v = a.keep[b * K + k];
      char* dst = out + (size_t)t * row_bytes;
      if (v < 0)
        std::memset(dst, 0, row_bytes);
      else
        std::memcpy(dst, cache + (size_t)(bh * T + v) * row_bytes, row_bytes);
    }
  });
  return Status::Ok();
}

Status compact_kv_inplace(const CompactKVArgs& a) {
  const int64_t B = a.B, Hkv = a.Hkv, T = a.T, K = a.K;
  GRIP_RETURN_IF_ERROR(check_keep(a.keep, B, K, T));
  for (int64_t b = 0; b < B; ++b) {
    int32_t n = 0;
    while (n < K && a.keep[b * K + n] >= 0) ++n;
    a.new_lengths[b] = n;
  }
  const size_t row_bytes = (size_t)a.Dh * elem_size(a.dtype);
  // Nothing moves without rows or kept tokens; returning here also keeps an
  // empty cache with a huge extent (B * Hkv planes of no rows) from looping
  // over every plane (a libFuzzer timeout).
  if (row_bytes == 0 || K == 0 || T == 0) return Status::Ok();
  char* cache = static_cast<char*>(a.cache);
  // Each (b, h) plane is independent; within a plane, increasing k moves rows
  // only downwards (k <= keep[b,k]), onto rows already read.
  const int64_t grain = std::max<int64_t>(1, row_grain(row_bytes * (size_t)std::max<int64_t>(1, K)));
  parallel_for(B * Hkv, grain, [&](int64_t t0, int64_t t1) {
    for (int64_t bh = t0; bh < t1; ++bh) {
      const int64_t b = bh / Hkv;
      char* plane = cache + (size_t)(bh * T) * row_bytes;
      for (int64_t k = 0; k < a.new_lengths[b]; ++k) {
        const int32_t v = a.keep[b * K + k];
        if (v != k) std::memcpy(plane + (size_t)k * row_bytes, plane + (size_t)v * row_bytes, row_bytes);
      }
    }
  });
  return Status::Ok();
}

}  // namespace cpu
}  // namespace grip
