// ops.fuzz.ts — seeded, structure-aware fuzzer over every public op of lib/ops.ts.
// Each call starts from a valid call of one op and mutates one thing (a dim, a
// dtype, k, an index, an option, NaN/Inf/-0 in the data, a view over a too-short
// buffer, a disposed device tensor, `out` of the wrong shape, an option of the
// wrong type). The outcome must be a result equal to the plain-TS reference
// (test/ref, the op tests' tolerances) or a GripError with a code; anything else
// is a finding. Call i of seed S depends only on (S, i): `--seed S --call i` replays it.
import { DeviceBuffer, GripError, ops, scorerShapes, tensor, Tensor, zeros, type DType } from '../../lib/index.ts';
import { normErr, rng, uniform, valuesOf } from '../helpers.ts';
import * as refOps from '../ref/ops.ts';
import { PARAM_NAMES, scoreTokens as refScore, scoreTokensBackward as refScoreBackward, type RefParams } from '../ref/scorer.ts';
import * as refT from '../ref/transformer.ts';

type Rand = () => number;
/** What a valid call compares: the result, the reference values, and a tolerance (0: bit-exact). */
export interface Expectation { what: string; got: ArrayLike<number>; want: ArrayLike<number>; tol: number }
interface OpSpec {
  name: string;
  /** Positional arguments of a valid call. */
  build(r: Rand): unknown[];
  /** Runs the op (sync or async form). */
  invoke(args: unknown[], sync: boolean): unknown;
  /** The comparisons of a result against the reference, computed from the (possibly mutated) arguments. */
  expect(args: unknown[], result: unknown): Expectation[];
}

export interface OpReport { calls: number; checked: number; unchecked: number; errors: Record<string, number> }
export interface Finding { seed: number; call: number; op: string; mutation: string; problem: string }

// ---- building blocks ----------------------------------------------------------------

const int = (r: Rand, lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
const pick = <T>(r: Rand, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
const FLOATS: readonly DType[] = ['f32', 'f16', 'bf16'];
const floatT = (r: Rand, shape: number[], dtype: DType = 'f32', scale = 1) => tensor(uniform(r, shape.reduce((a, b) => a * b, 1), scale), shape, dtype);
const intT = (values: ArrayLike<number>, shape: number[]) => tensor(Int32Array.from(values), shape, 'i32');
const vals = (t: unknown) => valuesOf(t as Tensor);
const dims = (t: unknown) => (t as Tensor).shape;
const asArray = (v: unknown, B: number): number[] => (typeof v === 'number' ? Array(B).fill(v) : Array.from(v as ArrayLike<number>));
/** Distinct sorted positions of [0, N), count of them. */
function ascending(r: Rand, N: number, count: number): number[] {
  const all = Array.from({ length: N }, (_, i) => i);
  for (let i = all.length - 1; i > 0; i--) { const j = int(r, 0, i); [all[i], all[j]] = [all[j]!, all[i]!]; }
  return all.slice(0, count).sort((a, b) => a - b);
}
function shuffled(r: Rand, N: number, count: number): number[] {
  const s = ascending(r, N, N);
  for (let i = s.length - 1; i > 0; i--) { const j = int(r, 0, i); [s[i], s[j]] = [s[j]!, s[i]!]; }
  return s.slice(0, count);
}
function scorerArgs(r: Rand, D: number): Record<string, Tensor> {
  const H = int(r, 1, 4), R = int(r, 1, 3), shapes = scorerShapes(D, H, R), p: Record<string, Tensor> = {};
  for (const name of PARAM_NAMES) p[name] = floatT(r, shapes[name].shape, 'f32', name === 'lnWeight' ? 1 : 0.5);
  return p;
}
const refParams = (p: unknown): RefParams => Object.fromEntries(PARAM_NAMES.map((n) => [n, vals((p as Record<string, Tensor>)[n])])) as RefParams;
const one = (what: string, got: unknown, want: ArrayLike<number>, tol: number): Expectation => ({ what, got: vals(got), want, tol });

// ---- the ops: a valid call and the reference of each ----------------------------------

const SCORE_TOL = 1e-5, LOGPROB_TOL = 1e-6, PL_GRAD_TOL = 1e-5, ADAMW_TOL = 1e-6;
const NORM_TOL = 1e-5, ROPE_TOL = 1e-6, ATTN_TOL = 2e-6, ELEM_TOL = 2e-6, SOFTMAX_TOL = 1e-6;
// Mutated options can make a call ill-conditioned (a learning rate of 65537,
// eps 0 on a row of two near-equal values), where f32 against the float64
// reference loses more than the fixed tolerance allows. There the tolerance
// is a first-order rounding-error bound of the kernel's own f32 steps
// (u = 2^-24 per operation, twice over for safety), in normErr's units;
// well-conditioned calls keep the fixed tolerance.
const U = 2 ** -24;
const scaledTol = (fixed: number, bound: number, want: ArrayLike<number>) => {
  let maxRef = 1;
  for (let i = 0; i < want.length; i++) if (Number.isFinite(want[i]!)) maxRef = Math.max(maxRef, Math.abs(want[i]!));
  return Number.isFinite(bound) ? Math.max(fixed, (2 * bound) / maxRef) : fixed;
};

/** Error bounds of native/cpu/adamw.cc's f32 steps (the step factors in double, then rounded to f32) per output. */
function adamwBounds(p0: ArrayLike<number>, g: ArrayLike<number>, m0: ArrayLike<number>, v0: ArrayLike<number>, o: { step: number; lr: number; beta1: number; beta2: number; eps: number; weightDecay: number }) {
  const bc1 = 1 - o.beta1 ** o.step, bc2s = Math.sqrt(1 - o.beta2 ** o.step), stepSize = o.lr / bc1, decay = 1 - o.lr * o.weightDecay;
  let param = 0, m = 0, v = 0;
  for (let i = 0; i < p0.length; i++) {
    const mTerms = Math.abs(o.beta1 * m0[i]!) + Math.abs((1 - o.beta1) * g[i]!), vTerms = o.beta2 * Math.abs(v0[i]!) + (1 - o.beta2) * g[i]! ** 2;
    const mi = o.beta1 * m0[i]! + (1 - o.beta1) * g[i]!, vi = o.beta2 * v0[i]! + (1 - o.beta2) * g[i]! ** 2;
    const eM = 4 * U * mTerms, eV = 5 * U * vTerms; // constants rounded to f32, two products, a sum (and g*g)
    const sq = Math.sqrt(Math.abs(vi)) / bc2s, d = sq + o.eps;
    const s = Math.abs((stepSize * mi) / d);
    if (!(d > 0) || !Number.isFinite(s)) continue; // ±Inf or NaN on both sides, compared as such (no bound to scale by)
    const relD = ((vi > 0 ? eV / (2 * Math.abs(vi)) : 0) + 2 * U) * (sq / d) + U;
    const eS = (Math.abs(stepSize) * eM) / d + s * (relD + 3 * U);
    const pi = Math.abs(p0[i]! * decay);
    param = Math.max(param, 2 * U * pi + eS + U * (pi + s));
    m = Math.max(m, eM);
    v = Math.max(v, eV);
  }
  return { param, m, v };
}

/** Error bound of the two-pass layerNorm (native/cpu/transformer_impl.h) over rows of D: the centring's cancellation, divided by the row's std. */
function layerNormBound(x: ArrayLike<number>, w: ArrayLike<number>, b: ArrayLike<number>, eps: number, D: number) {
  let bound = 0;
  for (let r = 0; r * D < x.length; r++) {
    let mean = 0, maxX = 0;
    for (let d = 0; d < D; d++) { mean += x[r * D + d]! / D; maxX = Math.max(maxX, Math.abs(x[r * D + d]!)); }
    let sumT = 0, sumT2 = 0;
    for (let d = 0; d < D; d++) { const t = x[r * D + d]! - mean; sumT += Math.abs(t); sumT2 += t * t; }
    const varE = sumT2 / D + eps, rstd = 1 / Math.sqrt(varE);
    if (!Number.isFinite(rstd)) continue; // a constant row with eps 0: NaN or ±Inf on both sides, compared as such
    const eMean = (D + 1) * U * maxX, eT = eMean + U * maxX;
    const relVar = (sumT2 > 0 ? (2 * eT * sumT) / sumT2 : 0) + (D + 2) * U, relRstd = relVar / 2 + 2 * U;
    for (let d = 0; d < D; d++) {
      const y = (x[r * D + d]! - mean) * rstd;
      const eY = eT * rstd + Math.abs(y) * (relRstd + U);
      bound = Math.max(bound, Math.abs(w[d]!) * eY + 2 * U * (Math.abs(y * w[d]!) + Math.abs(b[d]!)));
    }
  }
  return bound;
}
const opsAny = ops as unknown as Record<string, (...a: unknown[]) => unknown>;
const call = (name: string) => (args: unknown[], sync: boolean) => opsAny[sync ? `${name}Sync` : name]!(...args);

const SPECS: OpSpec[] = [
  {
    name: 'scoreTokens',
    build(r) {
      const B = int(r, 1, 2), N = int(r, 1, 6), D = int(r, 2, 8);
      return [floatT(r, [B, N, D], pick(r, FLOATS)), floatT(r, [B, D]), r() < 0.5 ? 0.5 : Array.from({ length: B }, () => 0.1 + 0.9 * r()), scorerArgs(r, D)];
    },
    invoke: call('scoreTokens'),
    expect([x, q, kr, p], out) {
      const [B, N] = dims(x);
      return [one('scores', out, refScore(vals(x), vals(q), Float32Array.from(asArray(kr, B!)), B!, N!, refParams(p)), SCORE_TOL)];
    },
  },
  {
    name: 'scoreTokensBackward',
    build(r) {
      const B = int(r, 1, 2), N = int(r, 1, 5), D = int(r, 2, 6);
      return [floatT(r, [B, N, D], pick(r, FLOATS)), floatT(r, [B, D]), 0.25 + 0.75 * r(), scorerArgs(r, D), floatT(r, [B, N])];
    },
    invoke: call('scoreTokensBackward'),
    expect([x, q, kr, p, d], grads) {
      const [B, N] = dims(x);
      const want = refScoreBackward(vals(x), vals(q), Float32Array.from(asArray(kr, B!)), B!, N!, refParams(p), vals(d));
      return PARAM_NAMES.map((n) => one(`grad ${n}`, (grads as Record<string, Tensor>)[n], want[n], 1e-5 * Math.sqrt(B! * N!)));
    },
  },
  {
    name: 'topk',
    build(r) {
      const B = int(r, 1, 3), N = int(r, 1, 8);
      const scores = r() < 0.3 ? intsAsFloats(r, B * N, [B, N]) : floatT(r, [B, N]);
      return [scores, r() < 0.5 ? int(r, 0, N) : Array.from({ length: B }, () => int(r, 0, N))];
    },
    invoke: (a, sync) => call('topk')(a, sync),
    expect([s, k], res) {
      const [B, N] = dims(s), want = refOps.topk(vals(s), B!, N!, asArray(k, B!));
      const { indices, values } = res as { indices: Tensor; values: Tensor };
      return [one('indices', indices, want.indices, 0), one('values', values, want.values, 0)];
    },
  },
  {
    name: 'gumbelTopk',
    build(r) {
      const B = int(r, 1, 2), N = int(r, 1, 7);
      return [floatT(r, [B, N], 'f32', 2), int(r, 1, N), { samples: int(r, 1, 3), seed: int(r, 0, 1000) }];
    },
    invoke: call('gumbelTopk'),
    expect([l, k, o], res) {
      const [B, N] = dims(l), opt = o as { samples: number; seed: number };
      const want = refOps.gumbelTopk(vals(l), B!, N!, k as number, opt.samples, BigInt(opt.seed));
      const { indices, logProb } = res as { indices: Tensor; logProb: Tensor };
      return [one('indices', indices, want.indices, 0), one('logProb', logProb, want.logProb, LOGPROB_TOL)];
    },
  },
  {
    name: 'plackettLuceLogProb',
    build(r) {
      const B = int(r, 1, 2), N = int(r, 1, 6), G = int(r, 1, 3), k = int(r, 1, N);
      const idx: number[] = [];
      for (let i = 0; i < B * G; i++) idx.push(...shuffled(r, N, k));
      return [floatT(r, [B, N], 'f32', 2), intT(idx, [B, G, k])];
    },
    invoke: call('plackettLuceLogProb'),
    expect([l, idx], out) {
      const [B, N] = dims(l), [, G, k] = dims(idx);
      return [one('logProb', out, refOps.plLogProb(vals(l), vals(idx), B!, N!, G!, k!), LOGPROB_TOL)];
    },
  },
  {
    name: 'plackettLuceBackward',
    build(r) {
      const B = int(r, 1, 2), N = int(r, 1, 6), G = int(r, 1, 3), k = int(r, 1, N);
      const idx: number[] = [];
      for (let i = 0; i < B * G; i++) idx.push(...shuffled(r, N, k));
      return [floatT(r, [B, N], 'f32', 2), intT(idx, [B, G, k]), floatT(r, [B, G])];
    },
    invoke: call('plackettLuceBackward'),
    expect([l, idx, d], out) {
      const [B, N] = dims(l), [, G, k] = dims(idx);
      return [one('dLogits', out, refOps.plBackward(vals(l), vals(idx), vals(d), B!, N!, G!, k!), PL_GRAD_TOL)];
    },
  },
  {
    name: 'gatherRows',
    build(r) {
      const B = int(r, 1, 2), N = int(r, 1, 6), D = int(r, 1, 5), K = int(r, 0, N);
      const idx = Array.from({ length: B * K }, () => int(r, -1, N - 1));
      return [floatT(r, [B, N, D], pick(r, FLOATS)), intT(idx, [B, K])];
    },
    invoke: call('gatherRows'),
    expect([x, idx], out) {
      const [B, N, D] = dims(x), [, K] = dims(idx);
      return [one('rows', out, refOps.gatherRows(vals(x), vals(idx), B!, N!, D!, K!), 0)];
    },
  },
  {
    name: 'compactKV',
    build(r) { return compactArgs(r); },
    invoke: call('compactKV'),
    expect([c, keep], out) {
      const [B, Hkv, T, Dh] = dims(c), [, K] = dims(keep);
      return [one('cache', out, refOps.compactKV(vals(c), vals(keep), B!, Hkv!, T!, Dh!, K!), 0)];
    },
  },
  {
    name: 'compactKVInPlace',
    build(r) { return compactArgs(r); },
    invoke(args, sync) {
      const [c] = args as [Tensor];
      const before = c instanceof Tensor && !(c.data instanceof DeviceBuffer) ? valuesOf(c) : null;
      const finish = (lengths: unknown) => ({ lengths, before });
      const res = call('compactKVInPlace')(args, sync);
      return res instanceof Promise ? res.then(finish) : finish(res);
    },
    expect([c, keep], res) {
      const [B, Hkv, T, Dh] = dims(c), [, K] = dims(keep), { lengths, before } = res as { lengths: Int32Array; before: Float64Array };
      const want = refOps.compactKVInPlace(before, vals(keep), B!, Hkv!, T!, Dh!, K!);
      return [one('cache', c, want.cache, 0), { what: 'lengths', got: lengths, want: want.lengths, tol: 0 }];
    },
  },
  {
    name: 'matmul',
    build(r) {
      const M = int(r, 1, 5), N = int(r, 1, 5), K = int(r, 1, 9), transB = r() < 0.5;
      return [floatT(r, [M, K]), floatT(r, transB ? [N, K] : [K, N], pick(r, FLOATS)), { transB }];
    },
    invoke: call('matmul'),
    expect([a, b, o], out) {
      const [M, K] = dims(a), transB = (o as { transB?: boolean } | undefined)?.transB === true;
      const N = transB ? dims(b)[0]! : dims(b)[1]!, bv = vals(b), w = new Float64Array(N * K!);
      for (let n = 0; n < N; n++) for (let k = 0; k < K!; k++) w[n * K! + k] = transB ? bv[n * K! + k]! : bv[k * N + n]!;
      return [one('out', out, refT.linear(vals(a), w, null, M!, N, K!), 2e-6 * Math.max(1, Math.sqrt(K!)))];
    },
  },
  {
    name: 'linear',
    build(r) {
      const M = int(r, 1, 4), N = int(r, 1, 5), K = int(r, 1, 9);
      return [floatT(r, r() < 0.5 ? [M, K] : [1, M, K]), floatT(r, [N, K], pick(r, FLOATS)), r() < 0.5 ? floatT(r, [N]) : null];
    },
    invoke: call('linear'),
    expect([x, w, bias], out) {
      const K = dims(x).at(-1)!, M = vals(x).length / K, N = dims(w)[0]!;
      return [one('out', out, refT.linear(vals(x), vals(w), bias == null ? null : vals(bias), M, N, K), 2e-6 * Math.max(1, Math.sqrt(K)))];
    },
  },
  {
    name: 'layerNorm',
    build(r) { const M = int(r, 1, 4), D = int(r, 1, 9); return [floatT(r, [M, D]), floatT(r, [D]), floatT(r, [D]), pick(r, [1e-5, 1e-6, 0.1])]; },
    invoke: call('layerNorm'),
    expect([x, w, b, eps], out) {
      const D = dims(x).at(-1)!;
      const e = Math.fround(eps as number), want = refT.layerNorm(vals(x), vals(w), vals(b), e, vals(x).length / D, D);
      return [one('out', out, want, scaledTol(NORM_TOL, layerNormBound(vals(x), vals(w), vals(b), e, D), want))];
    },
  },
  {
    name: 'rmsNorm',
    build(r) { const M = int(r, 1, 4), D = int(r, 1, 9); return [floatT(r, [M, D]), floatT(r, [D]), pick(r, [1e-5, 1e-6, 0.1])]; },
    invoke: call('rmsNorm'),
    expect([x, w, eps], out) {
      const D = dims(x).at(-1)!;
      return [one('out', out, refT.rmsNorm(vals(x), vals(w), Math.fround(eps as number), vals(x).length / D, D), NORM_TOL)];
    },
  },
  {
    name: 'rope',
    build(r) {
      const B = int(r, 1, 2), T = int(r, 1, 4), H = int(r, 1, 3), Dh = 2 * int(r, 1, 4);
      return [floatT(r, [B, T, H, Dh]), intT(Array.from({ length: B * T }, () => int(r, 0, 50)), [B, T]), 10000];
    },
    invoke: call('rope'),
    expect([x, pos, theta], out) {
      const [B, T, H, Dh] = dims(x);
      return [one('out', out, refT.rope(vals(x), vals(pos), theta as number, B!, T!, H!, Dh!), ROPE_TOL)];
    },
  },
  {
    name: 'cacheWrite',
    build(r) {
      const B = int(r, 1, 2), Hkv = int(r, 1, 2), Tmax = int(r, 1, 6), T = int(r, 1, Tmax), Dh = int(r, 1, 4);
      const count = Array.from({ length: B }, () => int(r, 0, T)), start = count.map((c) => int(r, 0, Tmax - c));
      return [floatT(r, [B, Hkv, Tmax, Dh]), floatT(r, [B, T, Hkv, Dh]), start, count];
    },
    invoke(args, sync) {
      const [c] = args as [Tensor];
      const before = c instanceof Tensor && !(c.data instanceof DeviceBuffer) ? valuesOf(c) : null;
      const res = call('cacheWrite')(args, sync);
      return res instanceof Promise ? res.then(() => before) : before;
    },
    expect([c, src, start, count], before) {
      const [B, Hkv, Tmax, Dh] = dims(c), [, T] = dims(src);
      const want = refT.cacheWrite(before as Float64Array, vals(src), Array.from(start as number[]), Array.from(count as number[]), B!, Hkv!, Tmax!, T!, Dh!);
      // An f16/bf16 cache stores the f32 source rounded to nearest even: compare with the rounded reference.
      return [one('cache', c, valuesOf(tensor(Float32Array.from(want), [want.length], (c as Tensor).dtype)), 0)];
    },
  },
  {
    name: 'attention',
    build(r) {
      const B = int(r, 1, 2), Hkv = int(r, 1, 2), Hq = Hkv * int(r, 1, 2), Dh = int(r, 1, 4), Tk = int(r, 1, 5), Tq = int(r, 1, Tk);
      const kvLen = Array.from({ length: B }, () => int(r, 1, Tk)), qLen = kvLen.map((kv) => int(r, 0, Math.min(Tq, kv)));
      const options: Record<string, unknown> = { causal: r() < 0.7, qLen, kvLen };
      if (r() < 0.4) options.probRows = [int(r, 0, Tq - 1)];
      if (r() < 0.3) options.scale = 0.5;
      return [floatT(r, [B, Tq, Hq, Dh]), floatT(r, [B, Hkv, Tk, Dh]), floatT(r, [B, Hkv, Tk, Dh]), options];
    },
    invoke: call('attention'),
    expect([q, k, v, o], res) {
      const [B, Tq, Hq, Dh] = dims(q), [, Hkv, Tk] = dims(k), opt = (o ?? {}) as Record<string, unknown>;
      const d = { B: B!, Tq: Tq!, Tk: Tk!, Hq: Hq!, Hkv: Hkv!, Dh: Dh! };
      const ro = {
        causal: opt.causal !== false, qLen: opt.qLen ? Array.from(opt.qLen as number[]) : Array(B).fill(Tq), kvLen: opt.kvLen ? Array.from(opt.kvLen as number[]) : Array(B).fill(Tk),
        scale: typeof opt.scale === 'number' ? Math.fround(opt.scale) : 1 / Math.sqrt(Dh!), probRows: opt.probRows ? Array.from(opt.probRows as number[]) : [],
      };
      const want = refT.attention(vals(q), vals(k), vals(v), d, ro), out = res as { out: Tensor; probs?: Tensor };
      const e = [one('out', out.out, want.out, ATTN_TOL)];
      if (ro.probRows.length > 0) e.push(one('probs', out.probs, want.probs, ATTN_TOL));
      return e;
    },
  },
  {
    name: 'gelu',
    build(r) { return [floatT(r, [int(r, 1, 3), int(r, 1, 6)], 'f32', 4), pick(r, ['erf', 'tanh', 'quick'] as const)]; },
    invoke: call('gelu'),
    expect([x, kind], out) { return [one('out', out, Float64Array.from(vals(x), (v) => refT.gelu(v, kind as refT.GeluKind)), ELEM_TOL)]; },
  },
  {
    name: 'siluMul',
    build(r) { const s = [int(r, 1, 3), int(r, 1, 6)]; return [floatT(r, s, 'f32', 4), floatT(r, s, 'f32', 4)]; },
    invoke: call('siluMul'),
    expect([g, u], out) { const uv = vals(u); return [one('out', out, Float64Array.from(vals(g), (v, i) => refT.siluMul(v, uv[i]!)), ELEM_TOL)]; },
  },
  {
    name: 'add',
    build(r) { const s = [int(r, 1, 3), int(r, 1, 6)]; return [floatT(r, s), floatT(r, r() < 0.5 ? s : s.slice(1))]; },
    invoke: call('add'),
    expect([a, b], out) { return [one('out', out, refT.add(vals(a), vals(b)), ELEM_TOL)]; },
  },
  {
    name: 'softmax',
    build(r) { return [floatT(r, [int(r, 1, 3), int(r, 1, 7)], 'f32', 3), r() < 0.5 ? { log: true } : undefined]; },
    invoke: call('softmax'),
    expect([x, o], out) {
      const N = dims(x).at(-1)!;
      return [one('out', out, refT.softmax(vals(x), vals(x).length / N, N, (o as { log?: boolean } | undefined)?.log === true), SOFTMAX_TOL)];
    },
  },
  {
    name: 'embedding',
    build(r) {
      const V = int(r, 1, 6), D = int(r, 1, 4), n = int(r, 1, 5);
      return [floatT(r, [V, D], pick(r, FLOATS)), intT(Array.from({ length: n }, () => int(r, 0, V - 1)), [n])];
    },
    invoke: call('embedding'),
    expect([t, ids], out) { return [one('out', out, refT.embedding(vals(t), vals(ids), dims(t)[1]!), 0)]; },
  },
  {
    name: 'adamw',
    build(r) {
      const s = [int(r, 1, 6)];
      return [floatT(r, s), floatT(r, s), floatT(r, s, 'f32', 0.1), tensor(uniform(r, s[0]!).map(Math.abs), s), { step: int(r, 1, 10), lr: 1e-3, weightDecay: 0.01 }];
    },
    invoke(args, sync) {
      const before = (args.slice(0, 4) as Tensor[]).map((t) => (t instanceof Tensor && !(t.data instanceof DeviceBuffer) ? valuesOf(t) : null));
      const res = call('adamw')(args, sync);
      return res instanceof Promise ? res.then(() => before) : before;
    },
    expect([p, , m, v, o], before) {
      const [p0, g0, m0, v0] = before as Float64Array[], opt = o as Record<string, number>;
      const o64 = { step: opt.step!, lr: Math.fround(opt.lr!), beta1: Math.fround(opt.beta1 ?? 0.9), beta2: Math.fround(opt.beta2 ?? 0.999), eps: Math.fround(opt.eps ?? 1e-8), weightDecay: Math.fround(opt.weightDecay ?? 0.01) };
      const want = refOps.adamw(p0!, g0!, m0!, v0!, o64), bound = adamwBounds(p0!, g0!, m0!, v0!, o64);
      return [one('param', p, want.param, scaledTol(ADAMW_TOL, bound.param, want.param)), one('m', m, want.m, scaledTol(ADAMW_TOL, bound.m, want.m)), one('v', v, want.v, scaledTol(ADAMW_TOL, bound.v, want.v))];
    },
  },
];

/** Scores with many ties (small integers), where the tie-breaking rule shows. */
function intsAsFloats(r: Rand, n: number, shape: number[]): Tensor {
  return tensor(Float32Array.from({ length: n }, () => int(r, -2, 2)), shape, 'f32');
}
function compactArgs(r: Rand): unknown[] {
  const B = int(r, 1, 2), Hkv = int(r, 1, 2), T = int(r, 1, 6), Dh = int(r, 1, 3), K = int(r, 0, T);
  const keep: number[] = [];
  for (let b = 0; b < B; b++) { const n = int(r, 0, K); keep.push(...ascending(r, T, n), ...Array(K - n).fill(-1)); }
  return [floatT(r, [B, Hkv, T, Dh], pick(r, FLOATS)), intT(keep, [B, K])];
}

// ---- mutations: one change to a valid call -------------------------------------------

interface Slot { get(): unknown; set(v: unknown): void; path: string }
/** Every place a mutation can touch: top-level args, fields of option/param objects, elements of number arrays. */
function slots(args: unknown[]): Slot[] {
  const out: Slot[] = [];
  args.forEach((a, i) => {
    out.push({ get: () => args[i], set: (v) => { args[i] = v; }, path: `arg${i}` });
    if (a !== null && typeof a === 'object' && !(a instanceof Tensor)) {
      const obj = a as Record<string, unknown>;
      for (const key of Object.keys(obj)) {
        out.push({ get: () => obj[key], set: (v) => { obj[key] = v; }, path: `arg${i}.${key}` });
        const inner = obj[key];
        if (Array.isArray(inner)) inner.forEach((_, j) => out.push({ get: () => inner[j], set: (v) => { inner[j] = v; }, path: `arg${i}.${key}[${j}]` }));
      }
    }
  });
  return out;
}
const isTensor = (v: unknown): v is Tensor => v instanceof Tensor;
function withData(t: Tensor, values: ArrayLike<number>, shape: readonly number[], dtype: DType): Tensor {
  return tensor(dtype === 'i32' ? Int32Array.from(values, (v) => Math.trunc(v) | 0) : Float32Array.from(values), [...shape], dtype);
}
const SPECIAL = [NaN, Infinity, -Infinity, -0, 3.4e38, 1e-45];
// 65537, not 1e9: a valid but huge size (samples = 1e9) is a real 8 GB request, not a defect.
const NUMBERS = [-1, 0, 1.5, NaN, Infinity, -Infinity, 2 ** 31, 65537, -0];
const WRONG_TYPES: unknown[] = ['x', null, undefined, true, {}, [], 7, Symbol('s'), () => 0, 10n];

/** Applies one mutation to args in place; returns its description, and whether the result may still be compared with the reference. */
function mutate(r: Rand, args: unknown[]): { what: string; comparable: boolean } {
  const all = slots(args), tensors = all.filter((s) => isTensor(s.get()));
  const numbers = all.filter((s) => typeof s.get() === 'number');
  const kind = pick(r, ['dim', 'dim', 'dtype', 'short', 'disposed', 'special', 'special', 'number', 'number', 'out', 'wrongType', 'dropOption'] as const);
  if (kind === 'number' && numbers.length > 0) {
    const s = pick(r, numbers), old = s.get() as number, v = r() < 0.5 ? pick(r, NUMBERS) : old + pick(r, [-1, 1, 2]);
    s.set(v);
    return { what: `${s.path}: ${old} -> ${String(v)}`, comparable: true };
  }
  if (kind === 'wrongType' || kind === 'dropOption' || (kind === 'number' && numbers.length === 0)) {
    const s = pick(r, all), v = kind === 'dropOption' ? undefined : pick(r, WRONG_TYPES);
    s.set(v);
    return { what: `${s.path} -> ${typeof v === 'symbol' ? 'Symbol' : typeof v === 'bigint' ? `${v}n` : JSON.stringify(v) ?? String(v)}`, comparable: true };
  }
  if (kind === 'out') {
    const opts = args.at(-1), template = tensors.length > 0 ? (pick(r, tensors).get() as Tensor) : null;
    const shape = template ? [...template.shape] : [1];
    if (shape.length > 0 && r() < 0.7) shape[int(r, 0, shape.length - 1)]! += 1; else shape.push(1);
    const out = zeros(shape, r() < 0.7 ? 'f32' : pick(r, ['f16', 'i32'] as const));
    if (opts !== null && typeof opts === 'object' && !isTensor(opts) && !Array.isArray(opts)) (opts as Record<string, unknown>).out = out; else args.push({ out });
    return { what: `out [${shape}] ${out.dtype}`, comparable: true };
  }
  if (tensors.length === 0) return { what: 'none', comparable: true };
  const s = pick(r, tensors), t = s.get() as Tensor, values = valuesOf(t);
  if (kind === 'dim') {
    const shape = [...t.shape], i = int(r, 0, Math.max(0, shape.length - 1)), choice = r();
    if (shape.length === 0 || choice < 0.15) shape.push(int(r, 1, 2));
    else if (choice < 0.25) shape.splice(i, 1);
    else shape[i] = Math.max(0, shape[i]! + pick(r, [-1, 1, 2, -shape[i]!]));
    const n = shape.reduce((a, b) => a * b, 1);
    const data = Float64Array.from({ length: n }, (_, j) => (values.length > 0 ? values[j % values.length]! : 0));
    s.set(withData(t, data, shape, t.dtype));
    return { what: `${s.path} shape [${t.shape}] -> [${shape}]`, comparable: true };
  }
  if (kind === 'dtype') {
    const dtype = pick(r, (['f32', 'f16', 'bf16', 'i32'] as DType[]).filter((d) => d !== t.dtype));
    s.set(withData(t, values, t.shape, dtype));
    return { what: `${s.path} dtype ${t.dtype} -> ${dtype}`, comparable: true };
  }
  if (kind === 'short') {
    const host = t.host;
    s.set(new Tensor(t.dtype, t.shape, host.subarray(0, Math.max(0, host.length - int(r, 1, 3))) as typeof host, 'cpu'));
    return { what: `${s.path} over a buffer of ${Math.max(0, host.length - 1)}- elements for [${t.shape}]`, comparable: true };
  }
  if (kind === 'disposed') {
    // A device tensor whose buffer was disposed (built without a GPU: the handle is what dispose() nulls).
    const buffer = Object.create(DeviceBuffer.prototype) as { handle: object | null; bytes: number };
    buffer.handle = null; buffer.bytes = t.bytes;
    s.set(new Tensor(t.dtype, t.shape, buffer as unknown as DeviceBuffer, 'cuda'));
    return { what: `${s.path} a disposed cuda tensor`, comparable: true };
  }
  // special values in the data: -0 keeps the result comparable; NaN/Inf results are only checked for not crashing.
  if (values.length === 0) return { what: `${s.path} empty, no special value`, comparable: true };
  const j = int(r, 0, values.length - 1), v = pick(r, SPECIAL);
  const data = Float64Array.from(values); data[j] = v;
  s.set(withData(t, data, t.shape, t.dtype));
  return { what: `${s.path}[${j}] = ${Object.is(v, -0) ? '-0' : v}`, comparable: Object.is(v, -0) || t.dtype === 'i32' };
}

// ---- the driver ------------------------------------------------------------------------

/** The generator of call `index` of `seed` (splitmix-style mixing so neighbouring calls are unrelated). */
function callRng(seed: number, index: number): Rand {
  let h = (Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(index + 1, 0xc2b2ae35)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d) >>> 0;
  return rng(h ^ (h >>> 15));
}

/** A short, replayable description of a value (tensors by dtype and shape). */
function text(a: unknown, depth = 0): string {
  if (a instanceof Tensor) return `${a.dtype}[${a.shape}]${a.device === 'cuda' ? '@cuda' : ''}`;
  if (typeof a === 'symbol') return 'Symbol';
  if (typeof a === 'bigint') return `${a}n`;
  if (typeof a === 'function') return 'function';
  if (Array.isArray(a)) return `[${a.map((v) => text(v, depth + 1)).join(',')}]`;
  if (a !== null && typeof a === 'object') return depth > 1 ? '{...}' : `{${Object.entries(a).map(([k, v]) => `${k}:${text(v, depth + 1)}`).join(',')}}`;
  return Object.is(a, -0) ? '-0' : String(a);
}
const describeArgs = (args: unknown[]) => args.map((a) => text(a)).join(', ');

/** A valid call of one op (call `index` of `seed`, no mutation): the soak and the concurrency tests run these. */
export interface ValidCall {
  op: string;
  args: unknown[];
  /** Runs the op (its sync or async form); in-place ops change their arguments. */
  run(sync: boolean): unknown;
  /** Runs the op on other arguments of the same call (the soak's device copies of `args`). */
  invoke(args: unknown[], sync: boolean): unknown;
  /** The result's numbers (the mutated arguments of in-place ops), with the reference each must equal. */
  expectations(result: unknown): Expectation[];
}
export function validCall(op: string, seed: number, index: number): ValidCall {
  const spec = SPECS.find((s) => s.name === op);
  if (spec === undefined) throw new Error(`expected one of ${OP_NAMES.join(', ')} for op but received ${op}`);
  const args = spec.build(callRng(seed, index));
  return { op, args, run: (sync) => spec.invoke(args, sync), invoke: (a, sync) => spec.invoke(a, sync), expectations: (result) => spec.expect(args, result) };
}

export interface FuzzOptions { seed: number; calls: number; only?: string | undefined; firstCall?: number; trace?: (line: string) => void }
export const OP_NAMES: readonly string[] = SPECS.map((s) => s.name);

/** Runs `calls` calls (round robin over the ops, or only `only`); returns the per-op report and the findings. */
export async function fuzzOps(o: FuzzOptions): Promise<{ report: Record<string, OpReport>; findings: Finding[] }> {
  const specs = o.only ? SPECS.filter((s) => s.name === o.only) : SPECS;
  if (specs.length === 0) throw new Error(`--only ${o.only}: expected one of ${OP_NAMES.join(', ')}`);
  const report: Record<string, OpReport> = {}, findings: Finding[] = [];
  for (const s of specs) report[s.name] = { calls: 0, checked: 0, unchecked: 0, errors: {} };
  const first = o.firstCall ?? 0;
  for (let i = first; i < first + o.calls; i++) {
    const spec = specs[i % specs.length]!, r = callRng(o.seed, i), rep = report[spec.name]!;
    const args = spec.build(r);
    const m = r() < 0.2 ? { what: 'valid', comparable: true } : mutate(r, args);
    const sync = r() >= 0.125, where = `${spec.name}${sync ? 'Sync' : ''}(${describeArgs(args)})`;
    o.trace?.(`${i} [${m.what}] ${where}`);
    const finding = (problem: string) => findings.push({ seed: o.seed, call: i, op: spec.name, mutation: m.what, problem: `${problem} in ${where}` });
    rep.calls++;
    let result: unknown;
    try {
      result = spec.invoke(args, sync);
      if (result instanceof Promise) result = await result;
    } catch (error) {
      if (error instanceof GripError && typeof error.code === 'string' && error.code.startsWith('ERR_GRIP_')) {
        if (error.code === 'ERR_GRIP_INTERNAL') finding(`internal error: ${error.message}`);
        rep.errors[error.code] = (rep.errors[error.code] ?? 0) + 1;
      } else finding(`threw ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)} (not a GripError)`);
      continue;
    }
    if (m.what === 'valid' && result === undefined) { finding('returned nothing'); continue; }
    if (!m.comparable) { rep.unchecked++; continue; }
    let expectations: Expectation[];
    try { expectations = spec.expect(args, result); } catch (error) { finding(`accepted, but the reference cannot read it: ${String(error)}`); continue; }
    for (const e of expectations) {
      const err = normErr(e.got, e.want);
      const bad = e.tol === 0 ? !sameBits(e.got, e.want) : !(err <= e.tol);
      if (bad) { finding(`${e.what} differs from the reference (normalised error ${err}, tolerance ${e.tol})`); break; }
    }
    rep.checked++;
  }
  return { report, findings };
}
function sameBits(a: ArrayLike<number>, b: ArrayLike<number>): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i]) && !(Number.isNaN(a[i]) && Number.isNaN(b[i]))) return false;
  return true;
}
