// gather.cuh — gather_rows, compact_kv and compact_kv_inplace (README items
// 6 and 7): a validation kernel (first bad index in row-major order via an
// atomicMin error slot), then flat grid-stride bit copies of rows in units of
// 16, 4 or 2 bytes (the widest that divides the row and aligns both buffers).
// In place: a parallel copy could overwrite a row another thread still has
// to read (keep = [1,2]: row 1 is both the source of k=0 and the destination
// of k=1), so the kept rows go through a scratch buffer.
#pragma once
#include "reduce.cuh"

namespace grip {
namespace GRIP_CUDA_NS {

constexpr int kCopyThreads = 256;

struct __align__(16) Unit16 {
  uint32_t x, y, z, w;
};

// err = first flat (b*K+k) with indices outside [-1,N). Flat grid-stride over total.
__global__ void gather_check_kernel(const int32_t* indices, int64_t total, int64_t N,
                                    unsigned long long* err) {
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
       i += (int64_t)gridDim.x * blockDim.x) {
    const int32_t v = indices[i];
    if (v < -1 || v >= N) report_error(err, i);
  }
}

// keep [B,K]: err = first flat (b*K+k) breaking "strictly ascending in
// [0,T), then only -1". Position-local test (equivalent to the sequential
// one at the first violation). Flat grid-stride over B*K.
__global__ void keep_check_kernel(const int32_t* keep, int64_t B, int64_t K, int64_t T,
                                  unsigned long long* err) {
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < B * K;
       i += (int64_t)gridDim.x * blockDim.x) {
    const int32_t v = keep[i];
    bool bad = v < -1 || v >= T;
    if (!bad && v >= 0 && i % K > 0) {
      const int32_t prev = keep[i - 1];
      bad = prev == -1 || v <= prev;
    }
    if (bad) report_error(err, i);
  }
}

// out[r,:] = src row for r = b*K+k (row = indices[r], -1 -> zeros).
// Shapes: x [B,N,upr] units, indices [B,K], out [B,K,upr]; flat grid-stride.
template <typename U>
__global__ void gather_rows_kernel(const U* x, const int32_t* indices, int64_t N, int64_t K,
                                   int64_t upr, int64_t total, U* out) {
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
       i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t r = i / upr, u = i % upr;
    const int32_t v = indices[r];
    if (v < 0) out[i] = U{};
    else out[i] = x[((r / K) * N + v) * upr + u];
  }
}

// out[(b,h,k),:] = cache[(b,h,keep[b,k]),:]; padding -> zeros unless skip_pad.
// Shapes: cache [B,Hkv,T,upr] units, keep [B,K], out [B,Hkv,K,upr]; flat grid-stride.
template <typename U>
__global__ void compact_kernel(const U* cache, const int32_t* keep, int64_t Hkv, int64_t T,
                               int64_t K, int64_t upr, int64_t total, int skip_pad, U* out) {
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
       i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t r = i / upr, u = i % upr;
    const int64_t k = r % K, bh = r / K, b = bh / Hkv;
    const int32_t v = keep[b * K + k];
    if (v >= 0) out[i] = cache[(bh * T + v) * upr + u];
    else if (!skip_pad) out[i] = U{};
  }
}

// cache[(b,h,k),:] = staged[(b,h,k),:] for the kept k (keep[b,k] >= 0).
// Shapes: staged [B,Hkv,K,upr], keep [B,K], cache [B,Hkv,T,upr]; flat grid-stride.
template <typename U>
__global__ void copy_back_kernel(const U* staged, const int32_t* keep, int64_t Hkv, int64_t T,
                                 int64_t K, int64_t upr, int64_t total, U* cache) {
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
       i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t r = i / upr, u = i % upr;
    const int64_t k = r % K, bh = r / K, b = bh / Hkv;
    if (keep[b * K + k] >= 0) cache[(bh * T + k) * upr + u] = staged[i];
  }
}

// ---- host -------------------------------------------------------------------

inline size_t elem_bytes(grip_dtype d) { return d == GRIP_F32 || d == GRIP_I32 ? 4 : 2; }

// The widest copy unit for rows of row_bytes between buffers a and b.
inline int copy_unit(size_t row_bytes, const void* a, const void* b) {
  const uintptr_t align = (uintptr_t)a | (uintptr_t)b;
  if (row_bytes % 16 == 0 && align % 16 == 0) return 16;
  if (row_bytes % 4 == 0 && align % 4 == 0) return 4;
  return 2;
}

inline Status first_bad_index(unsigned long long* err_dev, int64_t* flat) {
  unsigned long long f;
  GRIP_RETURN_IF_ERROR(grip_dev_to_host(&f, err_dev, sizeof(f)));
  *flat = f == kNoError ? -1 : (int64_t)f;
  return Status::Ok();
}

Status gather_rows(const GatherArgs& a) {
  const int64_t rows = a.B * a.K;
  if (rows > 0) {
    DeviceScratch err;
    GRIP_RETURN_IF_ERROR(make_error_slot(err));
    unsigned long long* err_p = err.as<unsigned long long>();  // never capture a DeviceScratch
    GRIP_LAUNCH(gather_check_kernel, flat_blocks(rows, kCopyThreads), kCopyThreads, 0, a.indices,
                rows, a.N, err_p);
    GRIP_RETURN_IF_ERROR(grip_dev_check_launch("gather_check_kernel"));
    int64_t flat;
    GRIP_RETURN_IF_ERROR(first_bad_index(err.as<unsigned long long>(), &flat));
    if (flat >= 0) {
      int32_t v;
      GRIP_RETURN_IF_ERROR(grip_dev_to_host(&v, a.indices + flat, sizeof(v)));
      return GatherIndexError(v, a.N, flat / a.K, flat % a.K);
    }
  }
  const size_t row_bytes = (size_t)a.D * elem_bytes(a.dtype);
  if (rows == 0 || row_bytes == 0) return Status::Ok();
  const int unit = copy_unit(row_bytes, a.x, a.out);
  const int64_t upr = (int64_t)(row_bytes / unit), total = rows * upr;
  const unsigned blocks = flat_blocks(total, kCopyThreads);
  if (unit == 16)
    GRIP_LAUNCH(gather_rows_kernel<Unit16>, blocks, kCopyThreads, 0,
                static_cast<const Unit16*>(a.x), a.indices, a.N, a.K, upr, total,
                static_cast<Unit16*>(a.out));
  else if (unit == 4)
    GRIP_LAUNCH(gather_rows_kernel<uint32_t>, blocks, kCopyThreads, 0,
                static_cast<const uint32_t*>(a.x), a.indices, a.N, a.K, upr, total,
                static_cast<uint32_t*>(a.out));
  else
    GRIP_LAUNCH(gather_rows_kernel<uint16_t>, blocks, kCopyThreads, 0,
                static_cast<const uint16_t*>(a.x), a.indices, a.N, a.K, upr, total,
                static_cast<uint16_t*>(a.out));
  return grip_dev_check_launch("gather_rows_kernel");
}

inline Status check_keep_dev(const CompactKVArgs& a) {
  const int64_t total = a.B * a.K;
  if (total == 0) return Status::Ok();
  DeviceScratch err;
  GRIP_RETURN_IF_ERROR(make_error_slot(err));
  unsigned long long* err_p = err.as<unsigned long long>();
  GRIP_LAUNCH(keep_check_kernel, flat_blocks(total, kCopyThreads), kCopyThreads, 0, a.keep, a.B,
              a.K, a.T, err_p);
  GRIP_RETURN_IF_ERROR(grip_dev_check_launch("keep_check_kernel"));
  int64_t flat;
  GRIP_RETURN_IF_ERROR(first_bad_index(err.as<unsigned long long>(), &flat));
  if (flat < 0) return Status::Ok();
  int32_t v;
  GRIP_RETURN_IF_ERROR(grip_dev_to_host(&v, a.keep + flat, sizeof(v)));
  return KeepIndexError(v, a.T, flat / a.K, flat % a.K);
}

// out = compacted cache (padding zeroed unless skip_pad).
inline Status launch_compact(const CompactKVArgs& a, void* out, bool skip_pad) {
  const size_t row_bytes = (size_t)a.Dh * elem_bytes(a.dtype);
  const int64_t rows = a.B * a.Hkv * a.K;
  if (rows == 0 || row_bytes == 0) return Status::Ok();
  const int unit = copy_unit(row_bytes, a.cache, out);
  const int64_t upr = (int64_t)(row_bytes / unit), total = rows * upr;
  const unsigned blocks = flat_blocks(total, kCopyThreads);
  const int skip = skip_pad ? 1 : 0;
  if (unit == 16)
    GRIP_LAUNCH(compact_kernel<Unit16>, blocks, kCopyThreads, 0,
                static_cast<const Unit16*>(a.cache), a.keep, a.Hkv, a.T, a.K, upr, total, skip,
                static_cast<Unit16*>(out));
  else if (unit == 4)
    GRIP_LAUNCH(compact_kernel<uint32_t>, blocks, kCopyThreads, 0,
                static_cast<const uint32_t*>(a.cache), a.keep, a.Hkv, a.T, a.K, upr, total, skip,
                static_cast<uint32_t*>(out));
  else
    GRIP_LAUNCH(compact_kernel<uint16_t>, blocks, kCopyThreads, 0,
                static_cast<const uint16_t*>(a.cache), a.keep, a.Hkv, a.T, a.K, upr, total, skip,
                static_cast<uint16_t*>(out));
  return grip_dev_check_launch("compact_kernel");
}

Status compact_kv(const CompactKVArgs& a) {
  GRIP_RETURN_IF_ERROR(check_keep_dev(a));
  return launch_compact(a, a.out, false);
}

Status compact_kv_inplace(const CompactKVArgs& a) {
  GRIP_RETURN_IF_ERROR(check_keep_dev(a));
  // new lengths from the validated keep (a host copy; keep is small).
  int32_t* host_keep = new int32_t[(size_t)(a.B * a.K) + 1];
  Status st = grip_dev_to_host(host_keep, a.keep, sizeof(int32_t) * (size_t)(a.B * a.K));
  bool any_move = false;
  if (st.ok()) {
    for (int64_t b = 0; b < a.B; ++b) {
      int32_t n = 0;
      while (n < a.K && host_keep[b * a.K + n] >= 0) {
        any_move |= host_keep[b * a.K + n] != n;
        ++n;
      }
      a.new_lengths[b] = n;
    }
  }
  delete[] host_keep;
  GRIP_RETURN_IF_ERROR(st);
  const size_t row_bytes = (size_t)a.Dh * elem_bytes(a.dtype);
  const int64_t rows = a.B * a.Hkv * a.K;
  if (!any_move || rows == 0 || row_bytes == 0) return Status::Ok();
  DeviceScratch staged;
  GRIP_RETURN_IF_ERROR(alloc_bytes(staged, row_bytes * (size_t)rows));
  void* const staged_p = staged.ptr;
  GRIP_RETURN_IF_ERROR(launch_compact(a, staged_p, true));
  const int unit = copy_unit(row_bytes, a.cache, staged_p);
  const int64_t upr = (int64_t)(row_bytes / unit), total = rows * upr;
  const unsigned blocks = flat_blocks(total, kCopyThreads);
  if (unit == 16)
    GRIP_LAUNCH(copy_back_kernel<Unit16>, blocks, kCopyThreads, 0,
                static_cast<const Unit16*>(staged_p), a.keep, a.Hkv, a.T, a.K, upr, total,
                static_cast<Unit16*>(a.cache));
  else if (unit == 4)
    GRIP_LAUNCH(copy_back_kernel<uint32_t>, blocks, kCopyThreads, 0,
                static_cast<const uint32_t*>(staged_p), a.keep, a.Hkv, a.T, a.K, upr, total,
                static_cast<uint32_t*>(a.cache));
  else
    GRIP_LAUNCH(copy_back_kernel<uint16_t>, blocks, kCopyThreads, 0,
                static_cast<const uint16_t*>(staged_p), a.keep, a.Hkv, a.T, a.K, upr, total,
                static_cast<uint16_t*>(a.cache));
  return grip_dev_check_launch("copy_back_kernel");
}

}  // namespace GRIP_CUDA_NS
}  // namespace grip
