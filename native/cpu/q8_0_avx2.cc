// q8_0_avx2.cc — the q8_0 row kernels and the prefill tile compiled for avx2 (see q8_0_impl.h).
#define GRIP_Q8_ISA 1
#include "q8_0_impl.h"

grip::cpu::q8_0_detail::RowsFn grip::cpu::q8_0_detail::rows_avx2() { return &rows; }
grip::cpu::q8_0_detail::TileFn grip::cpu::q8_0_detail::tile_avx2() { return &tile; }
