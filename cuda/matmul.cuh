// matmul.cuh — the matmul and linear ops on CUDA: f16/bf16 weights are
// widened into an f32 scratch copy, then the tiled SGEMM of gemm.cuh runs
// (linear: B transposed, the bias added in the GEMM's store).
#pragma once
#include "gemm.cuh"

namespace grip {
namespace GRIP_CUDA_NS {

// Shapes: in [n] of dtype (f16|bf16) -> out [n] f32.
__global__ void widen_kernel(const uint16_t* in, int dtype, int64_t n, float* out) {
  const int64_t stride = (int64_t)gridDim.x * blockDim.x;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
    out[i] = dtype == GRIP_F16 ? f16_to_f32(in[i]) : bf16_to_f32(in[i]);
}

// b as f32: b itself, or a widened copy in `widened`.
inline Status widen_weights(const void* b, grip_dtype dtype, int64_t n, DeviceScratch& widened,
                            const float** out) {
  *out = static_cast<const float*>(b);
  if (dtype == GRIP_F32) return Status::Ok();
  GRIP_RETURN_IF_ERROR(widened.alloc((size_t)n * sizeof(float)));
  float* wide = widened.as<float>();
  const uint16_t* narrow = static_cast<const uint16_t*>(b);
  const int dt = (int)dtype;
  if (n > 0) {
    const unsigned blocks = (unsigned)(ceil_div(n, 256) < 4096 ? ceil_div(n, 256) : 4096);
    GRIP_LAUNCH(widen_kernel, blocks, 256, 0, narrow, dt, n, wide);
    GRIP_RETURN_IF_ERROR(grip_dev_check_launch("widen_kernel"));
  }
  *out = wide;
  return Status::Ok();
}

Status matmul(const MatmulArgs& args) {
  // Shapes: a [M,K], b [K,N] or [N,K] (trans_b), out [M,N].
  const int64_t ldb = args.trans_b ? args.K : args.N;
  const float* b = nullptr;
  DeviceScratch widened;
  GRIP_RETURN_IF_ERROR(widen_weights(args.b, args.b_dtype, args.K * args.N, widened, &b));
  return gemm(false, args.trans_b, args.M, args.N, args.K, args.a, args.K, b, ldb, args.out,
              args.N);
}

Status linear(const LinearArgs& args) {
  // Shapes: x [M,K], weight [N,K], bias [N] or null, out [M,N].
  const float* w = nullptr;
  DeviceScratch widened;
  GRIP_RETURN_IF_ERROR(widen_weights(args.weight, args.w_dtype, args.K * args.N, widened, &w));
  return gemm(false, true, args.M, args.N, args.K, args.x, args.K, w, args.K, args.out, args.N,
              args.bias);
}

}  // namespace GRIP_CUDA_NS
}  // namespace grip
