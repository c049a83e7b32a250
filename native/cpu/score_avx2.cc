// score_avx2.cc — the scorer's row kernels compiled for AVX2 (see score_impl.h).
#define GRIP_SCORE_ISA avx2
#include "score_impl.h"
