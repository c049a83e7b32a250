// gemm_kernels.h — internal interface between the GEMM driver (gemm.cc,
// baseline x86-64) and the per-ISA packing + micro-kernel files
// (gemm_avx2.cc, gemm_avx512.cc, gemm_avx512bf16.cc). Plain function pointers only: nothing
// inline here, so no code compiled with wide-vector flags can leak into the
// baseline objects through the linker's choice among weak (inline) symbols.
#pragma once
#include <cstdint>

namespace grip {
namespace cpu {
namespace gemm_detail {

// Packed layouts (all zero-padded, 64-byte aligned buffers):
//  A block op(A)[i0:i0+mc, p0:p0+kc] -> ceil(mc/MR) panels of kc*MR floats,
//    panel element (k, i) at k*MR + i.
//  B block op(B)[p0:p0+kc, j0:j0+nc] -> ceil(nc/NR) panels of kc*NR floats,
//    panel element (k, j) at k*NR + j (f16/bf16 widened to f32 here).
//  The avx512_bf16 kernel (bf16 B only) keeps these panel offsets but packs
//  bf16 pairs along k instead (see gemm_avx512bf16.cc).
struct Kernel {
  const char* name;
  int mr, nr;      // register tile
  int kc, mc, nc;  // cache blocking (upper bounds; the driver balances them)
  void (*pack_a)(bool trans, const float* A, int64_t lda, int64_t i0, int64_t mc, int64_t p0,
                 int64_t kc, float* Ap);
  // dtype: 0 f32, 1 f16, 2 bf16 (grip_dtype values)
  void (*pack_b)(bool trans, const void* B, int dtype, int64_t ldb, int64_t p0, int64_t kc,
                 int64_t j0, int64_t nc, float* Bp);
  // C[0:mc, 0:nc] = alpha * Ap·Bp + beta * C (+ bias[0:nc] per row when bias
  // is not null; beta == 0: C is not read).
  void (*macro)(int64_t mc, int64_t nc, int64_t kc, const float* Ap, const float* Bp, float* C,
                int64_t ldc, float alpha, float beta, const float* bias);
};

const Kernel* kernel_scalar();
const Kernel* kernel_avx2();    // nullptr when not compiled in
const Kernel* kernel_avx512();  // nullptr when not compiled in
// vdpbf16ps on bf16 pairs, for bf16 B only; A rounded to bf16 (nullptr when not compiled in).
const Kernel* kernel_avx512_bf16();

// The bf16 dot path (vdpbf16ps, activations rounded to bf16) for bf16
// weights, in the GEMM and the GEMV: off unless GRIP_BF16_DOT=1 (read once)
// or the test hook below turns it on, and only at level avx512_bf16 (a CPU
// with AVX512_BF16, the level not capped lower by GRIP_SIMD or set_simd_override).
bool bf16_dot_active();
// Test / benchmark hook: 1 on, 0 off, -1 back to GRIP_BF16_DOT.
void set_bf16_dot_override(int on);

// Test / benchmark hook: cap the GEMM's SIMD level at "scalar", "avx2",
// "avx512" or "avx512_bf16" (never above the CPU's, nor above GRIP_SIMD);
// nullptr or "" resets.
void set_simd_override(const char* level);
// The kernel name the next gemm call with B of this dtype will use.
const char* active_kernel_name(int dtype = 0);
// The f32 kernel the next gemm call will use (attention drives its packing and
// macro-kernel directly, on K and V packed once per head).
const Kernel& active_kernel();
// The SIMD level the next gemm (and gemv) call will use: 0 scalar, 1 avx2,
// 2 avx512, 3 avx512_bf16 (3 matters only to bf16 weights with the bf16 dot path on).
int active_simd_level();

}  // namespace gemm_detail
}  // namespace cpu
}  // namespace grip
