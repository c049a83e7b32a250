// q8_0.h — 8-bit weights in ggml's Q8_0 layout, and the Linear product over
// them. Why this layout: it is llama.cpp's (the GGUF writer emits the very
// same bytes), it needs no side tables, and a row stays one contiguous run.
//
// A q8_0 matrix [N, K] (K % 32 == 0) is N rows of K/32 blocks, each block
// 34 bytes: {uint16 d (IEEE half, little-endian), int8 qs[32]}, standing for
// the values d * qs[j]. Quantising (quantize_row_q8_0, ggml's
// quantize_row_q8_0_ref): per block d = max|x| / 127 (f32, stored as f16),
// q = roundf(x * (1/d)) (half away from zero), 0 when the block is all zero.
//
// linear_q8_0 quantises each activation row the same way on the fly and sums
// per block the int32 dot of the two int8 vectors times d_w * d_x (both f16
// widened, the product in f32), as llama.cpp's Q8_0 x Q8_0 dot does. The
// float sums follow one fixed order at every SIMD level (8 lanes, lane l
// gets the 4-product integer sums of bytes 4l..4l+3 of each block through
// fmaf, then ((l0+l4)+(l2+l6)) + ((l1+l5)+(l3+l7))), so results are bit for
// bit the same on every kernel and thread count. The one exception is the
// AMX-INT8 tile kernel (q8_0_amx.cc, 16 or more activation rows on a CPU
// with AMX): its tile sums a block's 32 products into one int32, so each
// output is the fmaf chain of (float)sum_b * d over the blocks, float
// rounding away from the other kernels (still the same on any thread count,
// and for any M >= 16).
#pragma once
#include <cstdint>

namespace grip {
namespace cpu {

constexpr int64_t kQ8Block = 32;       // values per block
constexpr int64_t kQ8BlockBytes = 34;  // bytes per block

// Bytes of a q8_0 matrix with `count` values (count % 32 == 0).
inline int64_t q8_0_bytes(int64_t count) { return count / kQ8Block * kQ8BlockBytes; }

// x [K] f32 -> K/32 blocks at out (K % 32 == 0).
void quantize_row_q8_0(const float* x, int64_t K, uint8_t* out);

// x [rows, K] f32 (row stride ldx) -> rows x K/32 blocks, in parallel.
void quantize_q8_0(const float* x, int64_t rows, int64_t K, int64_t ldx, uint8_t* out);

// y[M, N] = x[M, K] · dequant(w)[N, K]^T (+ bias[N]); w q8_0 [N, K]; strides ldx, ldy.
void linear_q8_0(int64_t M, int64_t N, int64_t K, const float* x, int64_t ldx, const uint8_t* w, float* y,
                 int64_t ldy, const float* bias);

// Test hook: cap the q8_0 kernel at "scalar", "avx2", "avx_vnni",
// "avx512_vnni" or "amx_int8" (never above the CPU's nor GRIP_SIMD's); nullptr or "" resets.
void set_q8_0_kernel_override(const char* name);
// The kernel the next linear_q8_0 call will use (one of the names above).
const char* q8_0_kernel_name();

}  // namespace cpu
}  // namespace grip
