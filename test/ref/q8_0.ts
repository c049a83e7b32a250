// q8_0.ts — plain-TypeScript references of the Q8_0 format (native/cpu/q8_0.h),
// written from ggml's quantize_row_q8_0_ref and ggml_vec_dot_q8_0_q8_0: the
// quantiser bit for bit, and the Linear product over q8_0 weights in float64
// on the same integers and scales (so only the float summation order differs).
import { halfValue } from '../helpers.ts';

const f = Math.fround;

/** IEEE half bits of v >= 0 (finite, below 65520), round to nearest even, by arithmetic. */
export function halfBits(v: number): number {
  if (v === 0) return 0;
  let e = Math.floor(Math.log2(v));
  if (2 ** e > v) e--;
  if (2 ** (e + 1) <= v) e++;
  e = Math.max(e, -14);
  const ulp = 2 ** (e - 10);
  let r = Math.floor(v / ulp);
  const frac = v / ulp - r;
  if (frac > 0.5 || (frac === 0.5 && r % 2 === 1)) r++;
  if (r === 2048) {
    r = 1024;
    e++;
  }
  if (r < 1024) return r; // subnormal (e == -14)
  return ((e + 15) << 10) | (r - 1024);
}

/** One block of 32: the f16 scale's bits and the 32 int8 (ggml: d = amax/127 in f32, id = 1/d in f32, q = roundf(x*id)). */
export function quantizeBlock(x: ArrayLike<number>, at: number): { d: number; q: Int8Array } {
  let amax = 0;
  for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[at + j]!));
  const d = f(amax / 127);
  const id = d !== 0 ? f(1 / d) : 0;
  const q = new Int8Array(32);
  for (let j = 0; j < 32; j++) {
    const v = f(x[at + j]! * id);
    q[j] = Math.sign(v) * Math.round(Math.abs(v)); // roundf: half away from zero
  }
  return { d: halfBits(d), q };
}

/** Rows of K values (K % 32 == 0) as q8_0 blocks {u16 d LE, int8 q[32]}. */
export function quantizeQ8_0(x: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array((x.length / 32) * 34);
  const view = new DataView(out.buffer);
  for (let b = 0; b * 32 < x.length; b++) {
    const { d, q } = quantizeBlock(x, b * 32);
    view.setUint16(b * 34, d, true);
    out.set(new Uint8Array(q.buffer), b * 34 + 2);
  }
  return out;
}

/**
 * y[m, n] = sum over blocks b of fround(d_w · d_x) · (int dot of the two int8
 * blocks), + bias[n], in float64; scale[m, n] = the sum of |terms| over the
 * groups of 4 products (the rounding scale of the kernels' float32 lanes).
 */
export function linearQ8_0(x: Float32Array, w: Uint8Array, bias: Float32Array | null, M: number, N: number, K: number) {
  const nb = K / 32;
  const wv = new DataView(w.buffer, w.byteOffset, w.byteLength);
  const wq = new Int8Array(w.buffer, w.byteOffset, w.byteLength);
  const xb = Array.from({ length: M * nb }, (_, i) => quantizeBlock(x, (Math.floor(i / nb) * K) + (i % nb) * 32));
  const y = new Float64Array(M * N), scale = new Float64Array(M * N);
  for (let m = 0; m < M; m++)
    for (let n = 0; n < N; n++) {
      let acc = bias ? bias[n]! : 0, mag = bias ? Math.abs(bias[n]!) : 0;
      for (let b = 0; b < nb; b++) {
        const at = (n * nb + b) * 34;
        const { d, q } = xb[m * nb + b]!;
        const scaleProduct = f(halfValue(wv.getUint16(at, true)) * halfValue(d));
        // The kernels sum each group of 4 products into one of 8 float lanes: the rounding scale is per group.
        for (let g = 0; g < 32; g += 4) {
          let dot = 0;
          for (let j = g; j < g + 4; j++) dot += wq[at + 2 + j]! * q[j]!;
          acc += scaleProduct * dot;
          mag += Math.abs(scaleProduct * dot);
        }
      }
      y[m * N + n] = acc;
      scale[m * N + n] = mag;
    }
  return { y, scale };
}
