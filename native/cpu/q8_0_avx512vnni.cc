// q8_0_avx512vnni.cc — the q8_0 row kernels compiled for avx512vnni (see q8_0_impl.h).
#define GRIP_Q8_ISA 3
#include "q8_0_impl.h"

grip::cpu::q8_0_detail::RowsFn grip::cpu::q8_0_detail::rows_avx512_vnni() { return &rows; }
grip::cpu::q8_0_detail::PanelFn grip::cpu::q8_0_detail::panel_avx512_vnni() { return &panel; }
