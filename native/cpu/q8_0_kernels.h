// q8_0_kernels.h — internal interface between the q8_0 driver (q8_0.cc,
// baseline x86-64) and its per-ISA row kernels (q8_0_avx2.cc,
// q8_0_avxvnni.cc, q8_0_avx512vnni.cc, all from q8_0_impl.h) and the AMX
// prefill kernel (q8_0_amx.cc). Plain
// function pointers only, as in gemm_kernels.h.
#pragma once
#include <cstdint>

namespace grip {
namespace cpu {
namespace q8_0_detail {

// The most activation rows one kernel call takes.
constexpr int64_t kMaxRows = 4;

// y[m, n] for m < M <= kMaxRows, n in [n0, n1): xq [M, K] int8 (row stride
// K), xd [M, K/32] the activation blocks' scales (f16-rounded, as f32; row
// stride K/32), w q8_0 rows (K/32 blocks of 34 bytes each), y row stride ldy.
using RowsFn = void (*)(int64_t M, int64_t K, const int8_t* xq, const float* xd, const uint8_t* w, int64_t n0,
                        int64_t n1, float* y, int64_t ldy, const float* bias);

// The AVX512_VNNI prefill kernel reads the activations as a panel of row
// pairs, so that one zmm holds the same block of two rows (each 256-bit half
// keeps the 8-lane order of the row kernels, hence the same bits): for pair p
// and block b, 64 bytes at xp + (p * nb + b) * 64 (the 32 int8 of row 2p,
// then of row 2p + 1) and their two scales at dp + (p * nb + b) * 2. An odd
// M's last pair has a zero second row. y[m, n] for m < M <= kPanelRows.
constexpr int64_t kPanelRows = 8;
using PanelFn = void (*)(int64_t M, int64_t K, const int8_t* xp, const float* dp, const uint8_t* w, int64_t n0,
                         int64_t n1, float* y, int64_t ldy, const float* bias);

// The AVX2 prefill tile reads a thread's chunk of weight rows repacked once
// per chunk (the driver does it): row r's block b as 32 int8 at wq + (r * nb
// + b) * 32 (32-byte aligned, no line splits) and its scale as f32 at
// wd[r * nb + b]; 4 weight rows x M activation rows per tile, the row
// kernels' arithmetic (same bits). y[m, n + r] for m < M <= kMaxRows, r < rows.
using TileFn = void (*)(int64_t M, int64_t K, const int8_t* xq, const float* xd, const int8_t* wq, const float* wd,
                        int64_t rows, int64_t n, float* y, int64_t ldy, const float* bias);

// The AMX-INT8 prefill kernel (q8_0_amx.cc) for M >= kAmxRows: y[m, n] for
// m < M, n in [n0, n1), the activations in tiles of 16 rows: for row group
// g and block b, 512 bytes at xq + (g * nb + b) * 512 (the 32 int8 of each
// of the 16 rows) and their 16 scales at xd + (g * nb + b) * 16; rows past
// M up to the last whole group are zeros (the tiles read 16 rows). Its arithmetic differs from the other kernels': a block's
// 32 products are one exact int32 sum, and y[m, n] = the fmaf chain of
// (float)sum_b * (d_w * d_x) over the blocks in order (+ bias), so its bits
// differ from theirs by float rounding; they still do not depend on the
// thread count, nor on M once M >= kAmxRows.
constexpr int64_t kAmxRows = 16;
using AmxFn = void (*)(int64_t M, int64_t K, const int8_t* xq, const float* xd, const uint8_t* w, int64_t n0,
                       int64_t n1, float* y, int64_t ldy, const float* bias);

RowsFn rows_scalar();
RowsFn rows_avx2();         // nullptr when not compiled in
RowsFn rows_avx_vnni();     // nullptr when not compiled in
RowsFn rows_avx512_vnni();  // nullptr when not compiled in
PanelFn panel_avx512_vnni();  // nullptr when not compiled in
TileFn tile_avx2();           // nullptr when not compiled in
AmxFn amx_int8();             // nullptr when not compiled in

}  // namespace q8_0_detail
}  // namespace cpu
}  // namespace grip
