// score_kernels.h — row kernels of the scorer, one variant per ISA
// (score_impl.h compiled in score.cc, score_avx2.cc, score_avx512.cc).
#pragma once
#include <cstdint>

#include "grip/grip.h"

namespace grip {
namespace cpu {

struct ScoreRowCtx {
  const void* x;
  grip_dtype dtype;
  int64_t N, D, H;
  const float *ln_w, *ln_b, *b1;
  const float* v;  // [B,D] query directions (already / sqrt(R)); null: no dot
  const float* a;  // [B,H] w2 * (1 + gamma)
  const float* c;  // [B]   sum beta*w2 + b2
};

// Rows [r0, r1) of a chunk whose first row is the global token row row0
// (row = b*N + n): h[r] = LayerNorm(x[row]); qdot[r] = h[r]·v[b]; mean/rstd
// per row (each output may be null).
#define GRIP_SCORE_KERNELS                                                                \
  void ln_rows(const ScoreRowCtx& k, int64_t row0, int64_t r0, int64_t r1, float* h,      \
               float* qdot, float* mean, float* rstd);                                     \
  void epilogue_rows(const ScoreRowCtx& k, int64_t row0, int64_t r0, int64_t r1,          \
                     const float* z, const float* qdot, float* scores);

namespace scalar { GRIP_SCORE_KERNELS }
namespace avx2 { GRIP_SCORE_KERNELS }
namespace avx512 { GRIP_SCORE_KERNELS }

// erf as used by the forward (same approximation on every ISA variant).
float score_erf(float x);

}  // namespace cpu
}  // namespace grip
