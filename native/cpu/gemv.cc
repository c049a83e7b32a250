// gemv.cc — the decode GEMV driver and its scalar kernel. The output rows
// are split among the threads in contiguous ranges (grip::parallel_for),
// each weight row is streamed once per call for all M activation rows.
// SIMD kernels: gemv_avx512.cc (16 lanes), gemv_avx2.cc (8 lanes), chosen
// with the GEMM's level (cpu_features() capped by GRIP_SIMD and the test
// hook set_simd_override); for bf16 weights with the bf16 dot path on,
// gemv_avx512bf16.cc on activations rounded to bf16 here, once per call;
// for bf16 weights otherwise on AVX-512, gemv_avx512.cc's split kernel on
// activations split into even and odd k here, once per call.
#include "gemv.h"

#include <cstdlib>
#include <new>

#include "../core/portable.h"
#include "../core/threadpool.h"
#include "gemm_kernels.h"
#include "gemv_kernels.h"

namespace grip {
namespace cpu {
namespace gemv_detail {
namespace {

// Scalar: 4 partial sums per row (k mod 4), added in a fixed order at the end.
void scalar_rows(int64_t M, int64_t K, const float* x, int64_t ldx, const void* w, int64_t ldw, int dtype,
                 int64_t n0, int64_t n1, float* y, int64_t ldy, const float* bias) {
  for (int64_t n = n0; n < n1; ++n) {
    for (int64_t m = 0; m < M; ++m) {
      const float* xm = x + m * ldx;
      float s[4] = {0.f, 0.f, 0.f, 0.f};
      for (int64_t k = 0; k < K; ++k) s[k & 3] += xm[k] * load_float(w, dtype, n * ldw + k);
      const float sum = (s[0] + s[1]) + (s[2] + s[3]);
      y[m * ldy + n] = bias ? sum + bias[n] : sum;
    }
  }
}

}  // namespace

RowsFn rows_scalar() { return &scalar_rows; }

}  // namespace gemv_detail

bool gemv_applies(bool trans_a, bool trans_b, int64_t M, float alpha, float beta) {
  return !trans_a && trans_b && M >= 1 && M <= gemv_detail::kMaxRows && alpha == 1.f && beta == 0.f;
}

void gemv(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const void* W, grip_dtype w_dtype,
          int64_t ldw, float* C, int64_t ldc, const float* bias) {
  using namespace gemv_detail;
  const int64_t row_bytes = K * (w_dtype == GRIP_F32 ? 4 : 2);  // bytes read per output
  // At least ~256 KiB of weights per chunk: below that a thread hop costs more than it saves.
  const int64_t grain = row_bytes > 0 ? (262144 + row_bytes - 1) / row_bytes : N;
  // The calling thread's copy of the activations (bf16-rounded or even/odd split), aligned, zero-padded
  // to whole zmm loads; the workers only read it while this call waits.
  struct Buf {
    void* p = nullptr;
    size_t cap = 0;
    ~Buf() { std::free(p); }
  };
  thread_local Buf xbuf;
  auto scratch = [&](size_t need) {
    if (need > xbuf.cap) {
      std::free(xbuf.p);
      xbuf.p = std::aligned_alloc(64, (need + 63) / 64 * 64);
      xbuf.cap = xbuf.p ? need : 0;
      if (!xbuf.p) throw std::bad_alloc();
    }
    return xbuf.p;
  };
  const int64_t ldxs = (K + 31) / 32 * 32;
  const int level = gemm_detail::active_simd_level();
  if (w_dtype == GRIP_BF16 && gemm_detail::bf16_dot_active() && rows_avx512_bf16()) {
    uint16_t* xb = static_cast<uint16_t*>(scratch((size_t)(M * ldxs) * sizeof(uint16_t)));
    round_bf16_avx512_bf16()(M, K, A, lda, xb, ldxs);
    const RowsBf16Fn rows = rows_avx512_bf16();
    const uint16_t* w = static_cast<const uint16_t*>(W);
    auto body = [&](int64_t n0, int64_t n1) { rows(M, K, xb, ldxs, w, ldw, n0, n1, C, ldc, bias); };
    if (num_threads() > 1 && N > grain) parallel_for(N, grain, body);
    else body(0, N);
    return;
  }
  if (w_dtype == GRIP_BF16 && level >= 2 && rows_bf16_split_avx512()) {
    float* xs = static_cast<float*>(scratch((size_t)(M * ldxs) * sizeof(float)));
    for (int64_t m = 0; m < M; ++m)
      for (int64_t k = 0; k < ldxs; k += 32)
        for (int64_t l = 0; l < 16; ++l) {
          xs[m * ldxs + k + l] = k + 2 * l < K ? A[m * lda + k + 2 * l] : 0.f;
          xs[m * ldxs + k + 16 + l] = k + 2 * l + 1 < K ? A[m * lda + k + 2 * l + 1] : 0.f;
        }
    const RowsSplitFn rows = rows_bf16_split_avx512();
    const uint16_t* w = static_cast<const uint16_t*>(W);
    auto body = [&](int64_t n0, int64_t n1) { rows(M, K, xs, ldxs, w, ldw, n0, n1, C, ldc, bias); };
    if (num_threads() > 1 && N > grain) parallel_for(N, grain, body);
    else body(0, N);
    return;
  }
  RowsFn rows = level >= 2 && rows_avx512() ? rows_avx512()
                : level >= 1 && rows_avx2() ? rows_avx2()
                                            : rows_scalar();
  const int dtype = (int)w_dtype;
  auto body = [&](int64_t n0, int64_t n1) { rows(M, K, A, lda, W, ldw, dtype, n0, n1, C, ldc, bias); };
  if (num_threads() > 1 && N > grain) parallel_for(N, grain, body);
  else body(0, N);
}

}  // namespace cpu
}  // namespace grip
