// gemm.cc — packed, cache-blocked, multithreaded SGEMM (BLIS-style).
//
//   for jc over N in NC columns:                  (B block lives in L3)
//     for pc over K in KC:                        
//       pack op(B)[pc:pc+KC, jc:jc+NC] -> Bp      (parallel over NR panels;
//                                                  f16/bf16 widened here)
//       parallel over (MC row block) x (N split):
//         pack op(A)[ic:ic+MC, pc:pc+KC] -> Ap    (per thread, lives in L2)
//         macro-kernel: for each NR panel of Bp (L1), for each MR panel of Ap:
//           register-tile micro-kernel, C = alpha*acc + (pc==0 ? beta : 1)*C
//
// Micro-kernels (run-time dispatch on cpu_features(), see gemm_kernels.h):
// AVX-512 14x32 (gemm_avx512.cc), AVX2/FMA 6x16 (gemm_avx2.cc), scalar 6x8
// here (baseline x86-64; the compiler vectorises it with SSE2); for bf16 B
// with the bf16 dot path on (GRIP_BF16_DOT=1), AVX512_BF16 14x32 on bf16
// pairs (gemm_avx512bf16.cc).
// Sums are f32 FMA chains over k in order within each KC block, so results
// differ from a double-accumulated reference by O(K * eps) relative to
// sum |a||b| (the bf16 dot path adds A's rounding to bf16, 2^-9 relative).
#include "gemm.h"

#include <new>

#include <atomic>
#include <cstdlib>
#include <cstring>

#include "../core/cpu_features.h"
#include "../core/portable.h"
#include "../core/threadpool.h"
#include "gemm_kernels.h"
#include "gemv.h"

namespace grip {
namespace cpu {
namespace gemm_detail {
namespace {

// ---- scalar reference kernel (baseline ISA) --------------------------------------
constexpr int SMR = 6, SNR = 8;

void scalar_pack_a(bool trans, const float* A, int64_t lda, int64_t i0, int64_t mc, int64_t p0,
                   int64_t kc, float* Ap) {
  for (int64_t ir = 0; ir < mc; ir += SMR) {
    const int64_t r = mc - ir < SMR ? mc - ir : SMR;
    float* dst = Ap + ir * kc;
    for (int64_t k = 0; k < kc; ++k)
      for (int64_t i = 0; i < SMR; ++i)
        dst[k * SMR + i] = i < r ? (trans ? A[(p0 + k) * lda + i0 + ir + i]
                                          : A[(i0 + ir + i) * lda + p0 + k])
                                 : 0.f;
  }
}

void scalar_pack_b(bool trans, const void* B, int dtype, int64_t ldb, int64_t p0, int64_t kc,
                   int64_t j0, int64_t nc, float* Bp) {
  for (int64_t jr = 0; jr < nc; jr += SNR) {
    const int64_t nr = nc - jr < SNR ? nc - jr : SNR;
    float* dst = Bp + jr * kc;
    for (int64_t k = 0; k < kc; ++k)
      for (int64_t j = 0; j < SNR; ++j) {
        float v = 0.f;
        if (j < nr) {
          const int64_t idx = trans ? (j0 + jr + j) * ldb + p0 + k : (p0 + k) * ldb + j0 + jr + j;
          v = load_float(B, dtype, idx);
        }
        dst[k * SNR + j] = v;
      }
  }
}

// 6x8 tile in GCC vector types (SSE2 on baseline x86-64): 12 accumulators.
typedef float v4f __attribute__((vector_size(16)));

void scalar_macro(int64_t mc, int64_t nc, int64_t kc, const float* Ap, const float* Bp, float* C,
                  int64_t ldc, float alpha, float beta, const float* bias) {
  for (int64_t jr = 0; jr < nc; jr += SNR) {
    const int64_t nr = nc - jr < SNR ? nc - jr : SNR;
    for (int64_t ir = 0; ir < mc; ir += SMR) {
      const int64_t r = mc - ir < SMR ? mc - ir : SMR;
      const float* a = Ap + ir * kc;
      const float* b = Bp + jr * kc;
      v4f acc[SMR][2];
      for (int i = 0; i < SMR; ++i) acc[i][0] = acc[i][1] = v4f{0.f, 0.f, 0.f, 0.f};
      for (int64_t k = 0; k < kc; ++k) {
        v4f b0, b1;
        std::memcpy(&b0, b + k * SNR, 16);
        std::memcpy(&b1, b + k * SNR + 4, 16);
#pragma GCC unroll 8
        for (int i = 0; i < SMR; ++i) {
          const float av = a[k * SMR + i];
          const v4f ai = {av, av, av, av};
          acc[i][0] += ai * b0;
          acc[i][1] += ai * b1;
        }
      }
      for (int64_t i = 0; i < r; ++i) {
        float t[SNR];
        std::memcpy(t, &acc[i][0], 16);
        std::memcpy(t + 4, &acc[i][1], 16);
        float* c = C + (ir + i) * ldc + jr;
        for (int64_t j = 0; j < nr; ++j) {
          const float r0 = beta == 0.f ? alpha * t[j] : alpha * t[j] + beta * c[j];
          c[j] = bias ? r0 + bias[jr + j] : r0;
        }
      }
    }
  }
}

const Kernel kScalar = {"scalar", SMR, SNR, 256, 120, 2048, &scalar_pack_a, &scalar_pack_b,
                        &scalar_macro};

// ---- selection ---------------------------------------------------------------------
std::atomic<int> g_override{-1};  // -1 automatic, 0 scalar, 1 avx2, 2 avx512, 3 avx512_bf16
std::atomic<int> g_bf16_dot{-1};  // -1 GRIP_BF16_DOT, 0 off, 1 on

int simd_level() {
  const CpuFeatures& f = cpu_features();
  int level = f.avx512_bf16 ? 3 : f.avx512 ? 2 : f.avx2_fma ? 1 : 0;
  const int o = g_override.load(std::memory_order_relaxed);
  if (o >= 0 && o < level) level = o;
  return level;
}

bool bf16_dot_env() {
  static const bool on = [] {
    const char* e = std::getenv("GRIP_BF16_DOT");
    return e && !std::strcmp(e, "1");
  }();
  return on;
}

const Kernel* select_kernel(int dtype) {
  const int level = simd_level();
  if (dtype == (int)GRIP_BF16 && bf16_dot_active() && kernel_avx512_bf16()) return kernel_avx512_bf16();
  if (level >= 2 && kernel_avx512()) return kernel_avx512();
  if (level >= 1 && kernel_avx2()) return kernel_avx2();
  return &kScalar;
}

// ---- per-thread 64-byte aligned scratch ------------------------------------------
struct Scratch {
  float* p = nullptr;
  size_t cap = 0;  // floats
  ~Scratch() { std::free(p); }
  float* get(size_t n) {
    if (n > cap) {
      std::free(p);
      const size_t bytes = ((n * sizeof(float)) + 63) / 64 * 64;
      p = static_cast<float*>(std::aligned_alloc(64, bytes));
      cap = p ? n : 0;
    }
    return p;
  }
};
thread_local Scratch t_apack, t_bpack;

inline int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

void scale_c(int64_t M, int64_t N, float beta, float* C, int64_t ldc) {
  for (int64_t i = 0; i < M; ++i) {
    float* c = C + i * ldc;
    if (beta == 0.f)
      std::memset(c, 0, (size_t)N * sizeof(float));
    else if (beta != 1.f)
      for (int64_t j = 0; j < N; ++j) c[j] *= beta;
  }
}

}  // namespace

const Kernel* kernel_scalar() { return &kScalar; }

void set_simd_override(const char* level) {
  int o = -1;
  if (level && *level) {
    if (!std::strcmp(level, "scalar")) o = 0;
    else if (!std::strcmp(level, "avx2")) o = 1;
    else if (!std::strcmp(level, "avx512")) o = 2;
    else if (!std::strcmp(level, "avx512_bf16")) o = 3;
  }
  g_override.store(o, std::memory_order_relaxed);
}

bool bf16_dot_active() {
  const int o = g_bf16_dot.load(std::memory_order_relaxed);
  return simd_level() >= 3 && (o < 0 ? bf16_dot_env() : o == 1);
}

void set_bf16_dot_override(int on) { g_bf16_dot.store(on < 0 ? -1 : on ? 1 : 0, std::memory_order_relaxed); }

const char* active_kernel_name(int dtype) { return select_kernel(dtype)->name; }

const Kernel& active_kernel() { return *select_kernel((int)GRIP_F32); }

int active_simd_level() { return simd_level(); }

}  // namespace gemm_detail

void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
          const float* A, int64_t lda, const void* B, grip_dtype b_dtype, int64_t ldb, float beta,
          float* C, int64_t ldc, const float* bias) {
  using namespace gemm_detail;
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == 0.f) {
    gemm_detail::scale_c(M, N, beta, C, ldc);
    if (bias)
      for (int64_t i = 0; i < M; ++i)
        for (int64_t j = 0; j < N; ++j) C[i * ldc + j] += bias[j];
    return;
  }
  // A few rows against [N,K] weights (decode): stream the weights once instead of packing them.
  if (gemv_applies(trans_a, trans_b, M, alpha, beta)) return gemv(M, N, K, A, lda, B, b_dtype, ldb, C, ldc, bias);
  const Kernel& kn = *select_kernel((int)b_dtype);
  const int64_t MR = kn.mr, NR = kn.nr;
  const int dtype = (int)b_dtype;

  // Threads: about one per 4 MFLOP, at most num_threads().
  const double flops = 2.0 * (double)M * (double)N * (double)K;
  int64_t nthr = num_threads();
  if (flops < 4e6 * (double)nthr) nthr = (int64_t)(flops / 4e6) > 1 ? (int64_t)(flops / 4e6) : 1;

  // K blocks of equal size <= KC.
  const int64_t nkb = cdiv(K, kn.kc);
  const int64_t kc = cdiv(K, nkb);
  // N blocks: equal, multiples of NR, <= NC.
  const int64_t njb = cdiv(N, kn.nc);
  const int64_t nc = cdiv(cdiv(N, njb), NR) * NR;
  // M blocks: equal numbers of MR panels, <= MC rows; a multiple of the
  // thread count while there are few blocks, so threads finish together.
  const int64_t m_panels = cdiv(M, MR);
  int64_t nmb = cdiv(m_panels, kn.mc / MR);
  if (nmb < 8 * nthr) nmb = cdiv(nmb, nthr) * nthr;
  if (nmb > m_panels) nmb = m_panels;
  const int64_t mc = cdiv(m_panels, nmb) * MR;
  nmb = cdiv(M, mc);
  // Few row blocks: split each N block's panels among threads too.
  int64_t nsplit = 1;
  if (nmb < nthr) nsplit = cdiv(nthr, nmb);
  const int64_t max_bp = cdiv(nc, NR);
  if (nsplit > max_bp) nsplit = max_bp;

  float* Bp = t_bpack.get((size_t)(kc * nc));
  // Out of memory: throw; the C ABI turns it into GRIP_ERR_INTERNAL (the
  // pool re-throws a worker's exception on the calling thread).
  if (!Bp) throw std::bad_alloc();

  for (int64_t jc = 0; jc < N; jc += nc) {
    const int64_t ncur = N - jc < nc ? N - jc : nc;
    const int64_t nbp = cdiv(ncur, NR);
    for (int64_t pc = 0; pc < K; pc += kc) {
      const int64_t kcur = K - pc < kc ? K - pc : kc;
      const float beta_eff = pc == 0 ? beta : 1.f;

      auto pack_b = [&](int64_t b0, int64_t b1) {
        const int64_t c0 = b0 * NR, c1 = b1 * NR < ncur ? b1 * NR : ncur;
        kn.pack_b(trans_b, B, dtype, ldb, pc, kcur, jc + c0, c1 - c0, Bp + c0 * kcur);
      };
      // At least ~64 KiB of packed B per chunk.
      const int64_t bgrain = cdiv(16384, kcur * NR);
      if (nthr > 1) parallel_for(nbp, bgrain, pack_b);
      else pack_b(0, nbp);

      auto compute = [&](int64_t t0, int64_t t1) {
        float* Ap = t_apack.get((size_t)(kcur * mc));
        if (!Ap) throw std::bad_alloc();
        int64_t packed_ib = -1;
        for (int64_t t = t0; t < t1; ++t) {
          const int64_t ib = t / nsplit, js = t % nsplit;
          const int64_t ic = ib * mc;
          const int64_t mcur = M - ic < mc ? M - ic : mc;
          if (ib != packed_ib) {
            kn.pack_a(trans_a, A, lda, ic, mcur, pc, kcur, Ap);
            packed_ib = ib;
          }
          const int64_t p0 = nbp * js / nsplit, p1 = nbp * (js + 1) / nsplit;
          if (p1 <= p0) continue;
          const int64_t c0 = p0 * NR, c1 = p1 * NR < ncur ? p1 * NR : ncur;
          kn.macro(mcur, c1 - c0, kcur, Ap, Bp + c0 * kcur, C + ic * ldc + jc + c0, ldc, alpha,
                   beta_eff, bias && pc == 0 ? bias + jc + c0 : nullptr);
        }
      };
      if (nthr > 1) parallel_for(nmb * nsplit, 1, compute);
      else compute(0, nmb * nsplit);
    }
  }
}

}  // namespace cpu
}  // namespace grip
