// attention.cuh — grouped-query attention on CUDA (the CPU twin is
// native/cpu/attention.cc): one block per (query row, query head, batch row),
// keys in chunks of blockDim.x with an online softmax (max and sum by block
// reductions, the output accumulator scaled by exp(m_old - m_new) per chunk),
// so no [Tq,Tk] matrix is stored. Probabilities of the chosen rows come from a
// second kernel (exact: max, sum, then the normalised values).
// Limit: Dh <= kMaxAttentionHeadDim (q and the accumulator live in shared memory).
#pragma once
#include "reduce.cuh"

namespace grip {
namespace GRIP_CUDA_NS {

constexpr int kAttnThreads = 128;
constexpr int64_t kMaxAttentionHeadDim = 4096;

struct AttentionDims {
  int64_t Tq, Tk, Hq, Hkv, Dh, R;
  int causal;
  float scale;
};

// The scaled q row into qs (shared). Every thread of the block calls it.
__device__ inline void load_query(const float* q, const AttentionDims& d, int64_t b, int64_t i,
                                  int64_t h, float* qs) {
  const float* src = q + ((b * d.Tq + i) * d.Hq + h) * d.Dh;
  for (int64_t e = threadIdx.x; e < d.Dh; e += blockDim.x) qs[e] = src[e] * d.scale;
  __syncthreads();
}

__device__ inline float dot_row(const float* qs, const float* krow, int64_t Dh) {
  float s = 0.f;
  for (int64_t e = 0; e < Dh; ++e) s += qs[e] * krow[e];
  return s;
}

// Shapes: q, out [B,Tq,Hq,Dh]; k, v [B,Hkv,Tk,Dh]; lens [2B] (q_len, kv_len);
// grid (Tq, Hq, B), block kAttnThreads, dynamic smem (2 Dh + blockDim) floats.
__global__ void attention_kernel(const float* q, const float* k, const float* v,
                                 const int32_t* lens, AttentionDims d, float* out) {
  GRIP_DYNAMIC_SMEM(float, smem);
  __shared__ float red[33];
  float* qs = smem;
  float* acc = smem + d.Dh;
  float* p = smem + 2 * d.Dh;
  const int64_t i = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  const int64_t B = gridDim.z;
  const int64_t ql = lens[b], kvl = lens[B + b];
  float* o = out + ((b * d.Tq + i) * d.Hq + h) * d.Dh;
  if (i >= ql) {  // a padding query row (the whole block leaves)
    for (int64_t e = threadIdx.x; e < d.Dh; e += blockDim.x) o[e] = 0.f;
    return;
  }
  const int64_t end = d.causal ? kvl - ql + i + 1 : kvl;
  const int64_t kv = (b * d.Hkv + h / (d.Hq / d.Hkv)) * d.Tk * d.Dh;
  const float* K = k + kv;
  const float* V = v + kv;
  for (int64_t e = threadIdx.x; e < d.Dh; e += blockDim.x) acc[e] = 0.f;
  load_query(q, d, b, i, h, qs);
  float m = -INFINITY, l = 0.f;  // the same in every thread (from block reductions)
  for (int64_t j0 = 0; j0 < end; j0 += blockDim.x) {
    const int64_t j = j0 + threadIdx.x;
    const float s = j < end ? dot_row(qs, K + j * d.Dh, d.Dh) : -INFINITY;
    const float m_new = fmaxf(m, block_max(s, -INFINITY, red));
    const float e = j < end ? expf(s - m_new) : 0.f;
    p[threadIdx.x] = e;
    const float sum = block_sum(e, red);  // its barriers publish p
    const float corr = m == -INFINITY ? 0.f : expf(m - m_new);
    l = l * corr + sum;
    m = m_new;
    const int64_t n = end - j0 < (int64_t)blockDim.x ? end - j0 : (int64_t)blockDim.x;
    for (int64_t c = threadIdx.x; c < d.Dh; c += blockDim.x) {
      float a = acc[c] * corr;
      for (int64_t jj = 0; jj < n; ++jj) a += p[jj] * V[(j0 + jj) * d.Dh + c];
      acc[c] = a;
    }
    __syncthreads();  // p is rewritten by the next chunk
  }
  const float inv = 1.f / l;
  for (int64_t c = threadIdx.x; c < d.Dh; c += blockDim.x) o[c] = acc[c] * inv;
}

// probs[b,h,r,:] = softmax row of query prob_rows[r] (zeros past its keys and
// for padding rows). Shapes: probs [B,Hq,R,Tk], rows [R] (device copy);
// grid (R, Hq, B), block kAttnThreads, dynamic smem Dh floats.
__global__ void attention_probs_kernel(const float* q, const float* k, const int32_t* lens,
                                       const int32_t* rows, AttentionDims d, float* probs) {
  GRIP_DYNAMIC_SMEM(float, qs);
  __shared__ float red[33];
  const int64_t r = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  const int64_t B = gridDim.z;
  const int64_t i = rows[r], ql = lens[b], kvl = lens[B + b];
  float* p = probs + ((b * d.Hq + h) * d.R + r) * d.Tk;
  const int64_t end = i >= ql ? 0 : (d.causal ? kvl - ql + i + 1 : kvl);
  const float* K = k + (b * d.Hkv + h / (d.Hq / d.Hkv)) * d.Tk * d.Dh;
  if (i < ql) load_query(q, d, b, i, h, qs);  // uniform across the block
  float m = -INFINITY;
  for (int64_t j = threadIdx.x; j < end; j += blockDim.x) m = fmaxf(m, dot_row(qs, K + j * d.Dh, d.Dh));
  m = block_max(m, -INFINITY, red);
  float s = 0.f;
  for (int64_t j = threadIdx.x; j < end; j += blockDim.x) s += expf(dot_row(qs, K + j * d.Dh, d.Dh) - m);
  const float inv = 1.f / block_sum(s, red);
  for (int64_t j = threadIdx.x; j < d.Tk; j += blockDim.x)
    p[j] = j < end ? expf(dot_row(qs, K + j * d.Dh, d.Dh) - m) * inv : 0.f;
}

Status attention(const AttentionArgs& a) {
  if (a.Dh > kMaxAttentionHeadDim)
    return Error(GRIP_ERR_UNSUPPORTED, "Dh <= " + std::to_string(kMaxAttentionHeadDim),
                 "attention on CUDA", "Dh = " + std::to_string(a.Dh));
  if (a.B == 0 || a.Hq == 0) return Status::Ok();
  DeviceScratch host_arrays;  // q_len[B], kv_len[B], prob_rows[R] on the device
  GRIP_RETURN_IF_ERROR(host_arrays.alloc((size_t)(2 * a.B + a.R) * sizeof(int32_t)));
  int32_t* lens = host_arrays.as<int32_t>();
  int32_t* rows = lens + 2 * a.B;
  GRIP_RETURN_IF_ERROR(grip_dev_to_device(lens, a.q_len, (size_t)a.B * sizeof(int32_t)));
  GRIP_RETURN_IF_ERROR(grip_dev_to_device(lens + a.B, a.kv_len, (size_t)a.B * sizeof(int32_t)));
  if (a.R > 0) GRIP_RETURN_IF_ERROR(grip_dev_to_device(rows, a.prob_rows, (size_t)a.R * sizeof(int32_t)));
  const AttentionDims d{a.Tq, a.Tk, a.Hq, a.Hkv, a.Dh, a.R, a.causal ? 1 : 0, a.scale};
  if (a.Tq > 0) {
    const dim3 grid((unsigned)a.Tq, (unsigned)a.Hq, (unsigned)a.B);
    const size_t smem = (size_t)(2 * a.Dh + kAttnThreads) * sizeof(float);
    GRIP_LAUNCH(attention_kernel, grid, kAttnThreads, smem, a.q, a.k, a.v, lens, d, a.out);
    GRIP_RETURN_IF_ERROR(grip_dev_check_launch("attention_kernel"));
  }
  if (a.R > 0 && a.Tk > 0) {
    const dim3 grid((unsigned)a.R, (unsigned)a.Hq, (unsigned)a.B);
    const size_t smem = (size_t)(a.Dh > 0 ? a.Dh : 1) * sizeof(float);
    GRIP_LAUNCH(attention_probs_kernel, grid, kAttnThreads, smem, a.q, a.k, lens, rows, d, a.probs);
    GRIP_RETURN_IF_ERROR(grip_dev_check_launch("attention_probs_kernel"));
  }
  return Status::Ok();
}

}  // namespace GRIP_CUDA_NS
}  // namespace grip
