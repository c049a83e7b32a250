// transformer.ts — float64 references of the transformer ops (linear, norms,
// RoPE, KV-cache write, attention, activations, add, softmax, embedding),
// written from native/README.md and grip.h only (no lib/ or native code).
// Tensors are flat arrays in row-major order; shapes are passed explicitly.
import { erf } from './math.ts';

/** out[M,N] = x[M,K] · w[N,K]^T + bias[N]. */
export function linear(x: ArrayLike<number>, w: ArrayLike<number>, bias: ArrayLike<number> | null, M: number, N: number, K: number): Float64Array {
  const out = new Float64Array(M * N);
  for (let i = 0; i < M; i++)
    for (let j = 0; j < N; j++) {
      let acc = bias ? bias[j]! : 0;
      for (let p = 0; p < K; p++) acc += x[i * K + p]! * w[j * K + p]!;
      out[i * N + j] = acc;
    }
  return out;
}

/** LayerNorm over rows of D with biased variance. */
export function layerNorm(x: ArrayLike<number>, w: ArrayLike<number>, b: ArrayLike<number>, eps: number, M: number, D: number): Float64Array {
  const out = new Float64Array(M * D);
  for (let r = 0; r < M; r++) {
    let mean = 0;
    for (let d = 0; d < D; d++) mean += x[r * D + d]!;
    mean /= D;
    let variance = 0;
    for (let d = 0; d < D; d++) variance += (x[r * D + d]! - mean) ** 2;
    variance /= D;
    const rstd = 1 / Math.sqrt(variance + eps);
    for (let d = 0; d < D; d++) out[r * D + d] = (x[r * D + d]! - mean) * rstd * w[d]! + b[d]!;
  }
  return out;
}

/** Llama RMSNorm: x / sqrt(mean(x^2) + eps) * w. */
export function rmsNorm(x: ArrayLike<number>, w: ArrayLike<number>, eps: number, M: number, D: number): Float64Array {
  const out = new Float64Array(M * D);
  for (let r = 0; r < M; r++) {
    let ms = 0;
    for (let d = 0; d < D; d++) ms += x[r * D + d]! ** 2;
    const rstd = 1 / Math.sqrt(ms / D + eps);
    for (let d = 0; d < D; d++) out[r * D + d] = x[r * D + d]! * rstd * w[d]!;
  }
  return out;
}

/** Hugging Face Llama RoPE (rotate_half) of x[B,T,H,Dh] at positions[B,T], exact cos/sin. */
export function rope(x: ArrayLike<number>, positions: ArrayLike<number>, theta: number, B: number, T: number, H: number, Dh: number): Float64Array {
  const out = new Float64Array(B * T * H * Dh);
  const half = Dh / 2;
  for (let t = 0; t < B * T; t++) {
    for (let h = 0; h < H; h++) {
      const base = (t * H + h) * Dh;
      for (let i = 0; i < half; i++) {
        const angle = positions[t]! * theta ** (-(2 * i) / Dh);
        const c = Math.cos(angle), s = Math.sin(angle);
        const x1 = x[base + i]!, x2 = x[base + half + i]!;
        out[base + i] = x1 * c - x2 * s;
        out[base + half + i] = x2 * c + x1 * s;
      }
    }
  }
  return out;
}

/** A copy of cache [B,Hkv,Tmax,Dh] with src [B,T,Hkv,Dh] rows i < count[b] written at start[b] + i. */
export function cacheWrite(cache: ArrayLike<number>, src: ArrayLike<number>, start: readonly number[], count: readonly number[], B: number, Hkv: number, Tmax: number, T: number, Dh: number): number[] {
  const out = Array.from(cache);
  for (let b = 0; b < B; b++)
    for (let i = 0; i < count[b]!; i++)
      for (let h = 0; h < Hkv; h++)
        for (let d = 0; d < Dh; d++) out[((b * Hkv + h) * Tmax + start[b]! + i) * Dh + d] = src[((b * T + i) * Hkv + h) * Dh + d]!;
  return out;
}

export interface AttentionDims { B: number; Tq: number; Tk: number; Hq: number; Hkv: number; Dh: number }
export interface AttentionRefOptions { causal: boolean; qLen: readonly number[]; kvLen: readonly number[]; scale: number; probRows: readonly number[] }

/**
 * Attention by definition: for each valid query (b, i < qLen[b]) and head h
 * (kv head h / (Hq/Hkv)), exact softmax over the attended keys (causal: keys
 * 0..kvLen-qLen+i; else 0..kvLen-1). Padding rows and unattended keys: 0.
 */
export function attention(q: ArrayLike<number>, k: ArrayLike<number>, v: ArrayLike<number>, d: AttentionDims, o: AttentionRefOptions): { out: Float64Array; probs: Float64Array } {
  const { B, Tq, Tk, Hq, Hkv, Dh } = d;
  const group = Hq / Hkv;
  const R = o.probRows.length;
  const out = new Float64Array(B * Tq * Hq * Dh);
  const probs = new Float64Array(B * Hq * R * Tk);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < Hq; h++) {
      const kvBase = (b * Hkv + Math.floor(h / group)) * Tk * Dh;
      for (let i = 0; i < o.qLen[b]!; i++) {
        const keys = o.causal ? o.kvLen[b]! - o.qLen[b]! + i + 1 : o.kvLen[b]!;
        const qBase = ((b * Tq + i) * Hq + h) * Dh;
        const s = new Float64Array(keys);
        for (let j = 0; j < keys; j++) {
          let dot = 0;
          for (let e = 0; e < Dh; e++) dot += q[qBase + e]! * k[kvBase + j * Dh + e]!;
          s[j] = dot * o.scale;
        }
        const m = Math.max(...s);
        let sum = 0;
        for (let j = 0; j < keys; j++) sum += Math.exp(s[j]! - m);
        const p = Array.from(s, (x) => Math.exp(x - m) / sum);
        for (let e = 0; e < Dh; e++) {
          let acc = 0;
          for (let j = 0; j < keys; j++) acc += p[j]! * v[kvBase + j * Dh + e]!;
          out[qBase + e] = acc;
        }
        o.probRows.forEach((row, r) => {
          if (row !== i) return;
          for (let j = 0; j < keys; j++) probs[((b * Hq + h) * R + r) * Tk + j] = p[j]!;
        });
      }
    }
  }
  return { out, probs };
}

export type GeluKind = 'erf' | 'tanh' | 'quick';

export function gelu(x: number, kind: GeluKind): number {
  if (kind === 'erf') return 0.5 * x * (1 + erf(x / Math.SQRT2));
  if (kind === 'tanh') return 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
  return x / (1 + Math.exp(-1.702 * x));
}

export function siluMul(gate: number, up: number): number {
  return (gate / (1 + Math.exp(-gate))) * up;
}

/** a + b with b repeating every nb elements (a trailing-shape broadcast), rounded to f32. */
export function add(a: ArrayLike<number>, b: ArrayLike<number>): Float64Array {
  return Float64Array.from({ length: a.length }, (_, i) => Math.fround(a[i]! + b[i % b.length]!));
}

/** (log-)softmax over rows of N. */
export function softmax(x: ArrayLike<number>, M: number, N: number, log: boolean): Float64Array {
  const out = new Float64Array(M * N);
  for (let r = 0; r < M; r++) {
    let m = -Infinity;
    for (let i = 0; i < N; i++) m = Math.max(m, x[r * N + i]!);
    let sum = 0;
    for (let i = 0; i < N; i++) sum += Math.exp(x[r * N + i]! - m);
    for (let i = 0; i < N; i++) out[r * N + i] = log ? x[r * N + i]! - m - Math.log(sum) : Math.exp(x[r * N + i]! - m) / sum;
  }
  return out;
}

/** out[n,D] = table[ids[n], :]. */
export function embedding(table: ArrayLike<number>, ids: ArrayLike<number>, D: number): Float64Array {
  const out = new Float64Array(ids.length * D);
  for (let n = 0; n < ids.length; n++)
    for (let d = 0; d < D; d++) out[n * D + d] = table[ids[n]! * D + d]!;
  return out;
}
