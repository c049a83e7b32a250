// adamw.cuh — one AdamW step in place (README item 8), elementwise with the
// CPU twin's float formulation; the bias corrections and decay factor are
// computed on the host in double.
#pragma once
#include "reduce.cuh"

namespace grip {
namespace GRIP_CUDA_NS {

// Round-to-nearest products and sums without FMA contraction, so that the GPU
// gives the CPU twin's bits.
__device__ inline float mul_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
__device__ inline float add_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}

struct AdamWCoeffs {
  float decay, beta1, beta2, one_m_b1, one_m_b2, step_size, bc2_sqrt, eps;
};

// Shapes: param, grad, m, v [n]; flat grid-stride.
__global__ void adamw_kernel(float* param, const float* grad, float* m, float* v, int64_t n,
                             AdamWCoeffs c) {
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x) {
    const float gi = grad[i];
    const float mi = add_rn(mul_rn(c.beta1, m[i]), mul_rn(c.one_m_b1, gi));
    const float vi = add_rn(mul_rn(c.beta2, v[i]), mul_rn(mul_rn(c.one_m_b2, gi), gi));
    m[i] = mi;
    v[i] = vi;
    const float pi = mul_rn(param[i], c.decay);
    param[i] = add_rn(pi, -(mul_rn(c.step_size, mi) / add_rn(sqrtf(vi) / c.bc2_sqrt, c.eps)));
  }
}

Status adamw(const AdamWArgs& a) {
  if (a.n == 0) return Status::Ok();
  const grip_adamw_options& o = a.options;
  const double lr = o.lr, b1 = o.beta1, b2 = o.beta2, step = (double)o.step;
  const double bc1 = 1.0 - pow(b1, step), bc2 = 1.0 - pow(b2, step);
  AdamWCoeffs c;
  c.decay = (float)(1.0 - lr * (double)o.weight_decay);
  c.beta1 = o.beta1;
  c.beta2 = o.beta2;
  c.one_m_b1 = (float)(1.0 - b1);
  c.one_m_b2 = (float)(1.0 - b2);
  c.step_size = (float)(lr / bc1);
  c.bc2_sqrt = (float)sqrt(bc2);
  c.eps = o.eps;
  GRIP_LAUNCH(adamw_kernel, flat_blocks(a.n, 256), 256, 0, a.param, a.grad, a.m, a.v, a.n, c);
  return grip_dev_check_launch("adamw_kernel");
}

}  // namespace GRIP_CUDA_NS
}  // namespace grip
