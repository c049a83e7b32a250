// gemm.cuh — tiled shared-memory SGEMM for the scorer, matmul and linear:
// C[M,N] = op(A)[M,K] · op(B)[K,N] (+ bias[N] per row when given; C
// overwritten), all f32, row-major.
// kTrans bit 1: A transposed (A stored [K,M], row stride lda), bit 0: B
// transposed (B stored [N,K], row stride ldb). 64x64 tile per block of 256
// threads, each computing a 4x4 strided sub-tile; K in steps of 16.
// Summation over K is in a fixed order: results are reproducible.
#pragma once
#include "reduce.cuh"

namespace grip {
namespace GRIP_CUDA_NS {

constexpr int kGemmTile = 64, kGemmK = 16, kGemmThreads = 256;

// Shapes: A [M,K] or [K,M], B [K,N] or [N,K], C [M,N]; grid (ceil(M/64), ceil(N/64)).
template <int kTrans>
__global__ void gemm_kernel(const float* A, int64_t lda, const float* B,
                       int64_t ldb, float* C, int64_t ldc, int64_t M,
                       int64_t N, int64_t K, const float* bias) {
  constexpr bool ta = (kTrans & 2) != 0, tb = (kTrans & 1) != 0;
  __shared__ float As[kGemmK][kGemmTile + 1];
  __shared__ float Bs[kGemmK][kGemmTile + 1];
  const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
  const int64_t m0 = (int64_t)blockIdx.x * kGemmTile, n0 = (int64_t)blockIdx.y * kGemmTile;
  float acc[4][4];
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 4; ++j) acc[i][j] = 0.f;
  for (int64_t k0 = 0; k0 < K; k0 += kGemmK) {
    for (int e = tid; e < kGemmTile * kGemmK; e += kGemmThreads) {
      int mm, kk;
      if (ta) { kk = e / kGemmTile; mm = e % kGemmTile; }
      else { mm = e / kGemmK; kk = e % kGemmK; }
      const int64_t gm = m0 + mm, gk = k0 + kk;
      float a = 0.f;
      if (gm < M && gk < K) a = ta ? A[gk * lda + gm] : A[gm * lda + gk];
      As[kk][mm] = a;
      int nn;
      if (tb) { nn = e / kGemmK; kk = e % kGemmK; }
      else { kk = e / kGemmTile; nn = e % kGemmTile; }
      const int64_t gn = n0 + nn, gk2 = k0 + kk;
      float b = 0.f;
      if (gn < N && gk2 < K) b = tb ? B[gn * ldb + gk2] : B[gk2 * ldb + gn];
      Bs[kk][nn] = b;
    }
    __syncthreads();
    for (int kk = 0; kk < kGemmK; ++kk) {
      float a[4], b[4];
      for (int i = 0; i < 4; ++i) a[i] = As[kk][ty + 16 * i];
      for (int j = 0; j < 4; ++j) b[j] = Bs[kk][tx + 16 * j];
      for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 4; ++j) acc[i][j] += a[i] * b[j];
    }
    __syncthreads();
  }
  for (int i = 0; i < 4; ++i) {
    const int64_t gm = m0 + ty + 16 * i;
    if (gm >= M) continue;
    for (int j = 0; j < 4; ++j) {
      const int64_t gn = n0 + tx + 16 * j;
      if (gn < N) C[gm * ldc + gn] = bias ? acc[i][j] + bias[gn] : acc[i][j];
    }
  }
}

// Host: C = op(A)·op(B). M, N, K as in the math (after the transposes).
inline Status gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const float* A,
                   int64_t lda, const float* B, int64_t ldb, float* C, int64_t ldc,
                   const float* bias = nullptr) {
  if (M == 0 || N == 0) return Status::Ok();
  const dim3 grid(ceil_div(M, kGemmTile), ceil_div(N, kGemmTile));
  const int t = (trans_a ? 2 : 0) | (trans_b ? 1 : 0);
  switch (t) {
    case 0: GRIP_LAUNCH(gemm_kernel<0>, grid, kGemmThreads, 0, A, lda, B, ldb, C, ldc, M, N, K, bias); break;
    case 1: GRIP_LAUNCH(gemm_kernel<1>, grid, kGemmThreads, 0, A, lda, B, ldb, C, ldc, M, N, K, bias); break;
    case 2: GRIP_LAUNCH(gemm_kernel<2>, grid, kGemmThreads, 0, A, lda, B, ldb, C, ldc, M, N, K, bias); break;
    default: GRIP_LAUNCH(gemm_kernel<3>, grid, kGemmThreads, 0, A, lda, B, ldb, C, ldc, M, N, K, bias); break;
  }
  return grip_dev_check_launch("gemm_kernel");
}

}  // namespace GRIP_CUDA_NS
}  // namespace grip
