// rng.ts — grip::uniform_open (native/core/portable.h) re-implemented with
// BigInt, so a reference can predict the exact Gumbel sample for a seed.
const MASK = (1n << 64n) - 1n;

/** splitmix64 finaliser, modulo 2^64. */
export function mix64(z: bigint): bigint {
  z = (z + 0x9e3779b97f4a7c15n) & MASK;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK;
  return z ^ (z >> 31n);
}

/** Uniform in (0,1) with 53 random bits for (seed, row, sample, token). */
export function uniformOpen(seed: bigint, row: number, sample: number, token: number): number {
  const r = BigInt(row), g = BigInt(sample), n = BigInt(token);
  let h = mix64((seed & MASK) ^ mix64((r * 0x100000001b3n + 0x51ed27n) & MASK));
  // C: (uint64_t)sample << 32 ^ (uint64_t)token  — shift binds tighter than ^.
  h = mix64(h ^ (((g << 32n) & MASK) ^ n));
  return (Number(h >> 11n) + 0.5) * (1.0 / 9007199254740992.0);
}
