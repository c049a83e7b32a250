// q8_0_amx.cc — the AMX-INT8 prefill kernel of the q8_0 Linear (see
// q8_0_kernels.h, AmxFn). Compiled with -mamx-tile -mamx-int8; reached only
// when cpu_features().amx_int8 (the OS granted the tile state).
//
// One tdpbssd multiplies 16 activation rows by 16 weight rows over one q8_0
// block (32 signed bytes each, both signed: no sign fix-up), giving the
// block's 16 x 16 int32 dot products, exact. Their scales differ per block,
// so each block's tile is stored and added in f32 with AVX-512: acc[m][n] =
// fmaf((float)dot, dw[n] * dx[m], acc[m][n]), blocks in order, + bias at
// the end. Three C tiles take turns, so the tile unit computes block b + 2
// while the vector units add block b. A thread's weight rows are repacked
// once per call, in groups of 16, into the tile's B layout (4-byte k groups:
// row kq holds k 4kq..4kq+3 of the 16 weight rows) with their scales as f32
// (a thread-local copy as large as the thread's share of the int8 weights).
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "../core/portable.h"
#include "q8_0.h"
#include "q8_0_kernels.h"

namespace grip {
namespace cpu {
namespace q8_0_detail {
namespace {

struct alignas(64) TileConfig {
  uint8_t palette = 1, start_row = 0, reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

// tmm0, tmm3, tmm4: C (16 x 16 int32); tmm1: A (16 rows x 32 bytes); tmm2: B (8 rows of 16 x 4 bytes).
void configure() {
  TileConfig c;
  c.rows[0] = c.rows[3] = c.rows[4] = 16;
  c.colsb[0] = c.colsb[3] = c.colsb[4] = 64;
  c.rows[1] = 16;
  c.colsb[1] = 32;
  c.rows[2] = 8;
  c.colsb[2] = 64;
  _tile_loadconfig(&c);
}

// Weight rows [n, n + cols) (cols <= 16) -> bp [nb][8][16][4] bytes and wd [nb][16] f32 (zeros past cols).
void pack_weights(const uint8_t* w, int64_t nb, int64_t n, int64_t cols, int8_t* bp, float* wd) {
  std::memset(bp, 0, (size_t)(nb * 512));
  std::memset(wd, 0, sizeof(float) * (size_t)(nb * 16));
  for (int64_t c = 0; c < cols; ++c) {
    const uint8_t* row = w + (n + c) * nb * kQ8BlockBytes;
    for (int64_t b = 0; b < nb; ++b) {
      const uint8_t* blk = row + b * kQ8BlockBytes;
      uint16_t h;
      std::memcpy(&h, blk, 2);
      wd[b * 16 + c] = f16_to_f32(h);
      int8_t* dst = bp + b * 512 + c * 4;
      for (int kq = 0; kq < 8; ++kq) std::memcpy(dst + kq * 64, blk + 2 + kq * 4, 4);
    }
  }
}

// acc[r] += (float)dots[r] * (dw * dx[r]) for the 16 rows of one stored C tile.
__attribute__((always_inline)) inline void add_block(__m512 (&acc)[16], const int32_t* dots, __m512 dw,
                                                     const float* dx) {
#pragma GCC unroll 16
  for (int r = 0; r < 16; ++r)
    acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_load_si512(dots + r * 16)),
                             _mm512_mul_ps(dw, _mm512_set1_ps(dx[r])), acc[r]);
}

// Block b's 16 x 16 dot products into C tile T (A: the 16 activation rows' block; B: the packed block).
// Macros, not templates: the tile intrinsics paste their register number into the instruction text.
#define GRIP_AMX_DOTS(T, a, b)  \
  do {                          \
    _tile_zero(T);              \
    _tile_loadd(1, (a), 32);    \
    _tile_loadd(2, (b), 64);    \
    _tile_dpbssd(T, 1, 2);      \
  } while (0)

// One step of the pipeline at block b, with C tile T to hold block b + 2: start block b + 2 on the tile
// unit, add block b (stored two steps before: the tile store has long committed, so its loads do not
// wait), then store block b + 2 into the buffer block b - 1 freed.
#define GRIP_AMX_STEP(T, b)                                                           \
  do {                                                                                \
    const bool ahead = (b) + 2 < nb;                                                  \
    if (ahead) GRIP_AMX_DOTS(T, xq + ((b) + 2) * 512, bp + ((b) + 2) * 512);          \
    add_block(acc, dots[(b) % 3], _mm512_load_ps(wd + (b) * 16), xd + (b) * 16);      \
    if (ahead) _tile_stored(T, dots[((b) + 2) % 3], 64);                              \
  } while (0)

// One group of 16 activation rows (xq, xd: its tiles) x the packed 16 weight rows; y rows < rows, columns < cols.
// Block b's products are in C tile {0, 3, 4}[b % 3] (so the tile numbers are constants per step).
void group(int64_t K, const int8_t* xq, const float* xd, const int8_t* bp, const float* wd, int64_t rows,
           int64_t cols, int64_t n, float* y, int64_t ldy, const float* bias) {
  const int64_t nb = K / kQ8Block;
  alignas(64) int32_t dots[3][256];
  __m512 acc[16];
#pragma GCC unroll 16
  for (int r = 0; r < 16; ++r) acc[r] = _mm512_setzero_ps();
  GRIP_AMX_DOTS(0, xq, bp);
  _tile_stored(0, dots[0], 64);
  if (nb > 1) {
    GRIP_AMX_DOTS(3, xq + 512, bp + 512);
    _tile_stored(3, dots[1], 64);
  }
  for (int64_t b = 0; b < nb; b += 3) {
    GRIP_AMX_STEP(4, b);
    if (b + 1 < nb) GRIP_AMX_STEP(0, b + 1);
    if (b + 2 < nb) GRIP_AMX_STEP(3, b + 2);
  }
  const __mmask16 mask = cols >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << cols) - 1u);
  const __m512 bv = bias ? _mm512_maskz_loadu_ps(mask, bias + n) : _mm512_setzero_ps();
  for (int64_t r = 0; r < rows; ++r)
    _mm512_mask_storeu_ps(y + r * ldy + n, mask, bias ? _mm512_add_ps(acc[r], bv) : acc[r]);
}
#undef GRIP_AMX_STEP
#undef GRIP_AMX_DOTS

void amx(int64_t M, int64_t K, const int8_t* xq, const float* xd, const uint8_t* w, int64_t n0, int64_t n1, float* y,
         int64_t ldy, const float* bias) {
  const int64_t nb = K / kQ8Block, groups = (n1 - n0 + 15) / 16;
  // The thread's weight rows, packed once: group g's blocks at bp + g * nb * 512, its scales at wd + g * nb * 16.
  struct alignas(64) Line { int8_t b[64]; };
  thread_local std::vector<Line> t_bp;
  thread_local std::vector<Line> t_wd;
  t_bp.resize((size_t)(groups * nb * 8));
  t_wd.resize((size_t)(groups * nb));
  int8_t* bp = t_bp.data()->b;
  float* wd = reinterpret_cast<float*>(t_wd.data());
  for (int64_t g = 0; g < groups; ++g)
    pack_weights(w, nb, n0 + 16 * g, std::min<int64_t>(16, n1 - n0 - 16 * g), bp + g * nb * 512, wd + g * nb * 16);
  // Another library on this thread may keep its tile configuration loaded across calls (llama.cpp's AMX
  // kernels configure each thread once): put it back after, rather than release the tiles under it.
  TileConfig saved;
  _tile_storeconfig(&saved);
  configure();
  // Activation rows in chunks of about 512 KiB (in L2), each meeting every weight group: each weight byte is
  // read once per chunk, each activation byte once per group from L2 rather than from memory.
  const int64_t mc = std::max<int64_t>(kAmxRows, 524288 / K / kAmxRows * kAmxRows);
  for (int64_t m0 = 0; m0 < M; m0 += mc)
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t n = n0 + 16 * g, cols = std::min<int64_t>(16, n1 - n);
      for (int64_t m = m0; m < std::min(M, m0 + mc); m += kAmxRows)
        group(K, xq + m * K, xd + m * nb, bp + g * nb * 512, wd + g * nb * 16, std::min(kAmxRows, M - m), cols, n,
              y + m * ldy, ldy, bias);
    }
  if (saved.palette) _tile_loadconfig(&saved);
  else _tile_release();
}

}  // namespace

AmxFn amx_int8() { return &amx; }

}  // namespace q8_0_detail
}  // namespace cpu
}  // namespace grip
