// gemv_check.cc — the decode GEMV kernels (cpu/gemv*.cc) at each SIMD level
// the CPU has: against a double-accumulating reference (M 1..4, k tails,
// f32/f16/bf16 weights, padded strides, bias), each level bit-identical on
// 1 and 2 threads, and nothing written outside C's rows. The bf16 dot path
// (level avx512_bf16, bf16 weights) against the reference with x rounded to
// bf16 (f32_to_bf16, nearest even), and each row bit-identical alone and in the batch.
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "check.h"
#include "core/portable.h"
#include "core/threadpool.h"
#include "cpu/gemm_kernels.h"
#include "cpu/gemv.h"

namespace {

float lcg(uint64_t& s) {
  s = s * 6364136223846793005ull + 1442695040888963407ull;
  return (float)((double)(s >> 40) / (double)(1ull << 23) - 1.0);
}

}  // namespace

GRIP_CHECK(gemv_matches_reference) {
  using grip::cpu::gemm_detail::set_simd_override;
  using grip::cpu::gemm_detail::active_simd_level;
  const int saved = grip::num_threads();
  const int64_t Ks[] = {1, 15, 16, 17, 31, 32, 33, 100, 1029};
  for (const char* level : {"scalar", "avx2", "avx512", "avx512_bf16"}) {
    set_simd_override(level);
    const std::string lname = level;
    const bool dot16 = lname == "avx512_bf16";
    const int want_level = lname == "scalar" ? 0 : lname == "avx2" ? 1 : lname == "avx512" ? 2 : 3;
    if (active_simd_level() != want_level) continue;  // the CPU lacks it
    grip::cpu::gemm_detail::set_bf16_dot_override(dot16 ? 1 : 0);
    if (dot16) CHECK_TRUE(grip::cpu::gemm_detail::bf16_dot_active(), "bf16 dot path on at level avx512_bf16");
    for (int dt : {GRIP_F32, GRIP_F16, GRIP_BF16})
      for (int64_t K : Ks)
        for (int64_t M = 1; M <= 4; ++M) {
          if (dot16 && dt != GRIP_BF16) continue;  // the f32/f16 paths are the avx512 level's
          const int64_t N = 203, lda = K + 3, ldw = K + 2, ldc = N + 5;  // padded strides; pads hold NaN
          uint64_t s = (uint64_t)(K * 131 + M * 7 + dt);
          std::vector<float> a((size_t)(M * lda), NAN), w32((size_t)(N * ldw), NAN), bias((size_t)N), wv((size_t)(N * ldw));
          std::vector<uint16_t> w16((size_t)(N * ldw), 0x7e00);
          for (int64_t m = 0; m < M; ++m)
            for (int64_t k = 0; k < K; ++k) a[m * lda + k] = lcg(s);
          for (auto& v : bias) v = lcg(s);
          for (size_t i = 0; i < w32.size(); ++i) {
            if ((int64_t)i % ldw >= K) continue;
            w32[i] = lcg(s);
            if (dt == GRIP_F32) wv[i] = w32[i];
            else {
              w16[i] = dt == GRIP_F16 ? grip::f32_to_f16(w32[i]) : grip::f32_to_bf16(w32[i]);
              wv[i] = grip::load_float(w16.data(), dt, (int64_t)i);
            }
          }
          const void* W = dt == GRIP_F32 ? (const void*)w32.data() : (const void*)w16.data();
          std::vector<float> c1((size_t)(M * ldc), 12345.f), c2 = c1;
          grip::set_num_threads(1);
          grip::cpu::gemv(M, N, K, a.data(), lda, W, (grip_dtype)dt, ldw, c1.data(), ldc, bias.data());
          grip::set_num_threads(2);
          grip::cpu::gemv(M, N, K, a.data(), lda, W, (grip_dtype)dt, ldw, c2.data(), ldc, bias.data());
          int bad = 0, differ = 0, outside = 0;
          for (int64_t m = 0; m < M; ++m)
            for (int64_t n = 0; n < ldc; ++n) {
              const float got = c1[m * ldc + n];
              if (got != c2[m * ldc + n]) ++differ;
              if (n >= N) {
                if (got != 12345.f) ++outside;
                continue;
              }
              double want = bias[n], mag = std::fabs(bias[n]);
              for (int64_t k = 0; k < K; ++k) {
                const float am = dot16 ? grip::bf16_to_f32(grip::f32_to_bf16(a[m * lda + k])) : a[m * lda + k];
                want += (double)am * wv[n * ldw + k];
                mag += std::fabs((double)am * wv[n * ldw + k]);
              }
              if (!(std::fabs(got - want) <= 1.2e-7 * (2.0 * (double)K + 8.0) * mag + 1e-30)) ++bad;
            }
          const std::string what = std::string("gemv ") + level + " dtype " + std::to_string(dt) + " M,K=" +
                                   std::to_string(M) + "," + std::to_string(K);
          CHECK_TRUE(bad == 0, what + ": " + std::to_string(bad) + " values off the reference");
          CHECK_TRUE(differ == 0, what + ": 1 and 2 threads differ in " + std::to_string(differ) + " values");
          CHECK_TRUE(outside == 0, what + ": wrote past N");
          // Each row alone gives the bits it has in the batch (M > 1).
          int alone_differ = 0;
          for (int64_t m = 0; m < M && M > 1; ++m) {
            std::vector<float> c3((size_t)ldc, 12345.f);
            grip::cpu::gemv(1, N, K, a.data() + m * lda, lda, W, (grip_dtype)dt, ldw, c3.data(), ldc, bias.data());
            for (int64_t n = 0; n < N; ++n) alone_differ += c3[n] != c1[m * ldc + n];
          }
          CHECK_TRUE(alone_differ == 0, what + ": a row alone differs from the batch in " +
                                            std::to_string(alone_differ) + " values");
        }
  }
  grip::cpu::gemm_detail::set_bf16_dot_override(-1);
  set_simd_override(nullptr);
  grip::set_num_threads(saved);
}
