// transformer_avx512.cc — the transformer row kernels compiled for AVX512 (see transformer_impl.h).
#define GRIP_TRANSFORMER_ISA avx512
#include "transformer_impl.h"
