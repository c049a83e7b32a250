// q8_0.cc — quantising to Q8_0 and the Linear product over q8_0 weights
// (decode GEMV and prefill GEMM alike): the driver and the scalar kernel.
// The activations are quantised once per call into int8 rows plus one f32
// scale per block; the threads split the output columns, and within a
// thread's range 16 weight rows at a time (~70 KiB at K = 4096, in L2) meet
// every activation row in tiles of 4, so prefill reads each weight once
// (on AVX512_VNNI, 8 or more rows: tiles of 8 rows x 4 weight rows over a
// panel of row pairs instead, same bits; on AVX2, 4 or more rows: each
// chunk's weight rows repacked once into aligned blocks with f32 scales for
// a tile of 4 weight rows, same bits). On AMX-INT8, 16 or more rows go to
// the tile kernel (q8_0_amx.cc), whose bits differ from the others' by float
// rounding (q8_0_kernels.h, AmxFn).
// Kernels: q8_0_avx512vnni.cc, q8_0_avxvnni.cc, q8_0_avx2.cc (q8_0_impl.h), q8_0_amx.cc.
#include "q8_0.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <vector>

#include "../core/cpu_features.h"
#include "../core/portable.h"
#include "../core/threadpool.h"
#include "gemm_kernels.h"
#include "q8_0_kernels.h"

namespace grip {
namespace cpu {
namespace q8_0_detail {
namespace {

void scalar_rows(int64_t M, int64_t K, const int8_t* xq, const float* xd, const uint8_t* w, int64_t n0, int64_t n1,
                 float* y, int64_t ldy, const float* bias) {
  const int64_t nb = K / kQ8Block;
  for (int64_t n = n0; n < n1; ++n) {
    const uint8_t* row = w + n * nb * kQ8BlockBytes;
    for (int64_t m = 0; m < M; ++m) {
      float acc[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
      for (int64_t b = 0; b < nb; ++b) {
        const uint8_t* blk = row + b * kQ8BlockBytes;
        uint16_t h;
        std::memcpy(&h, blk, 2);
        const float d = f16_to_f32(h) * xd[m * nb + b];
        const int8_t* qw = reinterpret_cast<const int8_t*>(blk + 2);
        const int8_t* qx = xq + m * K + b * kQ8Block;
        for (int l = 0; l < 8; ++l) {
          int32_t s = 0;
          for (int j = 4 * l; j < 4 * l + 4; ++j) s += (int32_t)qw[j] * (int32_t)qx[j];
          acc[l] = std::fmaf((float)s, d, acc[l]);
        }
      }
      const float sum = ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
      y[m * ldy + n] = bias ? sum + bias[n] : sum;
    }
  }
}

// -1 automatic, else the highest kernel allowed: 0 scalar, 1 avx2, 2 avx_vnni, 3 avx512_vnni, 4 amx_int8
// (4: prefill of 16 or more rows on the tile kernel, fewer on avx512_vnni's).
std::atomic<int> g_override{-1};
constexpr int kLevels = 5;
const char* const kNames[kLevels] = {"scalar", "avx2", "avx_vnni", "avx512_vnni", "amx_int8"};

int kernel_level() {
  const CpuFeatures& f = cpu_features();
  // The GEMM's test hook (set_simd_override) caps this too: avx2 keeps AVX-VNNI, scalar drops all.
  const int simd = gemm_detail::active_simd_level();
  int level = f.amx_int8 && f.avx512_vnni && simd >= 3 && amx_int8() && rows_avx512_vnni() ? 4
              : f.avx512_vnni && simd >= 2 && rows_avx512_vnni() ? 3
              : f.avx_vnni && simd >= 1 && rows_avx_vnni()     ? 2
              : f.avx2_fma && simd >= 1 && rows_avx2()         ? 1
                                                               : 0;
  const int o = g_override.load(std::memory_order_relaxed);
  if (o >= 0 && o < level) level = o;
  // An override may name a kernel this CPU lacks between two it has (AVX512_VNNI without AVX-VNNI).
  if (level == 2 && !f.avx_vnni) level = 1;
  return level;
}

RowsFn kernel(int level) {
  switch (level) {
    case 4:
    case 3: return rows_avx512_vnni();
    case 2: return rows_avx_vnni();
    case 1: return rows_avx2();
    default: return &scalar_rows;
  }
}

// ggml's quantize_row_q8_0_ref on one block: the f16 scale's bits, and 32 int8 at q.
inline uint16_t quantize_block(const float* x, int8_t* q) {
  float amax = 0.f;
  for (int j = 0; j < kQ8Block; ++j) amax = std::max(amax, std::fabs(x[j]));
  const float d = amax / 127.f;
  const float id = d != 0.f ? 1.f / d : 0.f;
  for (int j = 0; j < kQ8Block; ++j) q[j] = (int8_t)std::roundf(x[j] * id);
  return f32_to_f16(d);
}

}  // namespace

RowsFn rows_scalar() { return &scalar_rows; }

}  // namespace q8_0_detail

void quantize_row_q8_0(const float* x, int64_t K, uint8_t* out) {
  for (int64_t b = 0; b < K / kQ8Block; ++b) {
    uint8_t* blk = out + b * kQ8BlockBytes;
    const uint16_t h = q8_0_detail::quantize_block(x + b * kQ8Block, reinterpret_cast<int8_t*>(blk + 2));
    std::memcpy(blk, &h, 2);
  }
}

void quantize_q8_0(const float* x, int64_t rows, int64_t K, int64_t ldx, uint8_t* out) {
  const int64_t row_bytes = q8_0_bytes(K);
  auto body = [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) quantize_row_q8_0(x + r * ldx, K, out + r * row_bytes);
  };
  const int64_t grain = std::max<int64_t>(1, 65536 / std::max<int64_t>(1, K));
  if (num_threads() > 1 && rows > grain) parallel_for(rows, grain, body);
  else body(0, rows);
}

void linear_q8_0(int64_t M, int64_t N, int64_t K, const float* x, int64_t ldx, const uint8_t* w, float* y,
                 int64_t ldy, const float* bias) {
  using namespace q8_0_detail;
  if (M <= 0 || N <= 0) return;
  const int64_t nb = K / kQ8Block;
  const int level = kernel_level();
  // Prefill on AMX: the activations go into 16-row tiles (zero rows up to the last whole tile); on
  // AVX512_VNNI: into the row-pair panel of the zmm tile (q8_0_kernels.h).
  const AmxFn amx = level == 4 && M >= kAmxRows ? amx_int8() : nullptr;
  const PanelFn panel = !amx && level >= 3 && M >= kPanelRows ? panel_avx512_vnni() : nullptr;
  const int64_t padded = amx ? (M + kAmxRows - 1) / kAmxRows * kAmxRows : panel ? (M + 1) / 2 * 2 : M;
  // The calling thread's scratch; the workers only read it while this call waits.
  thread_local std::vector<int8_t> t_xq;
  thread_local std::vector<float> t_xd;
  t_xq.resize((size_t)(padded * K));
  t_xd.resize((size_t)(padded * nb));
  int8_t* xq = t_xq.data();
  float* xd = t_xd.data();
  // Where row m's block b goes: row-major for the row kernels, the pair panel for the zmm tile, 16-row
  // tiles for AMX.
  auto q_at = [&](int64_t m, int64_t b) {
    return amx     ? xq + ((m / kAmxRows) * nb + b) * (kAmxRows * kQ8Block) + (m % kAmxRows) * kQ8Block
           : panel ? xq + ((m >> 1) * nb + b) * 64 + (m & 1) * kQ8Block
                   : xq + m * K + b * kQ8Block;
  };
  auto d_at = [&](int64_t m, int64_t b) {
    return amx     ? xd + ((m / kAmxRows) * nb + b) * kAmxRows + (m % kAmxRows)
           : panel ? xd + ((m >> 1) * nb + b) * 2 + (m & 1)
                   : xd + m * nb + b;
  };
  auto quantize = [&](int64_t m0, int64_t m1) {
    for (int64_t m = m0; m < m1; ++m)
      for (int64_t b = 0; b < nb; ++b) *d_at(m, b) = f16_to_f32(quantize_block(x + m * ldx + b * kQ8Block, q_at(m, b)));
  };
  const int64_t qgrain = std::max<int64_t>(1, 65536 / std::max<int64_t>(1, K));
  if (num_threads() > 1 && M > qgrain) parallel_for(M, qgrain, quantize);
  else quantize(0, M);
  for (int64_t m = M; m < padded; ++m)  // the odd row's partner, the last tile's rows: zeros (never stored)
    for (int64_t b = 0; b < nb; ++b) {
      std::memset(q_at(m, b), 0, kQ8Block);
      *d_at(m, b) = 0.f;
    }

  const RowsFn rows = kernel(level);
  // Prefill on AVX2 (4 or more rows): each chunk's weight rows repacked once for the tile (q8_0_kernels.h).
  const TileFn tile = level == 1 && M >= kMaxRows ? tile_avx2() : nullptr;
  auto body = [&](int64_t n0, int64_t n1) {
    if (amx) {
      amx(M, K, xq, xd, w, n0, n1, y, ldy, bias);
      return;
    }
    struct alignas(32) Block { int8_t q[kQ8Block]; };
    thread_local std::vector<Block> t_wq;  // 32-byte aligned blocks
    thread_local std::vector<float> t_wd;
    for (int64_t nc = n0; nc < n1; nc += 16) {
      const int64_t nc1 = std::min(nc + 16, n1);
      if (tile) {
        const int64_t chunk = nc1 - nc;
        t_wq.resize((size_t)(chunk * nb));
        t_wd.resize((size_t)(chunk * nb));
        int8_t* wq = reinterpret_cast<int8_t*>(t_wq.data());
        for (int64_t r = 0; r < chunk; ++r)
          for (int64_t b = 0; b < nb; ++b) {
            const uint8_t* blk = w + ((nc + r) * nb + b) * kQ8BlockBytes;
            uint16_t h;
            std::memcpy(&h, blk, 2);
            t_wd[(size_t)(r * nb + b)] = f16_to_f32(h);
            std::memcpy(wq + (r * nb + b) * kQ8Block, blk + 2, kQ8Block);
          }
        for (int64_t m = 0; m < M; m += kMaxRows)
          tile(std::min(kMaxRows, M - m), K, xq + m * K, xd + m * nb, wq, t_wd.data(), chunk, nc, y + m * ldy, ldy, bias);
      } else if (panel)
        for (int64_t m = 0; m < M; m += kPanelRows)
          panel(std::min(kPanelRows, M - m), K, xq + m * K, xd + m * nb, w, nc, nc1, y + m * ldy, ldy, bias);
      else
        for (int64_t m = 0; m < M; m += kMaxRows)
          rows(std::min(kMaxRows, M - m), K, xq + m * K, xd + m * nb, w, nc, nc1, y + m * ldy, ldy, bias);
    }
  };
  // At least ~256 KiB of weights, or ~4 MFLOP, per chunk: below that a thread hop costs more than it saves.
  const int64_t row_bytes = std::max<int64_t>(1, nb * kQ8BlockBytes);
  const int64_t by_bytes = (262144 + row_bytes - 1) / row_bytes;
  const int64_t by_flops = (int64_t)(4e6 / (2.0 * (double)M * (double)std::max<int64_t>(1, K))) + 1;
  const int64_t grain = std::max<int64_t>(1, std::min(by_bytes, by_flops));
  if (num_threads() > 1 && N > grain) parallel_for(N, grain, body);
  else body(0, N);
}

void set_q8_0_kernel_override(const char* name) {
  int o = -1;
  if (name && *name)
    for (int i = 0; i < q8_0_detail::kLevels; ++i)
      if (!std::strcmp(name, q8_0_detail::kNames[i])) o = i;
  q8_0_detail::g_override.store(o, std::memory_order_relaxed);
}

const char* q8_0_kernel_name() { return q8_0_detail::kNames[q8_0_detail::kernel_level()]; }

}  // namespace cpu
}  // namespace grip
