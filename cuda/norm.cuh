// norm.cuh — the row reductions of the transformer ops on CUDA: layer_norm,
// rms_norm and softmax (log-softmax) over the last dim. One block per row,
// block_sum / block_max from reduce.cuh (fixed order: reproducible). Every
// thread reads its elements before the final loop writes them, so out may be
// the input (in place).
#pragma once
#include "reduce.cuh"

namespace grip {
namespace GRIP_CUDA_NS {

constexpr int kRowThreads = 256;

// out = (x - mean) * rstd * w + bias (biased variance, two passes), or with
// bias == nullptr the RMSNorm x * rsqrt(mean(x^2) + eps) * w.
// Shapes: x, out [M,D]; w, bias [D]; grid M, block kRowThreads.
__global__ void norm_rows_kernel(const float* x, const float* w, const float* bias, float eps,
                                 int64_t D, float* out) {
  __shared__ float red[33];
  const int64_t base = (int64_t)blockIdx.x * D;
  float mean = 0.f;
  if (bias) {
    float s = 0.f;
    for (int64_t d = threadIdx.x; d < D; d += blockDim.x) s += x[base + d];
    mean = block_sum(s, red) / (float)D;
  }
  float q = 0.f;
  for (int64_t d = threadIdx.x; d < D; d += blockDim.x) {
    const float t = x[base + d] - mean;
    q += t * t;
  }
  const float rstd = 1.f / sqrtf(block_sum(q, red) / (float)D + eps);
  for (int64_t d = threadIdx.x; d < D; d += blockDim.x) {
    const float t = (x[base + d] - mean) * rstd * w[d];
    out[base + d] = bias ? t + bias[d] : t;
  }
}

// out = softmax (or log-softmax) of each row. Shapes: x, out [M,N]; grid M,
// block kRowThreads.
__global__ void softmax_rows_kernel(const float* x, int64_t N, int log_softmax, float* out) {
  __shared__ float red[33];
  const int64_t base = (int64_t)blockIdx.x * N;
  float m = -INFINITY;
  for (int64_t i = threadIdx.x; i < N; i += blockDim.x) m = fmaxf(m, x[base + i]);
  m = block_max(m, -INFINITY, red);
  float s = 0.f;
  for (int64_t i = threadIdx.x; i < N; i += blockDim.x) s += expf(x[base + i] - m);
  s = block_sum(s, red);
  const float shift = m + logf(s), inv = 1.f / s;
  for (int64_t i = threadIdx.x; i < N; i += blockDim.x) {
    const float v = x[base + i];
    out[base + i] = log_softmax ? v - shift : expf(v - m) * inv;
  }
}

// Rows go in launches of at most 65535 blocks (grid.x limit kept portable).
template <typename F>
inline Status for_row_chunks(int64_t M, const char* name, F&& launch) {
  for (int64_t r0 = 0; r0 < M; r0 += 65535) {
    const int64_t rows = M - r0 < 65535 ? M - r0 : 65535;
    launch(r0, (unsigned)rows);
    GRIP_RETURN_IF_ERROR(grip_dev_check_launch(name));
  }
  return Status::Ok();
}

inline Status norm_rows(const NormArgs& a) {
  return for_row_chunks(a.M, "norm_rows_kernel", [&](int64_t r0, unsigned rows) {
    const float* x = a.x + r0 * a.D;
    float* out = a.out + r0 * a.D;
    GRIP_LAUNCH(norm_rows_kernel, rows, kRowThreads, 0, x, a.weight, a.bias, a.eps, a.D, out);
  });
}

Status layer_norm(const NormArgs& a) { return norm_rows(a); }
Status rms_norm(const NormArgs& a) { return norm_rows(a); }

Status softmax(const SoftmaxArgs& a) {
  if (a.N == 0) return Status::Ok();
  const int log_softmax = a.log ? 1 : 0;
  return for_row_chunks(a.M, "softmax_rows_kernel", [&](int64_t r0, unsigned rows) {
    const float* x = a.x + r0 * a.N;
    float* out = a.out + r0 * a.N;
    GRIP_LAUNCH(softmax_rows_kernel, rows, kRowThreads, 0, x, a.N, log_softmax, out);
  });
}

}  // namespace GRIP_CUDA_NS
}  // namespace grip
