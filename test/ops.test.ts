// ops.test.ts — every op × dtype × backend against the float64 references in
// test/ref (in the style of ggml's test-backend-ops). Backends: cpu; emu under
// the forward, reverse and seeded-random SIMT schedules (a missing barrier in
// a cuda/ kernel shows up as a schedule-dependent result); cuda when a GPU is
// visible. The emulator is slow, so cases marked `big` run on cpu/cuda only.
//
// Metric: normErr = max|a - ref| / max(1, max|ref|) (test/helpers.ts).
// Tolerances:
//  - SCORE_TOL 1e-5: scores are O(1); the f32 kernels accumulate dot products
//    of length D <= 64 and H <= 16, each with a relative rounding error of
//    about sqrt(len) * 2^-24 ~ 5e-7, plus LayerNorm's 1/std and erf (~1 ulp):
//    1e-5 leaves a 10x margin while a wrong term (e.g. a missing FiLM beta,
//    tanh-GELU instead of erf-GELU, ~1e-3) fails it.
//  - SCORE_TOL_BIG 3e-5 for D = 1024: the dot products are 16x longer (4x the
//    random-walk rounding error).
//  - f16/bf16 x: the reference runs on the very same rounded values (the
//    kernels widen exactly), so the f32 tolerance applies unchanged.
//  - LOGPROB_TOL 1e-6: computed in double and stored as f32 (half an ulp,
//    6e-8 relative) — tight enough to catch an f32 logsumexp on these sizes.
//  - PL_GRAD_TOL 1e-5: the gradient is a sum over k steps of softmaxes of
//    O(1) values; f32 storage and float accumulation stay well below this.
//  - ADAMW_TOL 1e-6: one elementwise f32 update of O(1) params (a few ulps).
//  - topk, Gumbel indices, gather, compact: exact (bit) equality.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ops, tensor, zeros, type DType, type Tensor } from '../lib/index.ts';
import { BACKENDS, diffText, firstDiff, normErr, on, reportSkips, rng, scorerParams, uniform, valuesOf, type BackendRun } from './helpers.ts';
import * as ref from './ref/ops.ts';
import { PARAM_NAMES, scoreTokens as refScore, scoreTokensBackward as refScoreBackward } from './ref/scorer.ts';

const SCORE_TOL = 1e-5;
const SCORE_TOL_BIG = 3e-5;
const LOGPROB_TOL = 1e-6;
const PL_GRAD_TOL = 1e-5;
const ADAMW_TOL = 1e-6;

const FLOAT_DTYPES: readonly DType[] = ['f32', 'f16', 'bf16'];

interface Case {
  name: string;
  /** Runs only on cpu/cuda (too slow for the emulator). */
  big?: boolean;
  run(b: BackendRun): void | Promise<void>;
}
const cases: Case[] = [];
const add = (c: Case) => cases.push(c);

/** A float tensor of `dtype` from f32 values (rounded to nearest even for f16/bf16). */
const floats = (values: Float32Array, shape: number[], dtype: DType) => tensor(values, shape, dtype);

function within(err: number, tol: number, what: string) {
  assert.ok(err <= tol, `${what}: normalised error ${err.toExponential(3)} > tolerance ${tol}`);
}

function sameInts(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string) {
  assert.ok(firstDiff(Array.from(actual), Array.from(expected)) < 0, `${what}: ${diffText(Array.from(actual), Array.from(expected))}`);
}

function bits(t: Tensor): number[] {
  const h = t.toHost().host;
  if (h instanceof Float32Array) return Array.from(new Uint32Array(h.buffer, h.byteOffset, h.length));
  return Array.from(h);
}

function rawBits(data: Float32Array | Uint16Array): number[] {
  return data instanceof Float32Array ? Array.from(new Uint32Array(data.buffer, data.byteOffset, data.length)) : Array.from(data);
}

// ---- scoreTokens ---------------------------------------------------------------------

interface ScoreShape { B: number; N: number; D: number; H: number; R: number; keep: number | number[]; big?: boolean }
const SCORE_SHAPES: ScoreShape[] = [
  { B: 1, N: 1, D: 8, H: 4, R: 2, keep: 1 },
  { B: 2, N: 5, D: 16, H: 8, R: 4, keep: [0.25, 1] },
  { B: 3, N: 7, D: 64, H: 16, R: 8, keep: [0.001, 0.5, 0.9] },
  { B: 2, N: 40, D: 32, H: 8, R: 3, keep: 0.3, big: true },
  { B: 1, N: 4, D: 1024, H: 32, R: 8, keep: 0.6, big: true },
  { B: 1, N: 2, D: 1, H: 2, R: 1, keep: 0.5 }, // D=1: LayerNorm gives h = lnBias
];
// Cases below pick shapes by index: [1] small ragged keep, [2] D=64, [4] D=1024.

function scoreSetup(s: ScoreShape, dtype: DType, seed: number) {
  const r = rng(seed);
  const x = floats(uniform(r, s.B * s.N * s.D, 2), [s.B, s.N, s.D], dtype);
  const query = tensor(uniform(r, s.B * s.D), [s.B, s.D]);
  const sp = scorerParams(r, s.D, s.H, s.R);
  const keepValues = typeof s.keep === 'number' ? new Array(s.B).fill(s.keep) : s.keep;
  const expected = refScore(valuesOf(x), valuesOf(query), Float32Array.from(keepValues), s.B, s.N, sp.ref);
  return { x, query, sp, expected };
}

for (const s of SCORE_SHAPES) {
  for (const dtype of FLOAT_DTYPES) {
    add({
      name: `scoreTokens ${dtype} B=${s.B} N=${s.N} D=${s.D} H=${s.H} R=${s.R} keep=${JSON.stringify(s.keep)} matches the reference`,
      big: s.big,
      run(b) {
        const { x, query, sp, expected } = scoreSetup(s, dtype, 100 + s.D + s.N);
        const scores = ops.scoreTokensSync(x, query, s.keep, sp.params, on(b));
        assert.equal(scores.shape, [s.B, s.N], 'scores shape');
        assert.is(scores.dtype, 'f32');
        within(normErr(valuesOf(scores), expected), s.D > 64 ? SCORE_TOL_BIG : SCORE_TOL, 'scores');
      },
    });
  }
}

add({
  name: 'scoreTokens keepRatio as a Tensor, an array and a number agree',
  run(b) {
    const s = SCORE_SHAPES[1]!;
    const { x, query, sp } = scoreSetup(s, 'f32', 7);
    const a = ops.scoreTokensSync(x, query, tensor([0.5, 0.5], [2]), sp.params, on(b));
    const c = ops.scoreTokensSync(x, query, [0.5, 0.5], sp.params, on(b));
    const d = ops.scoreTokensSync(x, query, 0.5, sp.params, on(b));
    assert.equal(bits(a), bits(c), 'Tensor vs array');
    assert.equal(bits(a), bits(d), 'Tensor vs number');
  },
});

add({
  name: 'scoreTokens keep ratio changes the scores through FiLM',
  run(b) {
    const s = SCORE_SHAPES[1]!;
    const { x, query, sp } = scoreSetup(s, 'f32', 8);
    const a = valuesOf(ops.scoreTokensSync(x, query, 0.2, sp.params, on(b)));
    const c = valuesOf(ops.scoreTokensSync(x, query, 0.7, sp.params, on(b)));
    assert.ok(normErr(a, c) > 1e-3, 'scores for keep 0.2 and 0.7 should differ');
  },
});

add({
  name: 'scoreTokens N=0 gives an empty [B,0] result',
  run(b) {
    const r = rng(3);
    const sp = scorerParams(r, 8, 4, 2);
    const out = ops.scoreTokensSync(zeros([2, 0, 8]), tensor(uniform(r, 16), [2, 8]), 0.5, sp.params, on(b));
    assert.equal(out.shape, [2, 0]);
  },
});

add({
  name: 'scoreTokens async equals sync (bits)',
  run: async (b) => {
    const { x, query, sp } = scoreSetup(SCORE_SHAPES[1]!, 'bf16', 9);
    const sync = ops.scoreTokensSync(x, query, [0.25, 1], sp.params, on(b));
    const asyncOut = await ops.scoreTokens(x, query, [0.25, 1], sp.params, on(b));
    assert.equal(bits(asyncOut), bits(sync));
  },
});

// ---- scoreTokensBackward (values vs the analytic reference; FD checks live in grad.test.ts) --


for (const [i, s] of [SCORE_SHAPES[1]!, SCORE_SHAPES[2]!, { ...SCORE_SHAPES[4]!, big: true }].entries()) {
  for (const dtype of i === 0 ? FLOAT_DTYPES : (['f32'] as DType[])) {
    add({
      name: `scoreTokensBackward ${dtype} B=${s.B} N=${s.N} D=${s.D} matches the analytic reference`,
      big: s.big,
      run(b) {
        const { x, query, sp } = scoreSetup(s, dtype, 200 + s.D);
        const r = rng(201);
        const d = tensor(uniform(r, s.B * s.N), [s.B, s.N]);
        const keepValues = typeof s.keep === 'number' ? new Array(s.B).fill(s.keep) : s.keep;
        const grads = ops.scoreTokensBackwardSync(x, query, s.keep, sp.params, d, on(b));
        const expected = refScoreBackward(valuesOf(x), valuesOf(query), Float32Array.from(keepValues), s.B, s.N, sp.ref, valuesOf(d));
        for (const name of PARAM_NAMES) {
          assert.equal(grads[name].shape, sp.params[name].shape, `grad ${name} shape`);
          // Gradients are sums over B*N tokens: scale the tolerance by the number of terms' growth (sqrt(BN)).
          within(normErr(valuesOf(grads[name]), expected[name]), 1e-5 * Math.sqrt(s.B * s.N) * (s.D > 64 ? 3 : 1), `grad ${name}`);
        }
      },
    });
  }
}

add({
  name: 'scoreTokensBackward async equals sync (bits)',
  run: async (b) => {
    const s = SCORE_SHAPES[1]!;
    const { x, query, sp } = scoreSetup(s, 'f32', 11);
    const d = tensor(uniform(rng(12), s.B * s.N), [s.B, s.N]);
    const sync = ops.scoreTokensBackwardSync(x, query, 0.5, sp.params, d, on(b));
    const asyncOut = await ops.scoreTokensBackward(x, query, 0.5, sp.params, d, on(b));
    for (const name of PARAM_NAMES) assert.equal(bits(asyncOut[name]), bits(sync[name]), name);
  },
});

// ---- topk -----------------------------------------------------------------------------

interface TopkCase { name: string; B: number; N: number; k: number | number[]; scores: (r: () => number, n: number) => Float32Array; big?: boolean }
const randomScores = (r: () => number, n: number) => uniform(r, n, 3);
/** Few distinct values: many ties, so the lower-index rule decides. */
const tiedScores = (r: () => number, n: number) => Float32Array.from({ length: n }, () => Math.floor(r() * 4) - 1);
const infScores = (r: () => number, n: number) => Float32Array.from({ length: n }, () => {
  const u = r();
  return u < 0.3 ? -Infinity : u < 0.4 ? Infinity : Math.floor(u * 6);
});
const TOPK_CASES: TopkCase[] = [
  { name: 'N=1 k=1', B: 1, N: 1, k: 1, scores: randomScores },
  { name: 'N=1 k=0', B: 2, N: 1, k: 0, scores: randomScores },
  { name: 'k=0 everywhere', B: 3, N: 9, k: 0, scores: randomScores },
  { name: 'k=N', B: 2, N: 13, k: 13, scores: randomScores },
  { name: 'random', B: 3, N: 40, k: 7, scores: randomScores },
  { name: 'ragged k', B: 3, N: 17, k: [0, 17, 5], scores: randomScores },
  { name: 'ties (lower index wins)', B: 3, N: 31, k: [4, 10, 1], scores: tiedScores },
  { name: 'all equal', B: 2, N: 20, k: [3, 19], scores: (_r, n) => new Float32Array(n).fill(0.5) },
  { name: '-Inf and +Inf scores', B: 3, N: 25, k: [25, 12, 3], scores: infScores },
  { name: 'all -Inf (kept -Inf vs padding)', B: 2, N: 6, k: [2, 5], scores: (_r, n) => new Float32Array(n).fill(-Infinity) },
  { name: 'B=64 ragged', B: 64, N: 33, k: Array.from({ length: 64 }, (_, b) => (b * 7) % 34), scores: tiedScores },
  { name: 'B=64 large N', B: 64, N: 1000, k: 100, scores: randomScores, big: true },
  { name: 'large N k=N/2 with ties', B: 2, N: 4096, k: [2048, 4095], scores: tiedScores, big: true },
];

for (const c of TOPK_CASES) {
  add({
    name: `topk ${c.name} (B=${c.B} N=${c.N}) matches the reference`,
    big: c.big,
    run(b) {
      const values = c.scores(rng(c.N * 31 + c.B), c.B * c.N);
      const kList = typeof c.k === 'number' ? new Array(c.B).fill(c.k) : c.k;
      const expected = ref.topk(values, c.B, c.N, kList);
      const out = ops.topkSync(tensor(values, [c.B, c.N]), c.k, on(b));
      assert.equal(out.indices.shape, [c.B, expected.maxK], 'indices shape');
      assert.equal(out.values.shape, [c.B, expected.maxK], 'values shape');
      sameInts(out.indices.host as Int32Array, expected.indices, 'indices');
      sameInts(Array.from(out.values.host as Float32Array), Array.from(expected.values), 'values');
    },
  });
}

add({
  name: 'topk signed zeros are equal values (lower index wins)',
  run(b) {
    const out = ops.topkSync(tensor([-0, 0, -0, 0], [1, 4]), 2, on(b));
    sameInts(out.indices.host as Int32Array, [0, 1], 'indices of [-0, 0, -0, 0] with k=2');
    const out2 = ops.topkSync(tensor([-0, 0], [1, 2]), 1, on(b));
    sameInts(out2.indices.host as Int32Array, [0], 'indices of [-0, 0] with k=1');
  },
});

add({
  name: 'topk k as number, array and Int32Array agree',
  run(b) {
    const s = tensor(uniform(rng(5), 3 * 10), [3, 10]);
    const a = ops.topkSync(s, 4, on(b));
    const c = ops.topkSync(s, [4, 4, 4], on(b));
    const d = ops.topkSync(s, Int32Array.of(4, 4, 4), on(b));
    assert.equal(bits(a.indices), bits(c.indices));
    assert.equal(bits(a.indices), bits(d.indices));
  },
});

add({
  name: 'topk async equals sync',
  run: async (b) => {
    const s = tensor(tiedScores(rng(6), 3 * 21), [3, 21]);
    const sync = ops.topkSync(s, [3, 0, 21], on(b));
    const asyncOut = await ops.topk(s, [3, 0, 21], on(b));
    assert.equal(bits(asyncOut.indices), bits(sync.indices));
    assert.equal(bits(asyncOut.values), bits(sync.values));
  },
});

// ---- Gumbel-top-k ---------------------------------------------------------------------

interface GumbelCase { name: string; B: number; N: number; k: number; G: number; seed: number | bigint; logits: (r: () => number, n: number) => Float32Array }
const GUMBEL_CASES: GumbelCase[] = [
  { name: 'random', B: 2, N: 10, k: 4, G: 16, seed: 1, logits: (r, n) => uniform(r, n, 2) },
  { name: 'k=0', B: 2, N: 5, k: 0, G: 3, seed: 2, logits: (r, n) => uniform(r, n, 2) },
  { name: 'k=N', B: 1, N: 7, k: 7, G: 8, seed: 3, logits: (r, n) => uniform(r, n, 2) },
  { name: 'N=1', B: 3, N: 1, k: 1, G: 4, seed: 4, logits: (r, n) => uniform(r, n, 2) },
  { name: 'big seed (bigint 2^64-1)', B: 1, N: 6, k: 3, G: 8, seed: (1n << 64n) - 1n, logits: (r, n) => uniform(r, n, 2) },
  { name: '-Inf logits (drawn only when k forces them)', B: 2, N: 6, k: 5, G: 12, seed: 5, logits: (_r, n) => Float32Array.from({ length: n }, (_, i) => (i % 3 === 1 ? -Infinity : i * 0.3)) },
  { name: 'all -Inf (ties: lower index first, logProb -Inf)', B: 1, N: 4, k: 2, G: 2, seed: 6, logits: (_r, n) => new Float32Array(n).fill(-Infinity) },
  { name: 'peaked logits', B: 1, N: 12, k: 3, G: 10, seed: 7, logits: (r, n) => uniform(r, n, 30) },
];

for (const c of GUMBEL_CASES) {
  add({
    name: `gumbelTopk ${c.name} (B=${c.B} N=${c.N} k=${c.k} G=${c.G}) draws exactly the reference sample`,
    run(b) {
      const l = c.logits(rng(c.N + c.k), c.B * c.N);
      const expected = ref.gumbelTopk(l, c.B, c.N, c.k, c.G, BigInt(c.seed));
      const out = ops.gumbelTopkSync(tensor(l, [c.B, c.N]), c.k, { samples: c.G, seed: c.seed, ...on(b) });
      assert.equal(out.indices.shape, [c.B, c.G, c.k], 'indices shape');
      assert.equal(out.logProb.shape, [c.B, c.G], 'logProb shape');
      sameInts(out.indices.host as Int32Array, expected.indices, 'indices');
      within(normErr(valuesOf(out.logProb), expected.logProb), LOGPROB_TOL, 'logProb');
    },
  });
}

add({
  name: 'gumbelTopk async equals sync',
  run: async (b) => {
    const l = tensor(uniform(rng(9), 2 * 9, 2), [2, 9]);
    const sync = ops.gumbelTopkSync(l, 3, { samples: 5, seed: 42, ...on(b) });
    const asyncOut = await ops.gumbelTopk(l, 3, { samples: 5, seed: 42, ...on(b) });
    assert.equal(bits(asyncOut.indices), bits(sync.indices));
    assert.equal(bits(asyncOut.logProb), bits(sync.logProb));
  },
});

// ---- Plackett-Luce ------------------------------------------------------------------------

/** G random ordered samples without replacement of k out of N per row. */
function randomSamples(r: () => number, B: number, N: number, G: number, k: number): Int32Array {
  const out = new Int32Array(B * G * k);
  for (let s = 0; s < B * G; s++) {
    const perm = Array.from({ length: N }, (_, i) => i);
    for (let i = N - 1; i > 0; i--) {
      const j = Math.floor(r() * (i + 1));
      [perm[i], perm[j]] = [perm[j]!, perm[i]!];
    }
    for (let j = 0; j < k; j++) out[s * k + j] = perm[j]!;
  }
  return out;
}

interface PLCase { name: string; B: number; N: number; G: number; k: number; logits: (r: () => number, n: number) => Float32Array; big?: boolean }
const PL_CASES: PLCase[] = [
  { name: 'random', B: 2, N: 12, G: 5, k: 3, logits: (r, n) => uniform(r, n, 2) },
  { name: 'k=0', B: 2, N: 4, G: 3, k: 0, logits: (r, n) => uniform(r, n, 2) },
  { name: 'k=N', B: 1, N: 9, G: 4, k: 9, logits: (r, n) => uniform(r, n, 2) },
  { name: 'N=1', B: 2, N: 1, G: 2, k: 1, logits: (r, n) => uniform(r, n, 2) },
  { name: 'G=0', B: 2, N: 5, G: 0, k: 2, logits: (r, n) => uniform(r, n, 2) },
  { name: 'large logits (stable logsumexp)', B: 1, N: 8, G: 4, k: 4, logits: (r, n) => uniform(r, n, 80) },
  { name: '-Inf logits (drawn -> -Inf and zero grad)', B: 2, N: 6, G: 6, k: 3, logits: (_r, n) => Float32Array.from({ length: n }, (_, i) => (i % 2 ? -Infinity : i * 0.25)) },
  { name: 'large', B: 3, N: 256, G: 16, k: 32, logits: (r, n) => uniform(r, n, 4), big: true },
];

for (const c of PL_CASES) {
  const setup = () => {
    const r = rng(c.N * 13 + c.G);
    const l = c.logits(r, c.B * c.N);
    const idx = randomSamples(r, c.B, c.N, c.G, c.k);
    const d = uniform(r, c.B * c.G);
    return { l, idx, d };
  };
  add({
    name: `plackettLuceLogProb ${c.name} (B=${c.B} N=${c.N} G=${c.G} k=${c.k}) matches the reference`,
    big: c.big,
    run(b) {
      const { l, idx } = setup();
      const out = ops.plackettLuceLogProbSync(tensor(l, [c.B, c.N]), tensor(idx, [c.B, c.G, c.k]), on(b));
      assert.equal(out.shape, [c.B, c.G], 'logProb shape');
      within(normErr(valuesOf(out), ref.plLogProb(l, idx, c.B, c.N, c.G, c.k)), LOGPROB_TOL, 'logProb');
    },
  });
  add({
    name: `plackettLuceBackward ${c.name} (B=${c.B} N=${c.N} G=${c.G} k=${c.k}) matches the reference`,
    big: c.big,
    run(b) {
      const { l, idx, d } = setup();
      const out = ops.plackettLuceBackwardSync(tensor(l, [c.B, c.N]), tensor(idx, [c.B, c.G, c.k]), tensor(d, [c.B, c.G]), on(b));
      assert.equal(out.shape, [c.B, c.N], 'dLogits shape');
      within(normErr(valuesOf(out), ref.plBackward(l, idx, d, c.B, c.N, c.G, c.k)), PL_GRAD_TOL, 'dLogits');
    },
  });
}

add({
  name: 'plackettLuce async equals sync',
  run: async (b) => {
    const r = rng(10);
    const l = tensor(uniform(r, 2 * 8), [2, 8]);
    const idx = tensor(randomSamples(r, 2, 8, 3, 4), [2, 3, 4]);
    const d = tensor(uniform(r, 6), [2, 3]);
    assert.equal(bits(await ops.plackettLuceLogProb(l, idx, on(b))), bits(ops.plackettLuceLogProbSync(l, idx, on(b))), 'logProb');
    assert.equal(bits(await ops.plackettLuceBackward(l, idx, d, on(b))), bits(ops.plackettLuceBackwardSync(l, idx, d, on(b))), 'dLogits');
  },
});

// ---- gatherRows ------------------------------------------------------------------------------

interface GatherCase { name: string; B: number; N: number; D: number; idx: number[][]; big?: boolean }
const GATHER_CASES: GatherCase[] = [
  { name: 'with -1 padding', B: 2, N: 7, D: 5, idx: [[6, 0, 3, -1], [2, 2, -1, -1]] },
  { name: 'K=0', B: 2, N: 3, D: 4, idx: [[], []] },
  { name: 'N=1 D=1', B: 3, N: 1, D: 1, idx: [[0], [-1], [0]] },
  { name: 'D=1024', B: 2, N: 9, D: 1024, idx: [[8, 1, 0], [-1, 4, 4]], big: true },
];
for (const c of GATHER_CASES) {
  for (const dtype of FLOAT_DTYPES) {
    add({
      name: `gatherRows ${dtype} ${c.name} (B=${c.B} N=${c.N} D=${c.D}) copies the exact bits`,
      big: c.big,
      run(b) {
        const K = c.idx[0]!.length;
        const x = floats(uniform(rng(c.D + c.N), c.B * c.N * c.D, 100), [c.B, c.N, c.D], dtype);
        const out = ops.gatherRowsSync(x, tensor(Int32Array.from(c.idx.flat()), [c.B, K]), on(b));
        assert.equal(out.shape, [c.B, K, c.D], 'shape');
        assert.is(out.dtype, dtype, 'dtype');
        const expected = ref.gatherRows(rawBits(x.host as Float32Array | Uint16Array), c.idx.flat(), c.B, c.N, c.D, K);
        sameInts(bits(out), expected, 'bits');
      },
    });
  }
}

add({
  name: 'gatherRows keeps NaN payloads and -0 bit for bit',
  run(b) {
    const payload = new Float32Array(new Uint32Array([0x7fc00123, 0x80000000, 0xff800000, 0x00000001]).buffer);
    const out = ops.gatherRowsSync(tensor(payload, [1, 2, 2]), tensor(Int32Array.of(1, 0), [1, 2]), on(b));
    sameInts(bits(out), [0xff800000, 0x00000001, 0x7fc00123, 0x80000000], 'bits');
  },
});

add({
  name: 'gatherRows async equals sync',
  run: async (b) => {
    const x = tensor(uniform(rng(11), 2 * 5 * 3), [2, 5, 3], 'f16');
    const i = tensor(Int32Array.of(4, -1, 0, 1), [2, 2]);
    assert.equal(bits(await ops.gatherRows(x, i, on(b))), bits(ops.gatherRowsSync(x, i, on(b))));
  },
});

// ---- compactKV (both forms) -----------------------------------------------------------------

interface CompactCase { name: string; B: number; Hkv: number; T: number; Dh: number; keep: number[][]; big?: boolean }
const COMPACT_CASES: CompactCase[] = [
  { name: 'padding', B: 2, Hkv: 3, T: 9, Dh: 4, keep: [[0, 2, 5, 8, -1], [1, 3, -1, -1, -1]] },
  { name: 'all padding row', B: 2, Hkv: 2, T: 4, Dh: 3, keep: [[-1, -1], [0, 3]] },
  { name: 'K=0', B: 1, Hkv: 2, T: 5, Dh: 2, keep: [[]] },
  { name: 'K=T identity', B: 1, Hkv: 2, T: 6, Dh: 2, keep: [[0, 1, 2, 3, 4, 5]] },
  { name: 'keep the tail', B: 1, Hkv: 1, T: 8, Dh: 3, keep: [[5, 6, 7]] },
  { name: 'large', B: 2, Hkv: 8, T: 512, Dh: 128, keep: [Array.from({ length: 200 }, (_, i) => i * 2 + 50), Array.from({ length: 200 }, (_, i) => (i < 150 ? i * 3 + 1 : -1))], big: true },
];
for (const c of COMPACT_CASES) {
  for (const dtype of FLOAT_DTYPES) {
    const K = c.keep[0]!.length;
    const make = () => floats(uniform(rng(c.T * 7 + c.Dh), c.B * c.Hkv * c.T * c.Dh, 10), [c.B, c.Hkv, c.T, c.Dh], dtype);
    add({
      name: `compactKV ${dtype} ${c.name} (B=${c.B} Hkv=${c.Hkv} T=${c.T} Dh=${c.Dh} K=${K}) copies the exact bits`,
      big: c.big,
      run(b) {
        const cache = make();
        const before = bits(cache);
        const out = ops.compactKVSync(cache, tensor(Int32Array.from(c.keep.flat()), [c.B, K]), on(b));
        assert.equal(out.shape, [c.B, c.Hkv, K, c.Dh], 'shape');
        assert.is(out.dtype, dtype);
        sameInts(bits(out), ref.compactKV(before, c.keep.flat(), c.B, c.Hkv, c.T, c.Dh, K), 'bits');
        sameInts(bits(cache), before, 'the input cache must stay untouched');
      },
    });
    add({
      name: `compactKVInPlace ${dtype} ${c.name} (B=${c.B} Hkv=${c.Hkv} T=${c.T} Dh=${c.Dh} K=${K}) moves rows and returns lengths`,
      big: c.big,
      run(b) {
        const cache = make();
        const expected = ref.compactKVInPlace(bits(cache), c.keep.flat(), c.B, c.Hkv, c.T, c.Dh, K);
        const lengths = ops.compactKVInPlaceSync(cache, tensor(Int32Array.from(c.keep.flat()), [c.B, K]), on(b));
        assert.ok(lengths instanceof Int32Array, 'lengths is an Int32Array');
        sameInts(lengths, expected.lengths, 'lengths');
        sameInts(bits(cache), expected.cache, 'cache bits (kept rows moved, the rest untouched)');
      },
    });
  }
}

add({
  name: 'compactKV async equals sync (both forms)',
  run: async (b) => {
    const c = COMPACT_CASES[0]!;
    const data = uniform(rng(12), c.B * c.Hkv * c.T * c.Dh);
    const keep = tensor(Int32Array.from(c.keep.flat()), [c.B, 5]);
    const shape = [c.B, c.Hkv, c.T, c.Dh];
    assert.equal(bits(await ops.compactKV(tensor(data, shape), keep, on(b))), bits(ops.compactKVSync(tensor(data, shape), keep, on(b))), 'out-of-place');
    const a = tensor(data.slice(), shape), s = tensor(data.slice(), shape);
    const la = await ops.compactKVInPlace(a, keep, on(b));
    const ls = ops.compactKVInPlaceSync(s, keep, on(b));
    assert.equal(Array.from(la), Array.from(ls), 'lengths');
    assert.equal(bits(a), bits(s), 'in-place cache');
  },
});

// ---- adamw --------------------------------------------------------------------------------

interface AdamCase { name: string; shape: number[]; step: number; lr: number; beta1?: number; beta2?: number; eps?: number; weightDecay?: number; big?: boolean }
const ADAM_CASES: AdamCase[] = [
  { name: 'step 1 defaults', shape: [37], step: 1, lr: 1e-3 },
  { name: 'step 7 custom', shape: [3, 5], step: 7, lr: 0.05, beta1: 0.8, beta2: 0.95, eps: 1e-6, weightDecay: 0.1 },
  { name: 'no weight decay, beta1 0', shape: [2, 2, 2], step: 3, lr: 0.01, beta1: 0, weightDecay: 0 },
  { name: 'lr 0 leaves param (only decay scaled by lr)', shape: [5], step: 2, lr: 0 },
  { name: 'empty', shape: [0], step: 1, lr: 0.1 },
  { name: 'large', shape: [1000, 33], step: 100, lr: 3e-4, big: true },
];
for (const c of ADAM_CASES) {
  add({
    name: `adamw ${c.name} (shape [${c.shape}]) matches PyTorch's update`,
    big: c.big,
    run(b) {
      const n = c.shape.reduce((a, d) => a * d, 1);
      const r = rng(n + c.step);
      const p0 = uniform(r, n), g0 = uniform(r, n, 0.5), m0 = uniform(r, n, 0.1);
      const v0 = Float32Array.from(uniform(r, n, 0.01), Math.abs);
      const param = tensor(p0.slice(), c.shape), m = tensor(m0.slice(), c.shape), v = tensor(v0.slice(), c.shape);
      ops.adamwSync(param, tensor(g0, c.shape), m, v, { step: c.step, lr: c.lr, beta1: c.beta1, beta2: c.beta2, eps: c.eps, weightDecay: c.weightDecay }, on(b));
      // The C ABI carries the hyper-parameters as float: the reference uses the same rounded values.
      const f = Math.fround;
      const expected = ref.adamw(p0, g0, m0, v0, { step: c.step, lr: f(c.lr), beta1: f(c.beta1 ?? 0.9), beta2: f(c.beta2 ?? 0.999), eps: f(c.eps ?? 1e-8), weightDecay: f(c.weightDecay ?? 0.01) });
      within(normErr(valuesOf(param), expected.param), ADAMW_TOL, 'param');
      within(normErr(valuesOf(m), expected.m), ADAMW_TOL, 'm');
      within(normErr(valuesOf(v), expected.v), ADAMW_TOL, 'v');
    },
  });
}

add({
  name: 'adamw async equals sync',
  run: async (b) => {
    const r = rng(13);
    const p0 = uniform(r, 20), g = tensor(uniform(r, 20), [20]);
    const mk = () => [tensor(p0.slice(), [20]), zeros([20]), zeros([20])] as const;
    const [pa, ma, va] = mk();
    const [ps, ms, vs] = mk();
    await ops.adamw(pa, g, ma, va, { step: 1, lr: 0.1 }, on(b));
    ops.adamwSync(ps, g, ms, vs, { step: 1, lr: 0.1 }, on(b));
    assert.equal(bits(pa), bits(ps), 'param');
    assert.equal(bits(ma), bits(ms), 'm');
    assert.equal(bits(va), bits(vs), 'v');
  },
});

// ---- empty shapes --------------------------------------------------------------------------

add({
  name: 'empty shapes (B=0, N=0, K=0, T=0, G=0) give empty results of the right shape',
  run(b) {
    assert.equal(ops.topkSync(zeros([2, 0]), 0, on(b)).indices.shape, [2, 0], 'topk N=0');
    assert.equal(ops.topkSync(zeros([0, 5]), 2, on(b)).values.shape, [0, 0], 'topk B=0');
    const g = ops.gumbelTopkSync(zeros([1, 0]), 0, { samples: 3, seed: 1, ...on(b) });
    assert.equal(g.indices.shape, [1, 3, 0], 'gumbel N=0 indices');
    assert.equal(Array.from(g.logProb.host), [0, 0, 0], 'gumbel k=0 logProb is 0');
    assert.equal(ops.gumbelTopkSync(zeros([0, 5]), 2, { samples: 3, seed: 1, ...on(b) }).indices.shape, [0, 3, 2], 'gumbel B=0');
    assert.equal(Array.from(ops.gatherRowsSync(zeros([1, 0, 3]), tensor(Int32Array.of(-1, -1), [1, 2]), on(b)).host), [0, 0, 0, 0, 0, 0], 'gather N=0, all padding');
    assert.equal(ops.compactKVSync(zeros([1, 2, 0, 3]), zeros([1, 0], 'i32'), on(b)).shape, [1, 2, 0, 3], 'compact T=0');
    assert.equal(ops.plackettLuceBackwardSync(zeros([0, 3]), zeros([0, 2, 1], 'i32'), zeros([0, 2]), on(b)).shape, [0, 3], 'PL B=0');
  },
});

// ---- AbortSignal -------------------------------------------------------------------------------

add({
  name: 'an already-aborted signal rejects with its reason and runs nothing',
  run: async (b) => {
    const ac = new AbortController();
    const reason = new Error('stop');
    ac.abort(reason);
    const signal = ac.signal;
    const s = tensor([1, 2, 3], [1, 3]);
    for (const [name, call] of [
      ['topk', () => ops.topk(s, 1, { ...on(b), signal })],
      ['gumbelTopk', () => ops.gumbelTopk(s, 1, { samples: 1, seed: 1, ...on(b), signal })],
      ['gatherRows', () => ops.gatherRows(tensor([1, 2], [1, 2, 1]), tensor(Int32Array.of(0), [1, 1]), { ...on(b), signal })],
    ] as const) {
      let error: unknown = 'no rejection';
      await call().then(() => undefined, (e: unknown) => { error = e; });
      assert.is(error, reason, `${name} should reject with the signal's reason`);
    }
    // In-place ops must not touch their tensors.
    const param = tensor([1, 2, 3], [3]);
    const rejected = await ops.adamw(param, tensor([1, 1, 1], [3]), zeros([3]), zeros([3]), { step: 1, lr: 0.5 }, { ...on(b), signal }).then(() => false, (e) => e === reason);
    assert.ok(rejected, 'adamw rejects with the reason');
    assert.equal(Array.from(param.host), [1, 2, 3], 'param unchanged by an aborted adamw');
    const cache = tensor([1, 2, 3, 4], [1, 1, 4, 1]);
    const rejected2 = await ops.compactKVInPlace(cache, tensor(Int32Array.of(2, 3), [1, 2]), { ...on(b), signal }).then(() => false, (e) => e === reason);
    assert.ok(rejected2, 'compactKVInPlace rejects with the reason');
    assert.equal(Array.from(cache.host), [1, 2, 3, 4], 'cache unchanged by an aborted compactKVInPlace');
  },
});

add({
  name: 'a signal aborted while the op runs rejects with its reason',
  run: async (b) => {
    const ac = new AbortController();
    const reason = new DOMException('late', 'AbortError');
    const pending = ops.topk(tensor(uniform(rng(14), 2 * 50), [2, 50]), 5, { ...on(b), signal: ac.signal });
    ac.abort(reason);
    const error = await pending.then(() => 'resolved', (e) => e);
    assert.is(error, reason);
  },
});

add({
  name: 'an abort signal that never fires does not change the result',
  run: async (b) => {
    const s = tensor(uniform(rng(15), 2 * 9), [2, 9]);
    const out = await ops.topk(s, 3, { ...on(b), signal: new AbortController().signal });
    assert.equal(bits(out.indices), bits(ops.topkSync(s, 3, on(b)).indices));
  },
});

// ---- staged CUDA backend (host tensors with backend 'cuda'; device tensors) -------------------

add({
  name: 'staged: host inputs on backend cuda give host outputs equal to cpu, in-place ops write back',
  run(b) {
    if (b.backend !== 'cuda') return; // only meaningful for cuda (registered only there below)
    const s = tensor(uniform(rng(16), 3 * 20), [3, 20]);
    const out = ops.topkSync(s, 4, on(b));
    assert.is(out.indices.device, 'cpu', 'staged outputs come back to the host');
    assert.equal(bits(out.indices), bits(ops.topkSync(s, 4, { backend: 'cpu' }).indices));
    const param = tensor([1, 2, 3], [3]);
    ops.adamwSync(param, tensor([1, 1, 1], [3]), zeros([3]), zeros([3]), { step: 1, lr: 0.5 }, on(b));
    assert.not.equal(Array.from(param.host), [1, 2, 3], 'adamw updated the host param');
  },
});

add({
  name: 'device tensors: outputs stay on the device; mixing host and device tensors is ERR_GRIP_DEVICE',
  run(b) {
    if (b.backend !== 'cuda') return;
    const s = tensor(uniform(rng(17), 2 * 10), [2, 10]);
    const d = s.toDevice();
    const out = ops.topkSync(d, 3);
    assert.is(out.indices.device, 'cuda');
    assert.equal(bits(out.indices.toHost()), bits(ops.topkSync(s, 3, { backend: 'cpu' }).indices));
    let error: any;
    try {
      ops.gatherRowsSync(tensor([1, 2], [1, 2, 1]).toDevice(), tensor(Int32Array.of(0), [1, 1]));
    } catch (e) {
      error = e;
    }
    assert.is(error?.code, 'ERR_GRIP_DEVICE');
    assert.is(error?.message, 'expected a cuda tensor (like x) for indices but received a cpu tensor');
    d.dispose();
  },
});

// ---- registration --------------------------------------------------------------------------

const test = suite('ops');
const ROOT = fileURLToPath(new URL('..', import.meta.url));
reportSkips('ops.test.ts');
const CUDA_ONLY = new Set(['staged: host inputs on backend cuda give host outputs equal to cpu, in-place ops write back', 'device tensors: outputs stay on the device; mixing host and device tensors is ERR_GRIP_DEVICE']);
for (const run of BACKENDS) {
  for (const c of cases) {
    if (CUDA_ONLY.has(c.name) && run.backend !== 'cuda') continue;
    if (c.big && run.backend === 'emu') continue; // the emulator is too slow for these shapes
    const title = `${run.name}: ${c.name}`;
    if (run.skip) test.skip(title, () => {});
    else test(title, () => c.run(run));
  }
}
// libFuzzer finding: an empty cache whose head count is huge (B * Hkv planes
// of no rows) looped over every plane. In a child process with a time limit,
// so a regression fails instead of hanging the suite.
test('compactKVInPlace of an empty cache with 2^31 - 1 KV heads returns at once', () => {
  const script = `import { ops, tensor } from './lib/index.ts';
    const cache = tensor(new Float32Array(0), [64, 2147483647, 0, 8]);
    const lengths = ops.compactKVInPlaceSync(cache, tensor(new Int32Array(0), [64, 0]), { backend: 'cpu' });
    process.stdout.write(JSON.stringify(Array.from(lengths).slice(0, 3)) + ' ' + lengths.length);`;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: ROOT, encoding: 'utf8', timeout: 30_000 });
  assert.is(r.signal, null, `killed by ${r.signal} (timed out)`);
  assert.is(r.stdout, '[0,0,0] 64', r.stderr);
});

test.run();
