// random.ts — the one seeded uniform generator of the library (mulberry32):
// plain 32-bit integer arithmetic, so every platform draws the same numbers.

/** A stream of uniform numbers in [0, 1); `state` (a uint32) is where it stands, so a checkpoint can save it and a resume go on from it. */
export interface SeededRandom {
  (): number;
  state: number;
}

/** A stream of uniform numbers in [0, 1) from a uint32 seed. */
export function mulberry32(seed: number): SeededRandom {
  let state = seed >>> 0;
  const next = (() => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }) as SeededRandom;
  Object.defineProperty(next, 'state', { get: () => state, set: (value: number) => { state = value >>> 0; }, enumerable: true });
  return next;
}
