// scorer.ts — float64 reference of score_tokens and its analytic backward,
// written from the semantics in native/README.md (items 1 and 2) only.
import { gelu, geluGrad } from './math.ts';

export const PARAM_NAMES = ['lnWeight', 'lnBias', 'w1', 'b1', 'filmW', 'filmB', 'w2', 'b2', 'wq', 'wk'] as const;
export type ParamName = (typeof PARAM_NAMES)[number];
/** Scorer params as float64 arrays (row-major, shapes as in ScorerParams). */
export type RefParams = Record<ParamName, Float64Array>;

export const LN_EPS = 1e-5;
export const FOURIER = 16;

/** fourier(rho)[2j] = sin(2^j pi rho), [2j+1] = cos(2^j pi rho), j = 0..7. */
export function fourier(rho: number): Float64Array {
  const f = new Float64Array(FOURIER);
  for (let j = 0; j < 8; j++) {
    const a = 2 ** j * Math.PI * rho;
    f[2 * j] = Math.sin(a);
    f[2 * j + 1] = Math.cos(a);
  }
  return f;
}

interface Dims { B: number; N: number; D: number; H: number; R: number }

function dims(x: ArrayLike<number>, B: number, N: number, p: RefParams): Dims {
  const D = p.lnWeight.length;
  const H = p.b1.length;
  const R = p.wq.length / D;
  if (x.length !== B * N * D) throw new Error(`ref scorer: x has ${x.length} values, expected ${B * N * D}`);
  return { B, N, D, H, R };
}

/** Everything the forward computes for one token (kept for the backward). */
interface TokenState { xhat: Float64Array; h: Float64Array; z: Float64Array; u: Float64Array; c: Float64Array; s: number }

/** Per-row quantities: FiLM gamma/beta, the query projection a = query·wq. */
interface RowState { f: Float64Array; gamma: Float64Array; beta: Float64Array; a: Float64Array }

function rowState(query: ArrayLike<number>, rho: number, b: number, d: Dims, p: RefParams): RowState {
  const { D, H, R } = d;
  const f = fourier(rho);
  const gamma = new Float64Array(H), beta = new Float64Array(H);
  for (let k = 0; k < 2 * H; k++) {
    let acc = p.filmB[k]!;
    for (let i = 0; i < FOURIER; i++) acc += f[i]! * p.filmW[i * 2 * H + k]!;
    if (k < H) gamma[k] = acc;
    else beta[k - H] = acc;
  }
  const a = new Float64Array(R);
  for (let r = 0; r < R; r++) {
    let acc = 0;
    for (let dd = 0; dd < D; dd++) acc += query[b * D + dd]! * p.wq[dd * R + r]!;
    a[r] = acc;
  }
  return { f, gamma, beta, a };
}

function token(x: ArrayLike<number>, off: number, row: RowState, d: Dims, p: RefParams): TokenState {
  const { D, H, R } = d;
  let mean = 0;
  for (let i = 0; i < D; i++) mean += x[off + i]!;
  mean /= D;
  let v = 0;
  for (let i = 0; i < D; i++) v += (x[off + i]! - mean) ** 2;
  v /= D; // biased variance
  const rstd = 1 / Math.sqrt(v + LN_EPS);
  const xhat = new Float64Array(D), h = new Float64Array(D);
  for (let i = 0; i < D; i++) {
    xhat[i] = (x[off + i]! - mean) * rstd;
    h[i] = xhat[i]! * p.lnWeight[i]! + p.lnBias[i]!;
  }
  const z = new Float64Array(H), u = new Float64Array(H);
  for (let j = 0; j < H; j++) {
    let acc = p.b1[j]!;
    for (let i = 0; i < D; i++) acc += h[i]! * p.w1[i * H + j]!;
    z[j] = acc;
    u[j] = gelu(acc);
  }
  const c = new Float64Array(R);
  for (let r = 0; r < R; r++) {
    let acc = 0;
    for (let i = 0; i < D; i++) acc += h[i]! * p.wk[i * R + r]!;
    c[r] = acc;
  }
  let s = p.b2[0]!;
  for (let j = 0; j < H; j++) s += (u[j]! * (1 + row.gamma[j]!) + row.beta[j]!) * p.w2[j]!;
  let qk = 0;
  for (let r = 0; r < R; r++) qk += row.a[r]! * c[r]!;
  s += qk / Math.sqrt(R);
  return { xhat, h, z, u, c, s };
}

/** scores [B*N] for x [B,N,D] (values already widened), query [B,D], keepRatio [B]. */
export function scoreTokens(x: ArrayLike<number>, query: ArrayLike<number>, keepRatio: ArrayLike<number>, B: number, N: number, p: RefParams): Float64Array {
  const d = dims(x, B, N, p);
  const out = new Float64Array(B * N);
  for (let b = 0; b < B; b++) {
    const row = rowState(query, keepRatio[b]!, b, d, p);
    for (let n = 0; n < N; n++) out[b * N + n] = token(x, (b * N + n) * d.D, row, d, p).s;
  }
  return out;
}

/** Gradients of sum(dScores * scores) w.r.t. every param (analytic, float64). */
export function scoreTokensBackward(x: ArrayLike<number>, query: ArrayLike<number>, keepRatio: ArrayLike<number>, B: number, N: number, p: RefParams, dScores: ArrayLike<number>): RefParams {
  const d = dims(x, B, N, p);
  const { D, H, R } = d;
  const g = {} as RefParams;
  for (const name of PARAM_NAMES) g[name] = new Float64Array(p[name].length);
  const invSqrtR = 1 / Math.sqrt(R);
  for (let b = 0; b < B; b++) {
    const row = rowState(query, keepRatio[b]!, b, d, p);
    const dGamma = new Float64Array(H), dBeta = new Float64Array(H), dA = new Float64Array(R);
    for (let n = 0; n < N; n++) {
      const ds = dScores[b * N + n]!;
      const t = token(x, (b * N + n) * D, row, d, p);
      g.b2[0]! += ds;
      const dz = new Float64Array(H);
      for (let j = 0; j < H; j++) {
        g.w2[j]! += ds * (t.u[j]! * (1 + row.gamma[j]!) + row.beta[j]!);
        dGamma[j]! += ds * t.u[j]! * p.w2[j]!;
        dBeta[j]! += ds * p.w2[j]!;
        dz[j] = ds * (1 + row.gamma[j]!) * p.w2[j]! * geluGrad(t.z[j]!);
        g.b1[j]! += dz[j]!;
      }
      const dc = new Float64Array(R);
      for (let r = 0; r < R; r++) {
        dc[r] = ds * row.a[r]! * invSqrtR;
        dA[r]! += ds * t.c[r]! * invSqrtR;
      }
      for (let i = 0; i < D; i++) {
        let dh = 0;
        for (let j = 0; j < H; j++) {
          g.w1[i * H + j]! += t.h[i]! * dz[j]!;
          dh += p.w1[i * H + j]! * dz[j]!;
        }
        for (let r = 0; r < R; r++) {
          g.wk[i * R + r]! += t.h[i]! * dc[r]!;
          dh += p.wk[i * R + r]! * dc[r]!;
        }
        g.lnWeight[i]! += dh * t.xhat[i]!;
        g.lnBias[i]! += dh;
      }
    }
    for (let i = 0; i < FOURIER; i++) {
      for (let j = 0; j < H; j++) {
        g.filmW[i * 2 * H + j]! += row.f[i]! * dGamma[j]!;
        g.filmW[i * 2 * H + H + j]! += row.f[i]! * dBeta[j]!;
      }
    }
    for (let j = 0; j < H; j++) {
      g.filmB[j]! += dGamma[j]!;
      g.filmB[H + j]! += dBeta[j]!;
    }
    for (let i = 0; i < D; i++) for (let r = 0; r < R; r++) g.wq[i * R + r]! += query[b * D + i]! * dA[r]!;
  }
  return g;
}
