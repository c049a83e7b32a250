// cpu_features.cc — run-time CPU feature detection (placeholder).
#include "cpu_features.h"

namespace grip {
const CpuFeatures& cpu_features() {
  static const CpuFeatures f = [] {
    CpuFeatures r;
    __builtin_cpu_init();
    r.avx2_fma = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    r.avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
    r.avx512_bf16 = r.avx512 && __builtin_cpu_supports("avx512bf16");
    return r;
  }();
  return f;
}
const char* simd_level() {
  const CpuFeatures& f = cpu_features();
  if (f.avx512_bf16) return "avx512_bf16";
  if (f.avx512) return "avx512";
  if (f.avx2_fma) return "avx2";
  return "scalar";
}
}  // namespace grip
