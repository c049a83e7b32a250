// ops.ts — float64 / integer references of topk, Plackett-Luce, Gumbel-top-k,
// gather_rows, compact_kv (both forms) and AdamW, from native/README.md only.
import { logSumExp } from './math.ts';
import { uniformOpen } from './rng.ts';

// ---- topk -------------------------------------------------------------------------

/** Row-wise top-k: indices ascending by position, -1 / -Infinity padding to maxK. */
export function topk(scores: ArrayLike<number>, B: number, N: number, k: readonly number[]): { indices: Int32Array; values: Float64Array; maxK: number } {
  const maxK = k.reduce((m, v) => Math.max(m, v), 0);
  const indices = new Int32Array(B * maxK).fill(-1);
  const values = new Float64Array(B * maxK).fill(-Infinity);
  for (let b = 0; b < B; b++) {
    const order = Array.from({ length: N }, (_, n) => n);
    // value descending, index ascending among equal values (+0 == -0 are equal values).
    order.sort((i, j) => {
      const a = scores[b * N + i]!, c = scores[b * N + j]!;
      return a > c ? -1 : a < c ? 1 : i - j;
    });
    const kept = order.slice(0, k[b]!).sort((i, j) => i - j);
    kept.forEach((n, j) => {
      indices[b * maxK + j] = n;
      values[b * maxK + j] = scores[b * N + n]!;
    });
  }
  return { indices, values, maxK };
}

// ---- Plackett-Luce ----------------------------------------------------------------

/** log-probability of one ordered sample `idx` under PL(logits row `l`). */
export function plLogProbRow(l: ArrayLike<number>, idx: readonly number[]): number {
  const N = l.length;
  const removed = new Uint8Array(N);
  let lp = 0;
  for (const i of idx) {
    if (l[i] === -Infinity) return -Infinity;
    const rest: number[] = [];
    for (let n = 0; n < N; n++) if (!removed[n]) rest.push(l[n]!);
    lp += l[i]! - logSumExp(rest);
    removed[i] = 1;
  }
  return lp;
}

/** d logProb / d l for one sample (zero vector when logProb is -Infinity). */
export function plGradRow(l: ArrayLike<number>, idx: readonly number[]): Float64Array {
  const N = l.length;
  const grad = new Float64Array(N);
  if (idx.some((i) => l[i] === -Infinity)) return grad;
  const removed = new Uint8Array(N);
  for (const i of idx) {
    const rest: number[] = [];
    for (let n = 0; n < N; n++) if (!removed[n]) rest.push(l[n]!);
    const lse = logSumExp(rest);
    for (let n = 0; n < N; n++) if (!removed[n]) grad[n]! -= Math.exp(l[n]! - lse);
    grad[i]! += 1;
    removed[i] = 1;
  }
  return grad;
}

function sampleOf(indices: ArrayLike<number>, b: number, g: number, G: number, k: number): number[] {
  const out: number[] = [];
  for (let j = 0; j < k; j++) out.push(indices[(b * G + g) * k + j]!);
  return out;
}

/** logProb [B*G] for logits [B,N], indices [B,G,k]. */
export function plLogProb(logits: ArrayLike<number>, indices: ArrayLike<number>, B: number, N: number, G: number, k: number): Float64Array {
  const out = new Float64Array(B * G);
  for (let b = 0; b < B; b++) {
    const l = Array.from({ length: N }, (_, n) => logits[b * N + n]!);
    for (let g = 0; g < G; g++) out[b * G + g] = plLogProbRow(l, sampleOf(indices, b, g, G, k));
  }
  return out;
}

/** dLogits [B*N] = sum_g dLogProb[b,g] * d logProb[b,g] / d l. */
export function plBackward(logits: ArrayLike<number>, indices: ArrayLike<number>, dLogProb: ArrayLike<number>, B: number, N: number, G: number, k: number): Float64Array {
  const out = new Float64Array(B * N);
  for (let b = 0; b < B; b++) {
    const l = Array.from({ length: N }, (_, n) => logits[b * N + n]!);
    for (let g = 0; g < G; g++) {
      const grad = plGradRow(l, sampleOf(indices, b, g, G, k));
      for (let n = 0; n < N; n++) out[b * N + n]! += dLogProb[b * G + g]! * grad[n]!;
    }
  }
  return out;
}

// ---- Gumbel-top-k ------------------------------------------------------------------

/** The exact sample grip draws for `seed`: keys l - log(-log(u)) in double, k largest in descending order. */
export function gumbelTopk(logits: ArrayLike<number>, B: number, N: number, k: number, G: number, seed: bigint): { indices: Int32Array; logProb: Float64Array } {
  const indices = new Int32Array(B * G * k);
  const logProb = new Float64Array(B * G);
  for (let b = 0; b < B; b++) {
    const l = Array.from({ length: N }, (_, n) => logits[b * N + n]!);
    for (let g = 0; g < G; g++) {
      const key = l.map((v, n) => (v === -Infinity ? -Infinity : v - Math.log(-Math.log(uniformOpen(seed, b, g, n)))));
      const order = Array.from({ length: N }, (_, n) => n).sort((i, j) => (key[i]! > key[j]! ? -1 : key[i]! < key[j]! ? 1 : i - j));
      const sample = order.slice(0, k);
      sample.forEach((n, j) => { indices[(b * G + g) * k + j] = n; });
      logProb[b * G + g] = plLogProbRow(l, sample);
    }
  }
  return { indices, logProb };
}

// ---- gather / compact ---------------------------------------------------------------

/** out[b,k,:] = x[b, idx[b,k], :]; -1 -> zeros. Works on raw element arrays (bit copy). */
export function gatherRows<T extends ArrayLike<number>>(x: T, indices: ArrayLike<number>, B: number, N: number, D: number, K: number): number[] {
  const out = new Array<number>(B * K * D).fill(0);
  for (let b = 0; b < B; b++) {
    for (let k = 0; k < K; k++) {
      const n = indices[b * K + k]!;
      if (n < 0) continue;
      for (let d = 0; d < D; d++) out[(b * K + k) * D + d] = x[(b * N + n) * D + d]!;
    }
  }
  return out;
}

/** out[b,h,k,:] = cache[b,h,keep[b,k],:]; -1 -> zeros. */
export function compactKV(cache: ArrayLike<number>, keep: ArrayLike<number>, B: number, Hkv: number, T: number, Dh: number, K: number): number[] {
  const out = new Array<number>(B * Hkv * K * Dh).fill(0);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < Hkv; h++) {
      for (let k = 0; k < K; k++) {
        const t = keep[b * K + k]!;
        if (t < 0) continue;
        for (let d = 0; d < Dh; d++) out[((b * Hkv + h) * K + k) * Dh + d] = cache[((b * Hkv + h) * T + t) * Dh + d]!;
      }
    }
  }
  return out;
}

/** The in-place form on a copy: kept rows moved to the front, rows past the new length untouched. */
export function compactKVInPlace(cache: ArrayLike<number>, keep: ArrayLike<number>, B: number, Hkv: number, T: number, Dh: number, K: number): { cache: number[]; lengths: number[] } {
  const out = Array.from(cache);
  const lengths: number[] = [];
  for (let b = 0; b < B; b++) {
    let len = 0;
    for (let k = 0; k < K; k++) if (keep[b * K + k]! >= 0) len++;
    lengths.push(len);
    for (let h = 0; h < Hkv; h++) {
      for (let k = 0; k < len; k++) {
        const t = keep[b * K + k]!;
        for (let d = 0; d < Dh; d++) out[((b * Hkv + h) * T + k) * Dh + d] = out[((b * Hkv + h) * T + t) * Dh + d]!;
      }
    }
  }
  return { cache: out, lengths };
}

// ---- AdamW ---------------------------------------------------------------------------

export interface RefAdamW { step: number; lr: number; beta1: number; beta2: number; eps: number; weightDecay: number }

/** PyTorch AdamW, one step, in float64 on copies. */
export function adamw(param: ArrayLike<number>, grad: ArrayLike<number>, m: ArrayLike<number>, v: ArrayLike<number>, o: RefAdamW): { param: Float64Array; m: Float64Array; v: Float64Array } {
  const n = param.length;
  const P = Float64Array.from(param), M = Float64Array.from(m), V = Float64Array.from(v);
  const bc1 = 1 - o.beta1 ** o.step;
  const bc2 = 1 - o.beta2 ** o.step;
  for (let i = 0; i < n; i++) {
    const g = grad[i]!;
    P[i] = P[i]! * (1 - o.lr * o.weightDecay);
    M[i] = o.beta1 * M[i]! + (1 - o.beta1) * g;
    V[i] = o.beta2 * V[i]! + (1 - o.beta2) * g * g;
    P[i] = P[i]! - (o.lr / bc1) * M[i]! / (Math.sqrt(V[i]!) / Math.sqrt(bc2) + o.eps);
  }
  return { param: P, m: M, v: V };
}
