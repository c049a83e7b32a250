// gemm.cc — placeholder naive GEMM (replaced by the packed, dispatched one).
#include "gemm.h"

#include "../core/portable.h"

namespace grip {
namespace cpu {
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
          const float* A, int64_t lda, const void* B, grip_dtype b_dtype, int64_t ldb, float beta,
          float* C, int64_t ldc) {
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      float acc = 0.f;
      for (int64_t p = 0; p < K; ++p) {
        const float a = trans_a ? A[p * lda + i] : A[i * lda + p];
        const float b = load_float(B, (int)b_dtype, trans_b ? j * ldb + p : p * ldb + j);
        acc += a * b;
      }
      C[i * ldc + j] = alpha * acc + (beta == 0.f ? 0.f : beta * C[i * ldc + j]);
    }
}
}  // namespace cpu
}  // namespace grip
