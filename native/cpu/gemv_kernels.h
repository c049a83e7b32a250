// gemv_kernels.h — internal interface between the GEMV driver (gemv.cc,
// baseline x86-64) and its per-ISA row kernels (gemv_avx2.cc,
// gemv_avx512.cc, gemv_avx512bf16.cc). Plain function pointers only, as in
// gemm_kernels.h.
#pragma once
#include <cstdint>

namespace grip {
namespace cpu {
namespace gemv_detail {

// The most activation rows a GEMV call takes; more go to the packed GEMM.
constexpr int64_t kMaxRows = 4;

// y[m, n] = sum_k x[m, k] * w[n, k] (+ bias[n]) for m < M <= kMaxRows and
// n in [n0, n1). x [M, K] f32 (row stride ldx), w [N, K] of dtype 0 f32,
// 1 f16, 2 bf16 (row stride ldw), y [M, N] (row stride ldy).
// Each y[m, n] is summed in one fixed order (independent of n0, n1 and of
// the thread that runs it), so results do not depend on the thread count.
using RowsFn = void (*)(int64_t M, int64_t K, const float* x, int64_t ldx, const void* w, int64_t ldw, int dtype,
                        int64_t n0, int64_t n1, float* y, int64_t ldy, const float* bias);

RowsFn rows_scalar();
RowsFn rows_avx2();    // nullptr when not compiled in
RowsFn rows_avx512();  // nullptr when not compiled in

// bf16 weights on AVX-512 (gemv_avx512.cc): one zmm load is 32 weights; the
// even ones widen to f32 with a shift, the odd ones with a mask, against x
// split once per call by the driver: xs [M, ldxs] f32, per 32 values of a
// row the 16 at even k, then the 16 at odd k, zero-padded to ldxs (a
// multiple of 32). Each y[m, n] is summed in one fixed order, independent of
// M, n0, n1 and of the thread.
using RowsSplitFn = void (*)(int64_t M, int64_t K, const float* xs, int64_t ldxs, const uint16_t* w, int64_t ldw,
                             int64_t n0, int64_t n1, float* y, int64_t ldy, const float* bias);
RowsSplitFn rows_bf16_split_avx512();  // nullptr when not compiled in

// The bf16 dot path for bf16 weights (gemv_avx512bf16.cc, vdpbf16ps; see
// bf16_dot_active() in gemm_kernels.h): the driver rounds x to bf16 once
// per call (round_bf16: xb [M, ldxb] u16, K rounded to nearest even and
// zero-padded to ldxb, a multiple of 32), then the rows read xb. Each
// y[m, n] is still summed in one fixed order, independent of M, n0, n1 and
// of the thread.
using RoundBf16Fn = void (*)(int64_t M, int64_t K, const float* x, int64_t ldx, uint16_t* xb, int64_t ldxb);
using RowsBf16Fn = void (*)(int64_t M, int64_t K, const uint16_t* xb, int64_t ldxb, const uint16_t* w, int64_t ldw,
                            int64_t n0, int64_t n1, float* y, int64_t ldy, const float* bias);
RoundBf16Fn round_bf16_avx512_bf16();  // nullptr when not compiled in
RowsBf16Fn rows_avx512_bf16();         // nullptr when not compiled in

}  // namespace gemv_detail
}  // namespace cpu
}  // namespace grip
