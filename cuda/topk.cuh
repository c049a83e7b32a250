// topk.cuh — per-row top-k (README item 3).
// nan_check_kernel finds the first NaN (row-major) before anything is
// written; topk_kernel runs one block per row: a 4-pass radix select (8-bit
// digits of grip::float_order_key, shared-memory histograms) finds the k-th
// largest key and how many of the keys equal to it to take (lowest indices
// first), then a block-wide ordered compaction (ballot prefix counts) writes
// the kept indices in ascending position order.
#pragma once
#include "reduce.cuh"

namespace grip {
namespace GRIP_CUDA_NS {

constexpr int kTopkThreads = 256;

// Ordering key, exactly the CPU twin's: grip::float_order_key (so -0 sorts below +0).
__device__ inline uint32_t topk_key(float f) { return float_order_key(f); }

// err = min flat position n of a NaN in x[0..total). Flat grid-stride.
__global__ void nan_check_kernel(const float* x, int64_t total, unsigned long long* err) {
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
       i += (int64_t)gridDim.x * blockDim.x) {
    const float v = x[i];
    if (v != v) report_error(err, i);
  }
}

// Shapes: scores [B,N], k [B] (device copy), indices/values [B,max_k]; grid B,
// block kTopkThreads.
__global__ void topk_kernel(const float* scores, const int32_t* k_per_row, int64_t N,
                            int64_t max_k, int32_t* indices, float* values) {
  __shared__ unsigned hist[256];
  __shared__ unsigned pick[2];  // chosen digit, count still needed within it
  __shared__ int scan[33];
  const int tid = threadIdx.x, nthreads = blockDim.x;
  const int64_t b = blockIdx.x;
  const float* row = scores + b * N;
  const int64_t k = k_per_row[b];
  int32_t* out_i = indices + b * max_k;
  float* out_v = values + b * max_k;
  for (int64_t j = k + tid; j < max_k; j += nthreads) {
    out_i[j] = -1;
    out_v[j] = -INFINITY;
  }
  if (k == 0) return;

  uint32_t prefix = 0, mask = 0;
  unsigned remaining = (unsigned)k;
  for (int shift = 24; shift >= 0; shift -= 8) {
    for (int i = tid; i < 256; i += nthreads) hist[i] = 0;
    __syncthreads();
    for (int64_t n = tid; n < N; n += nthreads) {
      const uint32_t key = topk_key(row[n]);
      if ((key & mask) == prefix) atomicAdd(&hist[(key >> shift) & 255u], 1u);
    }
    __syncthreads();
    if (tid == 0) {
      unsigned above = 0;
      int d = 255;
      for (; d > 0; --d) {
        if (above + hist[d] >= remaining) break;
        above += hist[d];
      }
      pick[0] = (unsigned)d;
      pick[1] = remaining - above;
    }
    __syncthreads();
    prefix |= pick[0] << shift;
    mask |= 255u << shift;
    remaining = pick[1];
  }
  // prefix is now the k-th largest key; take every key above it and the
  // first `remaining` keys equal to it.
  int64_t taken = 0, equal_seen = 0;
  for (int64_t base = 0; base < N && taken < k; base += nthreads) {
    const int64_t n = base + tid;
    uint32_t key = 0;
    float v = 0.f;
    if (n < N) {
      v = row[n];
      key = topk_key(v);
    }
    const bool gt = n < N && key > prefix, eq = n < N && key == prefix;
    int eq_total;
    const int64_t eq_rank = equal_seen + block_exclusive_count(eq, scan, &eq_total);
    const bool sel = gt || (eq && eq_rank < (int64_t)remaining);
    int sel_total;
    const int64_t pos = taken + block_exclusive_count(sel, scan, &sel_total);
    if (sel) {
      out_i[pos] = (int32_t)n;
      out_v[pos] = v;
    }
    equal_seen += eq_total;
    taken += sel_total;
  }
}

Status topk(const TopkArgs& a) {
  const int64_t total = a.B * a.N;
  DeviceScratch err;
  GRIP_RETURN_IF_ERROR(make_error_slot(err));
  // GRIP_LAUNCH captures its arguments by copy: pass raw pointers, never a
  // DeviceScratch (its copy would free the buffer).
  unsigned long long* err_p = err.as<unsigned long long>();
  if (total > 0) {
    GRIP_LAUNCH(nan_check_kernel, flat_blocks(total, kTopkThreads), kTopkThreads, 0, a.scores,
                total, err_p);
    GRIP_RETURN_IF_ERROR(grip_dev_check_launch("nan_check_kernel"));
    unsigned long long flat;
    GRIP_RETURN_IF_ERROR(read_error_slot(err, &flat));
    if (flat != kNoError) return NaNScoreError((int64_t)flat / a.N, (int64_t)flat % a.N);
  }
  if (a.B == 0 || a.max_k == 0) return Status::Ok();
  DeviceScratch kdev;
  GRIP_RETURN_IF_ERROR(alloc_bytes(kdev, sizeof(int32_t) * a.B));
  GRIP_RETURN_IF_ERROR(grip_dev_to_device(kdev.ptr, a.k, sizeof(int32_t) * a.B));
  const int32_t* k_p = kdev.as<int32_t>();
  GRIP_LAUNCH(topk_kernel, (unsigned)a.B, kTopkThreads, 0, a.scores, k_p, a.N,
              a.max_k, a.indices, a.values);
  return grip_dev_check_launch("topk_kernel");
}

}  // namespace GRIP_CUDA_NS
}  // namespace grip
