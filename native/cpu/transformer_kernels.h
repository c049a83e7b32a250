// transformer_kernels.h — the row / elementwise kernels of the transformer
// ops, one variant per ISA (transformer_impl.h compiled in transformer.cc,
// transformer_avx2.cc and transformer_avx512.cc), picked at run time by
// transformer_kernels().
#pragma once
#include <cstdint>

#include "../core/args.h"

namespace grip {
namespace cpu {

#define GRIP_TRANSFORMER_KERNELS                                                          \
  void layer_norm_rows(const NormArgs& a, int64_t r0, int64_t r1);                        \
  void rms_norm_rows(const NormArgs& a, int64_t r0, int64_t r1);                          \
  void gelu_range(const GeluArgs& a, int64_t i0, int64_t i1);                             \
  void silu_mul_range(const SiluMulArgs& a, int64_t i0, int64_t i1);                      \
  void softmax_rows(const SoftmaxArgs& a, int64_t r0, int64_t r1);                        \
  float dot(const float* x, const float* y, int64_t n);                                   \
  void axpy(float alpha, const float* x, int64_t n, float* y);                            \
  float softmax_block(float* s, int64_t n, int64_t valid, float* m, float* l);            \
  void softmax_cols(float* st, int64_t ld, int64_t rows, int64_t kb, int64_t M,            \
                    const int32_t* valid, float* m, float* l, float* corr, float* sum);

namespace scalar { GRIP_TRANSFORMER_KERNELS }
namespace avx2 { GRIP_TRANSFORMER_KERNELS }
namespace avx512 { GRIP_TRANSFORMER_KERNELS }

// The kernel set for this CPU (AVX-512, AVX2/FMA or baseline), chosen once.
struct TransformerKernels {
  decltype(&scalar::layer_norm_rows) layer_norm_rows;
  decltype(&scalar::rms_norm_rows) rms_norm_rows;
  decltype(&scalar::gelu_range) gelu_range;
  decltype(&scalar::silu_mul_range) silu_mul_range;
  decltype(&scalar::softmax_rows) softmax_rows;
  decltype(&scalar::dot) dot;
  decltype(&scalar::axpy) axpy;
  // One key block of an online softmax row: s[0:n] holds the scores, of which
  // s[0:valid] are attended. With the running max *m and sum *l, writes
  // s[j] = exp(s[j] - m_new) (0 for j >= valid), updates *m and *l, and
  // returns the factor exp(m_old - m_new) by which earlier output sums must
  // be scaled (0 when nothing came before).
  decltype(&scalar::softmax_block) softmax_block;
  // The same for M query columns at once, keys along rows: st[j * ld + r] is
  // the score of key j for query r, computed for rows j < rows (rows..kb-1 are
  // written 0); query r attends keys j < valid[r]. Writes p = exp(s - m_new)
  // (0 where not attended), updates m[r], l[r], and sets corr[r] as
  // softmax_block returns it; sum[M] is scratch. Vectorised across queries.
  decltype(&scalar::softmax_cols) softmax_cols;
};
const TransformerKernels& transformer_kernels();

}  // namespace cpu
}  // namespace grip
