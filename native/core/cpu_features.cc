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
// AMX-INT8 (the q8_0 prefill tile) needs the CPU bits, the OS saving tile
// state (XCR0 bits 17 and 18) and, on Linux, the process asking for it
// once (arch_prctl ARCH_REQ_XCOMP_PERM); any GRIP_SIMD cap drops it.
#include "cpu_features.h"

#include <cstdlib>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
#if defined(__linux__) && defined(__x86_64__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace grip {
namespace {
#if defined(__x86_64__)
bool amx_int8_usable() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !(d & (1u << 24)) || !(d & (1u << 25))) return false;
  if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27))) return false;  // OSXSAVE: xgetbv is allowed
  unsigned lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  if ((lo & (3u << 17)) != (3u << 17)) return false;  // XTILECFG and XTILEDATA
#if defined(__linux__)
  // ARCH_REQ_XCOMP_PERM for XFEATURE_XTILEDATA: without it the first tile instruction faults.
  return syscall(SYS_arch_prctl, 0x1023, 18) == 0;
#else
  return false;
#endif
}
#endif

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
#if defined(__x86_64__)
  r.amx_int8 = r.avx512_bf16 && amx_int8_usable();
#endif
  if (const char* e = std::getenv("GRIP_SIMD")) {
    if (!std::strcmp(e, "scalar") || !std::strcmp(e, "none")) {
      r.avx2_fma = r.avx512 = r.avx512_bf16 = r.avx_vnni = r.avx512_vnni = r.amx_int8 = false;
    } else if (!std::strcmp(e, "avx2")) {
      r.avx512 = r.avx512_bf16 = r.avx_vnni = r.avx512_vnni = r.amx_int8 = false;
    } else if (!std::strcmp(e, "avx_vnni")) {
      r.avx512 = r.avx512_bf16 = r.avx512_vnni = r.amx_int8 = false;
    } else if (!std::strcmp(e, "avx512")) {
      r.avx512_bf16 = r.amx_int8 = false;
    } else if (!std::strcmp(e, "avx512_bf16")) {
      r.amx_int8 = false;
    }  // "native", "" or anything else: no cap
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
