// gemm.h — single-precision GEMM for the CPU ops and the model runtime.
// Row-major: C[M,N] = alpha * op(A)[M,K] · op(B)[K,N] + beta * C, where
// op(A) = A (trans_a false, A is [M,K] with row stride lda) or A^T (A is
// [K,M]); likewise B (stored as f32, f16 or bf16 and widened while packing).
// Multithreaded through grip::parallel_for; AVX-512 / AVX2 / scalar
// micro-kernels chosen at run time. beta == 0 ignores C's old contents.
// bias (optional, [N]) is added to every row of C in the micro-kernels'
// store (the Linear layer's bias, at no extra pass over C).
#pragma once
#include <cstdint>

#include "grip/grip.h"

namespace grip {
namespace cpu {

void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
          const float* A, int64_t lda, const void* B, grip_dtype b_dtype, int64_t ldb, float beta,
          float* C, int64_t ldc, const float* bias = nullptr);

}  // namespace cpu
}  // namespace grip
