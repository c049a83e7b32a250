// cpu_features.cc — run-time CPU feature detection.
//
// __builtin_cpu_supports (libgcc's cpu model, g++ >= 12 knows "avx512bf16")
// reports AVX / AVX-512 features only when the OS saves the wide registers
// (libgcc checks XGETBV's XCR0 bits before setting them), so a kernel that
// does not enable AVX-512 state never gets the AVX-512 paths.
//
// GRIP_SIMD=scalar|avx2|avx_vnni|avx512|avx512_bf16 caps the level (never
// raises it above what the CPU has), so tests can cover every path on one
// machine. The VNNI flags only pick the q8_0 kernels (cpu/q8_0*.cc): avx2
// drops both, avx_vnni keeps AVX-VNNI only, avx512 keeps AVX512_VNNI.
#include "cpu_features.h"

#include <cstdlib>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

namespace grip {
namespace {
CpuFeatures detect() {
  CpuFeatures r;
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  r.avx2_fma = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  r.avx512 = r.avx2_fma && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
  r.avx512_bf16 = r.avx512 && __builtin_cpu_supports("avx512bf16");
  // AVX-VNNI by CPUID (leaf 7, subleaf 1, EAX bit 4): clang 14's
  // __builtin_cpu_supports does not know "avxvnni" (the libFuzzer build).
  unsigned a = 0, b = 0, c = 0, d = 0;
  r.avx_vnni = r.avx2_fma && __get_cpuid_count(7, 1, &a, &b, &c, &d) && (a & (1u << 4)) != 0;
  r.avx512_vnni = r.avx512 && __builtin_cpu_supports("avx512vnni");
#endif
  if (const char* e = std::getenv("GRIP_SIMD")) {
    if (!std::strcmp(e, "scalar") || !std::strcmp(e, "none")) {
      r.avx2_fma = r.avx512 = r.avx512_bf16 = r.avx_vnni = r.avx512_vnni = false;
    } else if (!std::strcmp(e, "avx2")) {
      r.avx512 = r.avx512_bf16 = r.avx_vnni = r.avx512_vnni = false;
    } else if (!std::strcmp(e, "avx_vnni")) {
      r.avx512 = r.avx512_bf16 = r.avx512_vnni = false;
    } else if (!std::strcmp(e, "avx512")) {
      r.avx512_bf16 = false;
    }  // "avx512_bf16", "native", "" or anything else: no cap
  }
  return r;
}
}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = detect();
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
