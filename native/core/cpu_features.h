// cpu_features.h — what the running CPU can do, read once at start-up, so a
// prebuilt binary picks AVX-512 / AVX2 kernels at run time (no -march=native).
#pragma once

namespace grip {

struct CpuFeatures {
  bool avx2_fma = false;     // AVX2 + FMA3
  bool avx512 = false;       // AVX-512 F, BW, DQ, VL
  bool avx512_bf16 = false;  // AVX512_BF16 (vdpbf16ps)
  bool avx_vnni = false;     // AVX-VNNI (vpdpbusd on ymm, VEX): the int8 dot of q8_0 weights
  bool avx512_vnni = false;  // AVX512_VNNI (+VL: vpdpbusd on ymm, EVEX)
  bool amx_int8 = false;     // AMX-TILE + AMX-INT8 (tdpbssd), the OS saving tile state and granting it to us
};

const CpuFeatures& cpu_features();

// "avx512_bf16" | "avx512" | "avx2" | "scalar": the best level in use.
const char* simd_level();

}  // namespace grip
