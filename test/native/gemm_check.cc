// gemm_check.cc — grip::cpu::gemm against a double-accumulating reference
// (every trans_a/trans_b, B f32/f16/bf16, odd sizes, alpha/beta, padded
// leading dims, each SIMD level the CPU has), plus the thread pool. The
// bf16 dot path (avx512_bf16, bf16 B only) is checked against the same
// reference with A rounded to bf16 first (f32_to_bf16, nearest even).
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "check.h"
#include "core/cpu_features.h"
#include "core/portable.h"
#include "core/threadpool.h"
#include "cpu/gemm.h"
#include "cpu/gemm_kernels.h"

namespace {

struct Lcg {
  uint64_t s;
  float next() {  // uniform in [-1, 1)
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(s >> 40) / (double)(1ull << 23) - 1.0);
  }
};

struct Case {
  int64_t M, N, K;
};

// The SIMD levels this CPU can run, each once (override -> kernel name).
std::vector<std::string> levels() {
  using namespace grip::cpu::gemm_detail;
  std::vector<std::string> out;
  for (const char* l : {"scalar", "avx2", "avx512"}) {
    set_simd_override(l);
    const std::string name = active_kernel_name();
    bool seen = false;
    for (auto& o : out) seen |= o == name;
    if (!seen && name == l) out.push_back(l);
  }
  set_simd_override(nullptr);
  return out;
}

// Whether the bf16 dot kernel runs here (CPU with AVX512_BF16, GRIP_SIMD not capping it).
bool bf16_dot_level() {
  using namespace grip::cpu::gemm_detail;
  set_simd_override("avx512_bf16");
  set_bf16_dot_override(1);
  const bool on = std::string(active_kernel_name(GRIP_BF16)) == "avx512_bf16";
  set_bf16_dot_override(-1);
  set_simd_override(nullptr);
  return on;
}

// bias16: empty, or the bias [N] of the bf16 dot level's calls (bf16_dot_level() true).
void run_case(grip_check::Context& grip_check_ctx, const Case& cs, const std::vector<std::string>& lv,
              const std::vector<float>& bias16) {
  const int64_t M = cs.M, N = cs.N, K = cs.K;
  Lcg rng{(uint64_t)(M * 1000003 + N * 1009 + K)};
  // Logical op(A) [M,K] and op(B) [K,N] values.
  std::vector<float> a((size_t)(M * K)), b((size_t)(K * N)), c0((size_t)(M * N));
  for (auto& x : a) x = rng.next();
  for (auto& x : b) x = rng.next();
  for (auto& x : c0) x = rng.next();
  const int kdt[3] = {GRIP_F32, GRIP_F16, GRIP_BF16};
  const char* kdtn[3] = {"f32", "f16", "bf16"};
  for (int di = 0; di < 3; ++di) {
    const int dt = kdt[di];
    // B as stored (rounded to its dtype) and the values the reference uses.
    std::vector<uint16_t> bh((size_t)(K * N));
    std::vector<float> bv((size_t)(K * N));
    for (size_t i = 0; i < bv.size(); ++i) {
      if (dt == GRIP_F32) bv[i] = b[i];
      else {
        bh[i] = dt == GRIP_F16 ? grip::f32_to_f16(b[i]) : grip::f32_to_bf16(b[i]);
        bv[i] = grip::load_float(bh.data(), dt, (int64_t)i);
      }
    }
    // Double-accumulated product and sum |a||b| per entry; P16/S16 with a
    // rounded to bf16 (what the bf16 dot path multiplies).
    std::vector<double> P((size_t)(M * N)), S((size_t)(M * N)), P16, S16;
    const bool dot16 = dt == GRIP_BF16 && !bias16.empty();
    if (dot16) P16.resize((size_t)(M * N)), S16.resize((size_t)(M * N));
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) {
        double p = 0, s = 0, p16 = 0, s16 = 0;
        for (int64_t k = 0; k < K; ++k) {
          const double t = (double)a[i * K + k] * (double)bv[k * N + j];
          p += t;
          s += std::fabs(t);
          if (dot16) {
            const double t16 = (double)grip::bf16_to_f32(grip::f32_to_bf16(a[i * K + k])) * (double)bv[k * N + j];
            p16 += t16;
            s16 += std::fabs(t16);
          }
        }
        P[i * N + j] = p;
        S[i * N + j] = s;
        if (dot16) P16[i * N + j] = p16, S16[i * N + j] = s16;
      }
    for (int ta = 0; ta < 2; ++ta)
      for (int tb = 0; tb < 2; ++tb)
        for (int pad = 0; pad < 2; ++pad) {
          // Stored layouts with leading dims (padded by 3 when pad).
          const int64_t lda = (ta ? M : K) + 3 * pad, ldb = (tb ? K : N) + 3 * pad,
                        ldc = N + 5 * pad;
          const int64_t arows = ta ? K : M, brows = tb ? N : K;
          std::vector<float> As((size_t)(arows * lda), NAN);
          for (int64_t i = 0; i < M; ++i)
            for (int64_t k = 0; k < K; ++k) As[ta ? k * lda + i : i * lda + k] = a[i * K + k];
          std::vector<float> Bs32;
          std::vector<uint16_t> Bs16;
          if (dt == GRIP_F32) Bs32.assign((size_t)(brows * ldb), NAN);
          else Bs16.assign((size_t)(brows * ldb), 0x7e00);
          for (int64_t k = 0; k < K; ++k)
            for (int64_t j = 0; j < N; ++j) {
              const int64_t at = tb ? j * ldb + k : k * ldb + j;
              if (dt == GRIP_F32) Bs32[at] = b[k * N + j];
              else Bs16[at] = bh[k * N + j];
            }
          const void* Bp = dt == GRIP_F32 ? (const void*)Bs32.data() : (const void*)Bs16.data();
          std::vector<std::string> lvd = lv;
          if (dot16) lvd.push_back("avx512_bf16");
          for (const auto& level : lvd) {
            const bool on16 = level == "avx512_bf16";
            grip::cpu::gemm_detail::set_simd_override(level.c_str());
            grip::cpu::gemm_detail::set_bf16_dot_override(on16 ? 1 : 0);
            const float abs_[3][2] = {{1.f, 0.f}, {0.75f, -1.5f}, {-2.f, 1.f}};
            for (int ab = 0; ab < 3; ++ab) {
              if (ab > 0 && M * N * K > 2000000 && ab != 1) continue;  // keep big cases quick
              const float alpha = abs_[ab][0], beta = abs_[ab][1];
              // The bf16 dot level also takes a bias (in its store) on the last alpha/beta pair.
              const float* bias = on16 && ab == 2 ? bias16.data() : nullptr;
              std::vector<float> C((size_t)(M * ldc), 12345.f);
              for (int64_t i = 0; i < M; ++i)
                for (int64_t j = 0; j < N; ++j)
                  C[i * ldc + j] = beta == 0.f ? NAN : c0[i * N + j];  // beta 0: C ignored
              grip::cpu::gemm(ta, tb, M, N, K, alpha, As.data(), lda, Bp, (grip_dtype)dt, ldb, beta,
                              C.data(), ldc, bias);
              const std::vector<double>& PR = on16 ? P16 : P;
              const std::vector<double>& SR = on16 ? S16 : S;
              int bad = 0;
              std::string first;
              for (int64_t i = 0; i < M; ++i) {
                for (int64_t j = 0; j < ldc; ++j) {
                  const float got = C[i * ldc + j];
                  if (j >= N) {
                    if (got != 12345.f && bad++ == 0)
                      first = "wrote past N at (" + std::to_string(i) + "," + std::to_string(j) + ")";
                    continue;
                  }
                  const double cold = beta == 0.f ? 0.0 : (double)c0[i * N + j];
                  const double bj = bias ? (double)bias[j] : 0.0;
                  const double want = (double)alpha * PR[i * N + j] + (double)beta * cold + bj;
                  const double tol = 1.2e-7 * (2.0 * (double)K + 8.0) *
                                         (std::fabs(alpha) * SR[i * N + j] + std::fabs(beta * cold) +
                                          std::fabs(bj)) +
                                     1e-30;
                  if (!(std::fabs((double)got - want) <= tol) && bad++ == 0)
                    first = "C(" + std::to_string(i) + "," + std::to_string(j) + ") got " +
                            std::to_string(got) + " want " + std::to_string(want);
                }
              }
              CHECK_TRUE(bad == 0, "gemm " + level + " " + kdtn[di] + " ta=" + std::to_string(ta) +
                                       " tb=" + std::to_string(tb) + " pad=" + std::to_string(pad) +
                                       " M,N,K=" + std::to_string(M) + "," + std::to_string(N) + "," +
                                       std::to_string(K) + " alpha=" + std::to_string(alpha) +
                                       " beta=" + std::to_string(beta) + ": " +
                                       std::to_string(bad) + " bad, first " + first);
            }
          }
          grip::cpu::gemm_detail::set_simd_override(nullptr);
          grip::cpu::gemm_detail::set_bf16_dot_override(-1);
        }
  }
}

}  // namespace

GRIP_CHECK(gemm_matches_reference) {
  const std::vector<std::string> lv = levels();
  const grip::CpuFeatures& f = grip::cpu_features();
  CHECK_TRUE(lv.size() == 1u + (f.avx2_fma ? 1u : 0u) + (f.avx512 ? 1u : 0u),
             "one gemm kernel per SIMD level the CPU has");
  const int saved = grip::num_threads();
  grip::set_num_threads(2);  // exercise the threaded paths even on 1 core
  const bool dot16 = bf16_dot_level();
  CHECK_TRUE(dot16 == f.avx512_bf16, "the bf16 dot kernel runs exactly where the CPU has AVX512_BF16");
  // K odd, K mod 32 != 0, K > KC (odd K blocks: 517 = 2 x 259 at KC 256/512, 4101 = 3 x 1367
  // at the bf16 kernel's KC 2048 -> pairs straddle the block start).
  const Case cases[] = {{1, 1, 1},   {7, 13, 5},   {33, 65, 129}, {200, 300, 517},
                        {3, 4100, 5}, {7, 1000, 600}, {29, 47, 300}, {15, 33, 1030},
                        {5, 70, 4101}};
  for (const Case& cs : cases) {
    std::vector<float> bias16;
    if (dot16) {
      Lcg rng{(uint64_t)(cs.N * 77 + 1)};
      bias16.resize((size_t)cs.N);
      for (auto& x : bias16) x = rng.next();
    }
    run_case(grip_check_ctx, cs, lv, bias16);
  }
  grip::set_num_threads(saved);
}

// The bias joins the micro-kernels' store once (on the first K block, K > KC
// included), at every SIMD level, with and without beta; K = 0 gives beta*C + bias.
GRIP_CHECK(gemm_bias_in_store) {
  const std::vector<std::string> lv = levels();
  const Case cases[] = {{1, 1, 1}, {15, 37, 9}, {29, 70, 300}, {3, 5, 0}};
  for (const Case& cs : cases) {
    const int64_t M = cs.M, N = cs.N, K = cs.K;
    Lcg rng{(uint64_t)(M * 31 + N * 7 + K)};
    std::vector<float> a((size_t)(M * K)), b((size_t)(N * K)), bias((size_t)N), c0((size_t)(M * N));
    for (auto& x : a) x = rng.next();
    for (auto& x : b) x = rng.next();
    for (auto& x : bias) x = rng.next();
    for (auto& x : c0) x = rng.next();
    for (const auto& level : lv) {
      grip::cpu::gemm_detail::set_simd_override(level.c_str());
      for (float beta : {0.f, 0.5f}) {
        std::vector<float> C = c0;
        // B stored [N,K] (a Linear weight).
        grip::cpu::gemm(false, true, M, N, K, 1.f, a.data(), K, b.data(), GRIP_F32, K, beta, C.data(), N,
                        bias.data());
        int bad = 0;
        for (int64_t i = 0; i < M; ++i)
          for (int64_t j = 0; j < N; ++j) {
            double want = (double)bias[j] + (double)beta * c0[i * N + j], mag = std::fabs(want);
            for (int64_t k = 0; k < K; ++k) {
              want += (double)a[i * K + k] * b[j * K + k];
              mag += std::fabs((double)a[i * K + k] * b[j * K + k]);
            }
            if (!(std::fabs(C[i * N + j] - want) <= 1.2e-7 * (2.0 * (double)K + 8.0) * mag + 1e-30)) ++bad;
          }
        CHECK_TRUE(bad == 0, "gemm bias " + level + " M,N,K=" + std::to_string(M) + "," + std::to_string(N) +
                                 "," + std::to_string(K) + " beta=" + std::to_string(beta) + ": " +
                                 std::to_string(bad) + " bad");
      }
    }
    grip::cpu::gemm_detail::set_simd_override(nullptr);
  }
}

GRIP_CHECK(gemm_degenerate) {
  // K == 0 and alpha == 0: C = beta * C, A and B not read (null / NaN).
  std::vector<float> C = {1.f, 2.f, 3.f, 4.f};
  grip::cpu::gemm(false, false, 2, 2, 0, 1.f, nullptr, 0, nullptr, GRIP_F32, 2, 2.f, C.data(), 2);
  CHECK_TRUE(C[0] == 2.f && C[3] == 8.f, "K=0 scales C by beta");
  const float nanv[4] = {NAN, NAN, NAN, NAN};
  grip::cpu::gemm(false, false, 2, 2, 2, 0.f, nanv, 2, nanv, GRIP_F32, 2, 0.f, C.data(), 2);
  CHECK_TRUE(C[0] == 0.f && C[3] == 0.f, "alpha=0, beta=0 zeroes C");
  grip::cpu::gemm(false, false, 0, 2, 2, 1.f, nanv, 2, nanv, GRIP_F32, 2, 0.f, C.data(), 2);
  CHECK_TRUE(C[0] == 0.f, "M=0 leaves C alone");
}

GRIP_CHECK(threadpool_parallel_for) {
  const int saved = grip::num_threads();
  for (int nt : {1, 2, 3, 8}) {
    grip::set_num_threads(nt);
    CHECK_TRUE(grip::num_threads() == nt, "set_num_threads");
    for (int64_t n : {0, 1, 5, 64, 1000, 100003})
      for (int64_t grain : {1, 7, 4096}) {
        std::vector<std::atomic<int>> hits((size_t)n);
        for (auto& h : hits) h.store(0);
        std::atomic<int> small_chunk{0};
        grip::parallel_for(n, grain, [&](int64_t b, int64_t e) {
          if (e - b < grain && e != n) small_chunk.fetch_add(1);
          for (int64_t i = b; i < e; ++i) hits[(size_t)i].fetch_add(1);
        });
        bool once = true;
        for (auto& h : hits) once &= h.load() == 1;
        CHECK_TRUE(once, "each index once (nt=" + std::to_string(nt) + " n=" + std::to_string(n) +
                             " grain=" + std::to_string(grain) + ")");
        CHECK_TRUE(small_chunk.load() == 0, "chunks >= grain");
      }
  }
  // Nested calls run serially and still cover everything.
  grip::set_num_threads(4);
  std::atomic<int64_t> sum{0};
  grip::parallel_for(16, 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i)
      grip::parallel_for(100, 1, [&](int64_t b2, int64_t e2) {
        for (int64_t j = b2; j < e2; ++j) sum.fetch_add(i * 100 + j);
      });
  });
  CHECK_TRUE(sum.load() == 1599 * 1600 / 2, "nested parallel_for");
  // Several threads calling at once (libuv workers), plus a resize.
  std::atomic<int64_t> total{0};
  std::vector<std::thread> callers;
  for (int t = 0; t < 4; ++t)
    callers.emplace_back([&] {
      for (int r = 0; r < 200; ++r)
        grip::parallel_for(1000, 10, [&](int64_t b, int64_t e) { total.fetch_add(e - b); });
    });
  grip::set_num_threads(2);
  for (auto& th : callers) th.join();
  CHECK_TRUE(total.load() == 4 * 200 * 1000, "concurrent parallel_for");
  // An exception on a worker reaches the caller; the pool keeps working.
  bool caught = false;
  try {
    grip::parallel_for(64, 1, [&](int64_t b, int64_t) {
      if (b >= 32) throw 7;
    });
  } catch (int) {
    caught = true;
  }
  CHECK_TRUE(caught, "exception rethrown on the caller");
  std::atomic<int64_t> after{0};
  grip::parallel_for(1000, 1, [&](int64_t b, int64_t e) { after.fetch_add(e - b); });
  CHECK_TRUE(after.load() == 1000, "pool usable after an exception");
  grip::set_num_threads(0);
  CHECK_TRUE(grip::num_threads() >= 1, "set_num_threads(0) -> hardware cores");
  grip::set_num_threads(saved);
}
