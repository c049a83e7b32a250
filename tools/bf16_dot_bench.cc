// bf16_dot_bench.cc — the bf16 dot path (vdpbf16ps, GRIP_BF16_DOT) against
// the widening AVX-512 path for bf16 weights, in one process, alternating
// the two so machine load hits both alike: prefill GEMM (x[M,K] · W[N,K]^T)
// on Vicuna-7B shapes and the decode GEMV (M = 1). Prints best-of-reps
// times, GFLOP/s or GB/s, the ratio, and the largest normalised difference.
// Build (after the native checks' build, build/checks):
//   g++ -O2 -std=c++17 -Inative -Inative/include tools/bf16_dot_bench.cc \
//     build/checks/libgrip_ops.a -lpthread -o build/bf16_dot_bench
// Run: build/bf16_dot_bench [reps] [M]   (defaults 3, 611)
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "core/portable.h"
#include "core/threadpool.h"
#include "cpu/gemm.h"
#include "cpu/gemm_kernels.h"

namespace {
using grip::cpu::gemm_detail::set_bf16_dot_override;

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

void run(int64_t M, int64_t N, int64_t K, int reps) {
  std::vector<float> x((size_t)(M * K));
  std::vector<uint16_t> w((size_t)(N * K));
  uint64_t s = 1;
  auto next = [&] {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(s >> 40) / (double)(1ull << 23) - 1.0);
  };
  for (auto& v : x) v = next();
  for (auto& v : w) v = grip::f32_to_bf16(next() * 0.05f);
  std::vector<float> c[2] = {std::vector<float>((size_t)(M * N)), std::vector<float>((size_t)(M * N))};
  double best[2] = {1e30, 1e30};
  for (int r = 0; r < reps + 1; ++r)
    for (int on = 0; on < 2; ++on) {
      set_bf16_dot_override(on);
      const double t0 = now();
      grip::cpu::gemm(false, true, M, N, K, 1.f, x.data(), K, w.data(), GRIP_BF16, K, 0.f, c[on].data(), N);
      const double t = now() - t0;
      if (r > 0 && t < best[on]) best[on] = t;  // r = 0 warms up (packing buffers, pages)
    }
  set_bf16_dot_override(-1);
  double num = 0, den = 0, maxrel = 0;
  for (int64_t j = 0; j < N; ++j)
    for (int64_t i = 0; i < M; ++i) {
      const double d = (double)c[1][i * N + j] - c[0][i * N + j];
      num += d * d;
      den += (double)c[0][i * N + j] * c[0][i * N + j];
      (void)maxrel;
    }
  const double flops = 2.0 * M * N * K, bytes = 2.0 * N * K + 4.0 * M * K;
  const char* unit = M <= 4 ? "GB/s" : "GFLOP/s";
  const double q = M <= 4 ? bytes : flops;
  std::printf("gemm bf16 | M=%lld N=%lld K=%lld | widen %.2f ms %.1f %s | dot %.2f ms %.1f %s | ratio %.2fx | rel l2 diff %.2e\n",
              (long long)M, (long long)N, (long long)K, best[0] * 1e3, q / best[0] * 1e-9, unit, best[1] * 1e3,
              q / best[1] * 1e-9, unit, best[0] / best[1], std::sqrt(num / den));
}
}  // namespace

int main(int argc, char** argv) {
  const int reps = argc > 1 ? std::atoi(argv[1]) : 3;
  const int64_t M = argc > 2 ? std::atoll(argv[2]) : 611;
  std::printf("threads %d, bf16 dot kernel %s\n", grip::num_threads(),
              (set_bf16_dot_override(1), grip::cpu::gemm_detail::active_kernel_name(GRIP_BF16)));
  run(M, 4096, 4096, reps);
  run(M, 11008, 4096, reps);
  run(1, 4096, 4096, reps * 4);
  run(1, 11008, 4096, reps * 4);
  run(4, 11008, 4096, reps * 4);
  return 0;
}
