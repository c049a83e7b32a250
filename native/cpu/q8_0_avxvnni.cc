// q8_0_avxvnni.cc — the q8_0 row kernels compiled for avxvnni (see q8_0_impl.h).
#define GRIP_Q8_ISA 2
#include "q8_0_impl.h"

grip::cpu::q8_0_detail::RowsFn grip::cpu::q8_0_detail::rows_avx_vnni() { return &rows; }
