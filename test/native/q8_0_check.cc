// q8_0_check.cc — the q8_0 Linear kernels (cpu/q8_0*.cc) at each kernel the
// CPU has: against a double reference on the same quantised integers and
// scales (M 1..38, K 32..4128, bias, padded output rows), bit-identical to the
// scalar kernel (amx_int8 from 16 rows on: its own arithmetic, within the same
// bound), on 1 and 2 threads, and nothing written outside y's rows.
// Buffers are exactly sized, so the ASan build catches a kernel reading past them.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "check.h"
#include "core/portable.h"
#include "core/threadpool.h"
#include "cpu/q8_0.h"

namespace {

float lcg(uint64_t& s) {
  s = s * 6364136223846793005ull + 1442695040888963407ull;
  return (float)((double)(s >> 40) / (double)(1ull << 23) - 1.0);
}

}  // namespace

GRIP_CHECK(q8_0_linear_matches_reference_at_every_kernel) {
  const int saved = grip::num_threads();
  const int64_t Ks[] = {32, 64, 160, 4128};
  const int64_t Ms[] = {1, 2, 3, 4, 5, 8, 9, 16, 17, 38};
  for (int64_t K : Ks)
    for (int64_t M : Ms) {
      const int64_t N = 37, ldy = N + 3, nb = K / 32;
      uint64_t s = (uint64_t)(K * 977 + M);
      std::vector<float> x((size_t)(M * K)), wf((size_t)(N * K)), bias((size_t)N);
      for (auto& v : x) v = 3.f * lcg(s);
      for (auto& v : wf) v = 0.5f * lcg(s);
      for (auto& v : bias) v = lcg(s);
      std::vector<uint8_t> w((size_t)grip::cpu::q8_0_bytes(N * K)), xq((size_t)grip::cpu::q8_0_bytes(M * K));
      grip::cpu::quantize_q8_0(wf.data(), N, K, K, w.data());
      grip::cpu::quantize_q8_0(x.data(), M, K, K, xq.data());
      std::vector<float> scalar;
      for (const char* kernel : {"scalar", "avx2", "avx_vnni", "avx512_vnni", "amx_int8"}) {
        grip::cpu::set_q8_0_kernel_override(kernel);
        if (std::strcmp(grip::cpu::q8_0_kernel_name(), kernel) != 0) continue;  // the CPU lacks it
        std::vector<float> y1((size_t)(M * ldy), 12345.f), y2 = y1;
        grip::set_num_threads(1);
        grip::cpu::linear_q8_0(M, N, K, x.data(), K, w.data(), y1.data(), ldy, bias.data());
        grip::set_num_threads(2);
        grip::cpu::linear_q8_0(M, N, K, x.data(), K, w.data(), y2.data(), ldy, bias.data());
        int bad = 0, differ = 0, outside = 0;
        for (int64_t m = 0; m < M; ++m)
          for (int64_t n = 0; n < ldy; ++n) {
            const float got = y1[m * ldy + n];
            if (std::memcmp(&got, &y2[m * ldy + n], 4) != 0) ++differ;
            if (n >= N) {
              if (got != 12345.f) ++outside;
              continue;
            }
            double want = bias[n], mag = std::fabs(bias[n]);
            for (int64_t b = 0; b < nb; ++b) {
              const uint8_t* wb = w.data() + (n * nb + b) * 34;
              const uint8_t* xb = xq.data() + (m * nb + b) * 34;
              uint16_t hw, hx;
              std::memcpy(&hw, wb, 2);
              std::memcpy(&hx, xb, 2);
              const float d = grip::f16_to_f32(hw) * grip::f16_to_f32(hx);
              for (int g = 0; g < 32; g += 4) {
                int32_t dot = 0;
                for (int j = g; j < g + 4; ++j) dot += (int32_t)(int8_t)wb[2 + j] * (int32_t)(int8_t)xb[2 + j];
                want += (double)d * dot;
                mag += std::fabs((double)d * dot);
              }
            }
            if (!(std::fabs(got - want) <= 6e-8 * ((double)nb + 9.0) * mag + 1e-30)) ++bad;
          }
        const std::string what = std::string("q8_0 ") + kernel + " M,K=" + std::to_string(M) + "," + std::to_string(K);
        CHECK_TRUE(bad == 0, what + ": " + std::to_string(bad) + " values off the reference");
        CHECK_TRUE(differ == 0, what + ": 1 and 2 threads differ in " + std::to_string(differ) + " values");
        CHECK_TRUE(outside == 0, what + ": wrote past N");
        const bool own_sums = !std::strcmp(kernel, "amx_int8") && M >= 16;  // one int32 per block (q8_0_kernels.h)
        if (scalar.empty()) scalar = y1;
        else if (!own_sums) CHECK_TRUE(std::memcmp(scalar.data(), y1.data(), y1.size() * 4) == 0, what + ": bits differ from the scalar kernel");
      }
    }
  grip::cpu::set_q8_0_kernel_override(nullptr);
  grip::set_num_threads(saved);
}
