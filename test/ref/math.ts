// math.ts — float64 special functions for the references (no dependency on
// the native code): erf/erfc to ~1e-15, the erf-GELU and its derivative.

const SQRT_PI = Math.sqrt(Math.PI);

/** erfc(x) for x >= 2.5 by the continued fraction
 *  erfc(x) = exp(-x^2)/sqrt(pi) * 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + ...)))),
 *  evaluated bottom-up with 80 terms (converges to full double precision for x >= 2.5). */
function erfcLarge(x: number): number {
  let t = x;
  for (let n = 80; n >= 1; n--) t = x + n / 2 / t;
  return Math.exp(-x * x) / SQRT_PI / t;
}

/** erf(x) for 0 <= x < 2.5 by the all-positive series
 *  erf(x) = 2/sqrt(pi) * exp(-x^2) * sum_n 2^n x^(2n+1) / (1*3*...*(2n+1)) (no cancellation). */
function erfSmall(x: number): number {
  let term = x;
  let sum = x;
  const x2 = 2 * x * x;
  for (let n = 1; n < 200; n++) {
    term *= x2 / (2 * n + 1);
    sum += term;
    if (term < 1e-17 * sum) break;
  }
  return (2 / SQRT_PI) * Math.exp(-x * x) * sum;
}

export function erf(x: number): number {
  if (Number.isNaN(x)) return NaN;
  if (x < 0) return -erf(-x);
  if (x === Infinity) return 1;
  return x < 2.5 ? erfSmall(x) : 1 - erfcLarge(x);
}

export function erfc(x: number): number {
  if (Number.isNaN(x)) return NaN;
  if (x < 2.5) return 1 - erf(x);
  return x === Infinity ? 0 : erfcLarge(x);
}

/** GELU with the exact erf: 0.5 z (1 + erf(z / sqrt 2)). */
export function gelu(z: number): number {
  return 0.5 * z * (1 + erf(z / Math.SQRT2));
}

/** d gelu / dz = Phi(z) + z phi(z). */
export function geluGrad(z: number): number {
  return 0.5 * (1 + erf(z / Math.SQRT2)) + (z * Math.exp(-0.5 * z * z)) / Math.sqrt(2 * Math.PI);
}

/** log(sum exp(v)) over the given values, stable; -Infinity for none / all -Infinity. */
export function logSumExp(values: readonly number[]): number {
  let m = -Infinity;
  for (const v of values) if (v > m) m = v;
  if (m === -Infinity) return -Infinity;
  let s = 0;
  for (const v of values) s += Math.exp(v - m);
  return m + Math.log(s);
}
