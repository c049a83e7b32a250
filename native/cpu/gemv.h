// gemv.h — the matrix-vector product of decode: a few activation rows
// (M <= 4) times a weight matrix stored [N, K] (the Linear layout), in f32,
// f16 or bf16. Unlike the packed GEMM it reads each weight once, straight
// from memory (no packing pass, no widened copy), which is what bounds a
// decode step; the threads split the output rows.
#pragma once
#include <cstdint>

#include "grip/grip.h"

namespace grip {
namespace cpu {

// Whether gemv handles this product (gemm calls it then).
bool gemv_applies(bool trans_a, bool trans_b, int64_t M, float alpha, float beta);

// C[M, N] = A[M, K] · W[N, K]^T (+ bias[N]); row strides lda, ldw, ldc.
void gemv(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const void* W, grip_dtype w_dtype,
          int64_t ldw, float* C, int64_t ldc, const float* bias);

}  // namespace cpu
}  // namespace grip
