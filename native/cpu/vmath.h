// vmath.h — branch-free float math (exp, erf, tanh, sigmoid) written so that
// a loop over lanes vectorises for the ISA of the file including it (score
// and transformer row kernels: baseline SSE2, *_avx2.cc, *_avx512.cc).
// Every function is `static inline` (internal linkage): each translation unit
// keeps its own copy compiled with its own flags, so no wide-vector code can
// reach the baseline objects through the linker.
#pragma once
#include <cstdint>

namespace grip {
namespace cpu {
namespace vmath {

// exp(x), relative error < 2e-7 (Cephes' polynomial on |r| <= ln2/2 and a
// two-constant Cody-Waite reduction); 0 below -87.3 (where expf is already
// subnormal), NaN kept.
static inline float exp_fast(float x) {
  const float xc = x < -87.3f ? -87.3f : (x > 88.3f ? 88.3f : x);
  // Round x/ln2 to nearest with the 1.5 * 2^23 trick (no floor/round call).
  const float fn = (xc * 1.44269504088896341f + 12582912.f) - 12582912.f;
  float r = xc - fn * 0.693359375f;
  r = r - fn * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.f;
  const int32_t bits = ((int32_t)fn + 127) << 23;
  float scale;
  __builtin_memcpy(&scale, &bits, 4);
  const float y = p * scale;
  return x < -87.3f ? 0.f : (x != x ? x : y);
}

// erf for float, rational approximation on [-4,4] (|error| < 5e-7).
static inline float erf_fast(float a) {
  const float x = a < -4.f ? -4.f : (a > 4.f ? 4.f : a);
  const float x2 = x * x;
  float p = x2 * -2.72614225801306e-10f + 2.77068142495902e-08f;
  p = x2 * p + -2.10102402082508e-06f;
  p = x2 * p + -5.69250639462346e-05f;
  p = x2 * p + -7.34990630326855e-04f;
  p = x2 * p + -2.95459980854025e-03f;
  p = x2 * p + -1.60960333262415e-02f;
  p = x * p;
  float q = x2 * -1.45660718464996e-05f + -2.13374055278905e-04f;
  q = x2 * q + -1.68282697438203e-03f;
  q = x2 * q + -7.37332916720468e-03f;
  q = x2 * q + -1.42647390514189e-02f;
  return p / q;
}

// 1 / (1 + exp(-x)).
static inline float sigmoid_fast(float x) { return 1.f / (1.f + exp_fast(-x)); }

// tanh(x) = 1 - 2 / (exp(2x) + 1); odd symmetry keeps small |x| accurate in
// absolute terms (|error| < 3e-7).
static inline float tanh_fast(float x) {
  const float ax = x < 0.f ? -x : x;
  const float t = 1.f - 2.f / (exp_fast(2.f * ax) + 1.f);
  return x < 0.f ? -t : t;
}

}  // namespace vmath
}  // namespace cpu
}  // namespace grip
