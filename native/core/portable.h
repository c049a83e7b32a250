// portable.h — small helpers compiled both for the host and for CUDA
// devices (and for the SIMT emulator, where GRIP_HD is empty).
#pragma once
#include <cstdint>

#if defined(__CUDACC__)
#define GRIP_HD __host__ __device__ __forceinline__
#else
#define GRIP_HD inline
#endif

namespace grip {

GRIP_HD uint32_t float_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t bits;
  __builtin_memcpy(&bits, &f, 4);
  return bits;
#endif
}

GRIP_HD float bits_float(uint32_t bits) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(bits);
#else
  float f;
  __builtin_memcpy(&f, &bits, 4);
  return f;
#endif
}

// IEEE half -> float, exact, by bit manipulation (same result on every backend).
GRIP_HD float f16_to_f32(uint16_t h) {
  const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: renormalise
      int e = -1;
      do { ++e; mant <<= 1; } while ((mant & 0x400u) == 0);
      bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((mant & 0x3ffu) << 13);
    }
  } else if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  return bits_float(bits);
}

// bfloat16 -> float: the upper half of the float's bits.
GRIP_HD float bf16_to_f32(uint16_t h) {
  return bits_float((uint32_t)h << 16);
}

// float -> bfloat16, round to nearest even (NaN kept quiet).
GRIP_HD uint16_t f32_to_bf16(float f) {
  uint32_t bits = float_bits(f);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((bits >> 16) | 0x40);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return (uint16_t)(bits >> 16);
}

// float -> IEEE half, round to nearest even.
GRIP_HD uint16_t f32_to_f16(float f) {
  uint32_t x = float_bits(f);
  const uint32_t sign = (x >> 16) & 0x8000u;
  x &= 0x7fffffffu;
  if (x > 0x7f800000u) return (uint16_t)(sign | 0x7e00u);  // NaN
  if (x >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);  // overflow -> inf
  if (x < 0x38800000u) {                                     // subnormal or zero
    if (x < 0x33000000u) return (uint16_t)sign;
    const uint32_t e = x >> 23;
    const uint32_t m = (x & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126 - e;  // 14..24
    uint32_t r = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1u), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (r & 1u))) ++r;
    return (uint16_t)(sign | r);
  }
  uint32_t r = ((x >> 13) - (112u << 10));
  const uint32_t rem = x & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (r & 1u))) ++r;
  return (uint16_t)(sign | r);
}

// Load element i of a float tensor stored as f32 (0), f16 (1) or bf16 (2).
GRIP_HD float load_float(const void* data, int dtype, int64_t i) {
  if (dtype == 0) return static_cast<const float*>(data)[i];
  const uint16_t h = static_cast<const uint16_t*>(data)[i];
  return dtype == 1 ? f16_to_f32(h) : bf16_to_f32(h);
}

// Counter-based RNG (splitmix64 finaliser): the stream depends only on the
// seed and the counter, so CPU and CUDA draw the same numbers in any order.
GRIP_HD uint64_t mix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// Uniform in the open interval (0,1) with 53 random bits, for (seed, row,
// sample, token). Gumbel noise is -log(-log(u)).
GRIP_HD double uniform_open(uint64_t seed, int64_t row, int64_t sample, int64_t token) {
  uint64_t h = mix64(seed ^ mix64((uint64_t)row * 0x100000001b3ull + 0x51ed27u));
  h = mix64(h ^ ((uint64_t)sample << 32 ^ (uint64_t)token));
  return ((double)(h >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

// Sortable key of a float: larger float -> larger unsigned key (NaN excluded).
// -0 and +0 get the same key: they are equal values, so ties go by index.
GRIP_HD uint32_t float_order_key(float f) {
  uint32_t bits = float_bits(f);
  if ((bits & 0x7fffffffu) == 0) bits = 0;
  return (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
}

}  // namespace grip
