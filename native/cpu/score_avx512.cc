// score_avx512.cc — the scorer's row kernels compiled for AVX512 (see score_impl.h).
#define GRIP_SCORE_ISA avx512
#include "score_impl.h"
