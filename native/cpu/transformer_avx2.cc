// transformer_avx2.cc — the transformer row kernels compiled for AVX2 (see transformer_impl.h).
#define GRIP_TRANSFORMER_ISA avx2
#include "transformer_impl.h"
