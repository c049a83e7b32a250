// transformer.test.ts — the transformer ops (linear, layerNorm, rmsNorm, rope,
// cacheWrite, attention, gelu, siluMul, add, softmax, embedding) × dtype ×
// backend against the float64 references in test/ref/transformer.ts. Backends
// as in ops.test.ts: cpu; emu under the forward, reverse and seeded-random
// SIMT schedules; cuda when a GPU is visible. `big` cases (several key blocks
// and query tiles of the CPU attention, long rows) run on cpu/cuda only.
//
// Metric: normErr = max|a - ref| / max(1, max|ref|) (test/helpers.ts).
// Tolerances:
//  - LINEAR: 2e-6 * sqrt(K), as matmul.test.ts (f32 sums of K products).
//  - NORM_TOL 1e-5: row sums of D <= 4096 squares/values in f32 lanes
//    (relative error ~ sqrt(D/16) * 6e-8) times 1/std; a wrong variance (n-1
//    instead of n: 1/(2D) ~ 2e-3 at D = 300) or a missing eps fails it.
//  - ROPE_TOL 1e-6: cos/sin rounded to f32 and two products (~3 ulp of O(1)).
//  - ATTN_TOL 2e-6: softmax in f32 (exp error 2e-7 relative), dot products of
//    Dh <= 64 and weighted sums over Tk <= 300 keys of O(1) values; a key
//    off by one in the causal mask or a wrong GQA head moves results by 1e-2.
//  - ELEM_TOL 2e-6: erf/tanh/exp approximations (< 5e-7 absolute) times |x|
//    <= 4; erf-GELU vs tanh-GELU differ by 1e-4, so a wrong kind fails.
//  - SOFTMAX_TOL 1e-6: probabilities (and log-probs) of rows of N <= 1000.
//  - add, embedding, cacheWrite: exact (f32 add; exact widening; bit copies,
//    f16/bf16 rounding checked against lib's own round-to-nearest-even).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { info, ops, setNumThreads, tensor, zeros, type DType, type GeluKind, type Tensor } from '../lib/index.ts';
import { BACKENDS, caught, diffText, firstDiff, normErr, on, reportSkips, rng, uniform, valuesOf, type BackendRun } from './helpers.ts';
import * as ref from './ref/transformer.ts';

const NORM_TOL = 1e-5;
const ROPE_TOL = 1e-6;
const ATTN_TOL = 2e-6;
const ELEM_TOL = 2e-6;
const SOFTMAX_TOL = 1e-6;
const FLOAT_DTYPES: readonly DType[] = ['f32', 'f16', 'bf16'];

interface Case {
  name: string;
  big?: boolean;
  run(b: BackendRun): void | Promise<void>;
}
const cases: Case[] = [];
const add = (c: Case) => cases.push(c);

function within(err: number, tol: number, what: string) {
  assert.ok(err <= tol, `${what}: normalised error ${err.toExponential(3)} > tolerance ${tol}`);
}

function bits(t: Tensor): number[] {
  const h = t.toHost().host;
  if (h instanceof Float32Array) return Array.from(new Uint32Array(h.buffer, h.byteOffset, h.length));
  return Array.from(h);
}

function sameBits(actual: number[], expected: number[], what: string) {
  assert.ok(firstDiff(actual, expected) < 0, `${what}: ${diffText(actual, expected)}`);
}

const numel = (shape: readonly number[]) => shape.reduce((a, d) => a * d, 1);
const randomTensor = (seed: number, shape: number[], scale = 1, dtype: DType = 'f32') => tensor(uniform(rng(seed), numel(shape), scale), shape, dtype);

// ---- linear ------------------------------------------------------------------------

const LINEAR_SHAPES: { lead: number[]; N: number; K: number; big?: boolean }[] = [
  { lead: [1], N: 1, K: 1 },
  { lead: [2, 3], N: 13, K: 5 },
  { lead: [7], N: 33, K: 65 },
  { lead: [4], N: 3, K: 0 }, // K = 0: out = bias
  { lead: [2, 40], N: 70, K: 129, big: true },
];
for (const s of LINEAR_SHAPES) {
  for (const dtype of FLOAT_DTYPES) {
    for (const withBias of [true, false]) {
      add({
        name: `linear ${dtype} weight x[${s.lead},${s.K}] N=${s.N} ${withBias ? 'with' : 'without'} bias matches x·Wᵀ+b`,
        big: s.big,
        run(b) {
          const M = numel(s.lead);
          const x = randomTensor(1 + s.K, [...s.lead, s.K]);
          const w = randomTensor(2 + s.N, [s.N, s.K], 1, dtype);
          const bias = withBias ? randomTensor(3, [s.N]) : null;
          const out = ops.linearSync(x, w, bias, on(b));
          assert.equal(out.shape, [...s.lead, s.N], 'shape');
          const expected = ref.linear(valuesOf(x), valuesOf(w), bias && valuesOf(bias), M, s.N, s.K);
          within(normErr(valuesOf(out), expected), 2e-6 * Math.max(1, Math.sqrt(s.K)), 'linear');
        },
      });
    }
  }
}

// ---- norms -----------------------------------------------------------------------------

const NORM_SHAPES: { shape: number[]; big?: boolean }[] = [
  { shape: [1] }, { shape: [3, 7] }, { shape: [2, 3, 64] }, { shape: [5, 300] }, { shape: [4, 4096], big: true },
];
for (const { shape, big } of NORM_SHAPES) {
  const D = shape[shape.length - 1]!, M = numel(shape) / D;
  const setup = () => ({
    x: tensor(uniform(rng(D), numel(shape), 3).map((v, i) => v + (i % 7) * 0.5), shape),
    w: tensor(uniform(rng(D + 1), D).map((v) => 1 + 0.5 * v), [D]),
    bias: randomTensor(D + 2, [D], 0.3),
  });
  add({
    name: `layerNorm x[${shape}] matches the reference (eps 1e-5 and 1e-6)`,
    big,
    run(b) {
      const { x, w, bias } = setup();
      for (const eps of [1e-5, 1e-6]) {
        const out = ops.layerNormSync(x, w, bias, eps, on(b));
        assert.equal(out.shape, shape);
        within(normErr(valuesOf(out), ref.layerNorm(valuesOf(x), valuesOf(w), valuesOf(bias), Math.fround(eps), M, D)), NORM_TOL, `layerNorm eps ${eps}`);
      }
    },
  });
  add({
    name: `rmsNorm x[${shape}] matches the reference`,
    big,
    run(b) {
      const { x, w } = setup();
      const out = ops.rmsNormSync(x, w, 1e-6, on(b));
      within(normErr(valuesOf(out), ref.rmsNorm(valuesOf(x), valuesOf(w), Math.fround(1e-6), M, D)), NORM_TOL, 'rmsNorm');
    },
  });
}

add({
  name: 'layerNorm and rmsNorm in place (out: x) equal the out-of-place result',
  run(b) {
    const shape = [3, 37];
    const w = randomTensor(5, [37]), bias = randomTensor(6, [37]);
    const x1 = randomTensor(7, shape, 2);
    const expected = bits(ops.layerNormSync(x1, w, bias, 1e-5, on(b)));
    assert.is(ops.layerNormSync(x1, w, bias, 1e-5, { ...on(b), out: x1 }), x1, 'returns out');
    sameBits(bits(x1), expected, 'layerNorm in place');
    const x2 = randomTensor(8, shape, 2);
    const expected2 = bits(ops.rmsNormSync(x2, w, 1e-5, on(b)));
    ops.rmsNormSync(x2, w, 1e-5, { ...on(b), out: x2 });
    sameBits(bits(x2), expected2, 'rmsNorm in place');
  },
});

// ---- rope ---------------------------------------------------------------------------------

const ROPE_CASES: { B: number; T: number; H: number; Dh: number; theta: number; positions: number[] }[] = [
  { B: 1, T: 1, H: 1, Dh: 2, theta: 10000, positions: [3] },
  { B: 2, T: 3, H: 2, Dh: 8, theta: 10000, positions: [0, 1, 2, 7, 0, 4000] },
  { B: 1, T: 4, H: 3, Dh: 128, theta: 500000, positions: [5, 100, 1000, 131071] },
];
for (const c of ROPE_CASES) {
  add({
    name: `rope B=${c.B} T=${c.T} H=${c.H} Dh=${c.Dh} theta=${c.theta} matches rotate_half with exact angles`,
    run(b) {
      const shape = [c.B, c.T, c.H, c.Dh];
      const x = randomTensor(c.Dh + c.T, shape);
      const pos = tensor(Int32Array.from(c.positions), [c.B, c.T]);
      const out = ops.ropeSync(x, pos, c.theta, on(b));
      assert.equal(out.shape, shape);
      within(normErr(valuesOf(out), ref.rope(valuesOf(x), c.positions, c.theta, c.B, c.T, c.H, c.Dh)), ROPE_TOL, 'rope');
      // In place gives the same bits.
      const y = tensor((x.host as Float32Array).slice(), shape);
      assert.is(ops.ropeSync(y, pos, c.theta, { ...on(b), out: y }), y);
      sameBits(bits(y), bits(out), 'rope in place');
    },
  });
}

// ---- cacheWrite ------------------------------------------------------------------------------

const CACHE_CASES: { name: string; B: number; Hkv: number; Tmax: number; T: number; Dh: number; start: number[]; count: number[] }[] = [
  { name: 'prefill', B: 1, Hkv: 2, Tmax: 6, T: 4, Dh: 3, start: [0], count: [4] },
  { name: 'ragged decode with a count 0 row', B: 3, Hkv: 2, Tmax: 8, T: 2, Dh: 5, start: [7, 3, 0], count: [1, 2, 0] },
  { name: 'fills to Tmax', B: 2, Hkv: 1, Tmax: 5, T: 5, Dh: 4, start: [0, 2], count: [5, 3] },
];
for (const c of CACHE_CASES) {
  for (const dtype of FLOAT_DTYPES) {
    add({
      name: `cacheWrite ${dtype} ${c.name} writes the rows transposed to head-major and leaves the rest`,
      run(b) {
        const cacheShape = [c.B, c.Hkv, c.Tmax, c.Dh];
        const before = uniform(rng(c.Tmax), numel(cacheShape), 5);
        const src = randomTensor(c.T + 50, [c.B, c.T, c.Hkv, c.Dh], 5);
        const cache = tensor(before, cacheShape, dtype);
        const expectedValues = ref.cacheWrite(valuesOf(cache), valuesOf(src), c.start, c.count, c.B, c.Hkv, c.Tmax, c.T, c.Dh);
        // f16/bf16: the store rounds f32 to nearest even, as tensor() does.
        const expected = bits(tensor(Float32Array.from(expectedValues), cacheShape, dtype));
        ops.cacheWriteSync(cache, src, c.start, c.count, on(b));
        sameBits(bits(cache), expected, 'cache');
      },
    });
  }
}

// ---- attention ----------------------------------------------------------------------------

interface AttnCase {
  name: string;
  B: number; Tq: number; Tk: number; Hq: number; Hkv: number; Dh: number;
  causal?: boolean; qLen?: number[]; kvLen?: number[]; scale?: number; probRows?: number[];
  big?: boolean;
}
const ATTN_CASES: AttnCase[] = [
  { name: 'prefill causal', B: 1, Tq: 5, Tk: 5, Hq: 2, Hkv: 2, Dh: 8, probRows: [0, 4] },
  { name: 'GQA (2 query heads per kv head) with probRows', B: 2, Tq: 6, Tk: 6, Hq: 4, Hkv: 2, Dh: 8, probRows: [5, 0, 3] },
  { name: 'GQA 3:1 causal with a cached prefix', B: 1, Tq: 3, Tk: 7, Hq: 3, Hkv: 1, Dh: 4, probRows: [2] },
  { name: 'ragged qLen/kvLen with padding rows', B: 3, Tq: 4, Tk: 7, Hq: 2, Hkv: 1, Dh: 8, qLen: [3, 1, 0], kvLen: [5, 7, 2], probRows: [0, 3] },
  { name: 'non-causal ragged kvLen', B: 2, Tq: 4, Tk: 6, Hq: 2, Hkv: 2, Dh: 6, causal: false, kvLen: [6, 4], probRows: [1] },
  { name: 'non-causal with fewer queries than keys, custom scale', B: 1, Tq: 2, Tk: 9, Hq: 4, Hkv: 4, Dh: 5, causal: false, scale: 0.7 },
  { name: 'decode (Tq=1) over a ragged cache', B: 2, Tq: 1, Tk: 9, Hq: 2, Hkv: 2, Dh: 8, kvLen: [9, 4], probRows: [0] },
  { name: 'decode GQA 4:1', B: 1, Tq: 1, Tk: 11, Hq: 8, Hkv: 2, Dh: 4 },
  { name: 'Dh=1 and a single key', B: 1, Tq: 1, Tk: 1, Hq: 1, Hkv: 1, Dh: 1, probRows: [0] },
  { name: 'big prefill (several query tiles and key blocks)', B: 1, Tq: 150, Tk: 150, Hq: 4, Hkv: 2, Dh: 64, probRows: [0, 77, 149], big: true },
  { name: 'big ragged causal with prefix, GQA 8:1', B: 2, Tq: 70, Tk: 300, Hq: 8, Hkv: 1, Dh: 32, qLen: [70, 13], kvLen: [300, 200], probRows: [12, 69], big: true },
  { name: 'big non-causal', B: 1, Tq: 64, Tk: 260, Hq: 2, Hkv: 2, Dh: 48, causal: false, big: true },
  { name: 'big decode', B: 1, Tq: 1, Tk: 1000, Hq: 4, Hkv: 4, Dh: 128, big: true },
];
for (const c of ATTN_CASES) {
  add({
    name: `attention ${c.name} (B=${c.B} Tq=${c.Tq} Tk=${c.Tk} Hq=${c.Hq} Hkv=${c.Hkv} Dh=${c.Dh}) matches exact softmax attention`,
    big: c.big,
    run(b) {
      const q = randomTensor(c.Tq * 3 + c.Dh, [c.B, c.Tq, c.Hq, c.Dh], 1.5);
      const k = randomTensor(c.Tk * 5 + c.Dh, [c.B, c.Hkv, c.Tk, c.Dh], 1.5);
      const v = randomTensor(c.Tk * 7 + 1, [c.B, c.Hkv, c.Tk, c.Dh]);
      const causal = c.causal ?? true;
      const qLen = c.qLen ?? new Array(c.B).fill(c.Tq);
      const kvLen = c.kvLen ?? new Array(c.B).fill(c.Tk);
      const scale = c.scale ?? 1 / Math.sqrt(c.Dh);
      const expected = ref.attention(valuesOf(q), valuesOf(k), valuesOf(v), c, { causal, qLen, kvLen, scale: Math.fround(scale), probRows: c.probRows ?? [] });
      const result = ops.attentionSync(q, k, v, { ...on(b), causal: c.causal, qLen: c.qLen, kvLen: c.kvLen, scale: c.scale, probRows: c.probRows });
      assert.equal(result.out.shape, [c.B, c.Tq, c.Hq, c.Dh], 'out shape');
      within(normErr(valuesOf(result.out), expected.out), ATTN_TOL, 'out');
      if (c.probRows) {
        assert.equal(result.probs?.shape, [c.B, c.Hq, c.probRows.length, c.Tk], 'probs shape');
        within(normErr(valuesOf(result.probs!), expected.probs), ATTN_TOL, 'probs');
      } else {
        assert.is(result.probs, undefined, 'no probs without probRows');
      }
    },
  });
}

add({
  name: 'attention padding rows are exactly zero (out and probs) and rows sum to 1',
  run(b) {
    const q = randomTensor(1, [2, 3, 2, 4]), k = randomTensor(2, [2, 1, 5, 4]), v = randomTensor(3, [2, 1, 5, 4]);
    const out = zeros([2, 3, 2, 4]).host.fill(7);
    const given = tensor(out, [2, 3, 2, 4]);
    const r = ops.attentionSync(q, k, v, { ...on(b), qLen: [3, 1], kvLen: [5, 2], probRows: [0, 2], out: given });
    assert.is(r.out, given, 'returns the given out');
    const o = r.out.host as Float32Array;
    for (let i = 1; i < 3; i++) for (let e = 0; e < 8; e++) assert.is(o[(3 + i) * 8 + e], 0, `row b=1 i=${i} is zero`);
    const p = r.probs!.host as Float32Array; // [2,2,2,5]
    for (let h = 0; h < 2; h++) {
      const row = (bb: number, rr: number) => Array.from(p.subarray(((bb * 2 + h) * 2 + rr) * 5, ((bb * 2 + h) * 2 + rr + 1) * 5));
      assert.equal(row(1, 1), [0, 0, 0, 0, 0], 'prob row 2 of batch row 1 (a padding row)');
      assert.equal(row(1, 0).slice(2), [0, 0, 0], 'keys past kvLen');
      assert.equal(row(0, 0).slice(3), [0, 0], 'causal: query 0 of a 3-query, 5-key row sees keys 0..2');
      assert.ok(Math.abs(row(0, 1).reduce((s, x) => s + x, 0) - 1) < 1e-6, 'probabilities sum to 1');
    }
  },
});

add({
  name: 'attention async equals sync (bits)',
  run: async (b) => {
    const q = randomTensor(4, [1, 5, 2, 8]), k = randomTensor(5, [1, 2, 5, 8]), v = randomTensor(6, [1, 2, 5, 8]);
    const s = ops.attentionSync(q, k, v, { ...on(b), probRows: [1] });
    const a = await ops.attention(q, k, v, { ...on(b), probRows: [1] });
    sameBits(bits(a.out), bits(s.out), 'out');
    sameBits(bits(a.probs!), bits(s.probs!), 'probs');
  },
});

// The CPU packs K and V once per run of query tiles of a (b, kv head), the
// runs' length set by the thread count: long prompts give several tiles per
// run, each tile stopping at its own last key inside blocks packed for the
// run's last row. Same bits on 1 and 2 threads, and the exact reference.
const PACKED_CASES: AttnCase[] = [
  { name: 'causal, 16 tiles per head', B: 1, Tq: 1500, Tk: 1500, Hq: 2, Hkv: 2, Dh: 24 },
  { name: 'GQA 4:1 ragged with a prefix', B: 2, Tq: 400, Tk: 700, Hq: 4, Hkv: 1, Dh: 40, qLen: [400, 250], kvLen: [700, 300], probRows: [3, 399] },
];
for (const c of PACKED_CASES) {
  add({
    name: `attention ${c.name}, runs of tiles sharing packed K/V (B=${c.B} Tq=${c.Tq} Tk=${c.Tk} Hq=${c.Hq} Hkv=${c.Hkv} Dh=${c.Dh}): exact on 1 and 2 threads, same bits`,
    big: true,
    run(b) {
      const q = randomTensor(c.Tq + 11, [c.B, c.Tq, c.Hq, c.Dh], 3);
      const k = randomTensor(c.Tk + 12, [c.B, c.Hkv, c.Tk, c.Dh], 3);
      const v = randomTensor(c.Tk + 13, [c.B, c.Hkv, c.Tk, c.Dh]);
      const qLen = c.qLen ?? new Array(c.B).fill(c.Tq);
      const kvLen = c.kvLen ?? new Array(c.B).fill(c.Tk);
      const expected = ref.attention(valuesOf(q), valuesOf(k), valuesOf(v), c, { causal: true, qLen, kvLen, scale: Math.fround(1 / Math.sqrt(c.Dh)), probRows: c.probRows ?? [] });
      const threads = info().threads;
      try {
        const results = [1, 2].map((n) => {
          setNumThreads(n);
          return ops.attentionSync(q, k, v, { ...on(b), qLen: c.qLen, kvLen: c.kvLen, probRows: c.probRows });
        });
        for (const [n, r] of results.entries()) {
          within(normErr(valuesOf(r.out), expected.out), ATTN_TOL, `out on ${n + 1} thread(s)`);
          if (c.probRows) within(normErr(valuesOf(r.probs!), expected.probs), ATTN_TOL, `probs on ${n + 1} thread(s)`);
        }
        sameBits(bits(results[1]!.out), bits(results[0]!.out), 'out, 2 threads against 1');
      } finally {
        setNumThreads(threads);
      }
    },
  });
}

// ---- activations, add, softmax, embedding ---------------------------------------------------

for (const kind of ['erf', 'tanh', 'quick'] as GeluKind[]) {
  add({
    name: `gelu ${kind} matches the reference and runs in place`,
    run(b) {
      for (const shape of [[0], [5], [3, 37], [2, 2, 65]]) {
        const x = randomTensor(numel(shape) + 1, shape, 4);
        const out = ops.geluSync(x, kind, on(b));
        assert.equal(out.shape, shape);
        const expected = Float64Array.from(valuesOf(x), (v) => ref.gelu(v, kind));
        within(normErr(valuesOf(out), expected), ELEM_TOL, `gelu ${kind} [${shape}]`);
        ops.geluSync(x, kind, { ...on(b), out: x });
        sameBits(bits(x), bits(out), 'in place');
      }
    },
  });
}

add({
  name: 'siluMul matches silu(gate)·up (also in place into gate)',
  run(b) {
    const gate = randomTensor(9, [4, 33], 6), up = randomTensor(10, [4, 33], 2);
    const out = ops.siluMulSync(gate, up, on(b));
    const g = valuesOf(gate), u = valuesOf(up);
    within(normErr(valuesOf(out), Float64Array.from(g, (v, i) => ref.siluMul(v, u[i]!))), ELEM_TOL, 'siluMul');
    ops.siluMulSync(gate, up, { ...on(b), out: gate });
    sameBits(bits(gate), bits(out), 'in place');
  },
});

add({
  name: 'add broadcasts a trailing shape (position embeddings, bias, equal shape, scalar) exactly, also in place',
  run(b) {
    const a = randomTensor(11, [2, 3, 4]);
    for (const shape of [[2, 3, 4], [3, 4], [4], []]) {
      const other = randomTensor(12 + shape.length, shape);
      const out = ops.addSync(a, other, on(b));
      assert.equal(out.shape, [2, 3, 4]);
      sameBits(Array.from(valuesOf(out)), Array.from(ref.add(valuesOf(a), valuesOf(other))), `b [${shape}]`);
    }
    const bias = randomTensor(13, [4]);
    const expected = Array.from(ref.add(valuesOf(a), valuesOf(bias)));
    assert.is(ops.addSync(a, bias, { ...on(b), out: a }), a);
    sameBits(Array.from(valuesOf(a)), expected, 'in place');
  },
});

for (const log of [false, true]) {
  add({
    name: `softmax${log ? ' (log)' : ''} over the last dim matches the reference`,
    run(b) {
      for (const shape of [[1], [3, 7], [2, 2, 100], [2, 1000]]) {
        const N = shape[shape.length - 1]!;
        const x = randomTensor(N, shape, 20);
        const out = ops.softmaxSync(x, { ...on(b), log });
        within(normErr(valuesOf(out), ref.softmax(valuesOf(x), numel(shape) / N, N, log)), SOFTMAX_TOL, `[${shape}]`);
        ops.softmaxSync(x, { ...on(b), log, out: x });
        sameBits(bits(x), bits(out), 'in place');
      }
    },
  });
}

for (const dtype of FLOAT_DTYPES) {
  add({
    name: `embedding ${dtype} table widens the rows exactly`,
    run(b) {
      const table = randomTensor(14, [10, 6], 3, dtype);
      for (const [ids, shape] of [[[3, 0, 9, 3], [4]], [[1, 2, 3, 4, 5, 9], [2, 3]], [[], [0]]] as [number[], number[]][]) {
        const out = ops.embeddingSync(table, tensor(Int32Array.from(ids), shape), on(b));
        assert.equal(out.shape, [...shape, 6]);
        sameBits(Array.from(valuesOf(out)), Array.from(ref.embedding(valuesOf(table), ids, 6)), `ids [${shape}]`);
      }
    },
  });
}

add({
  name: 'transformer ops: async equals sync and out is reused',
  run: async (b) => {
    const x = randomTensor(15, [3, 16]);
    const w = randomTensor(16, [16]);
    const out = zeros([3, 16]);
    assert.is(await ops.rmsNorm(x, w, 1e-5, { ...on(b), out }), out);
    sameBits(bits(out), bits(ops.rmsNormSync(x, w, 1e-5, on(b))), 'rmsNorm');
    const W = randomTensor(17, [5, 16], 1, 'bf16');
    sameBits(bits(await ops.linear(x, W, null, on(b))), bits(ops.linearSync(x, W, null, on(b))), 'linear');
    sameBits(bits(await ops.softmax(x, on(b))), bits(ops.softmaxSync(x, on(b))), 'softmax');
    const cache = zeros([1, 2, 4, 3]);
    await ops.cacheWrite(cache, randomTensor(18, [1, 2, 2, 3]), [1], [2], on(b));
    assert.ok(valuesOf(cache).some((v) => v !== 0), 'cacheWrite (async) wrote');
  },
});

// ---- data-dependent errors: the same text on every backend ----------------------------------

add({
  name: 'rope negative positions and embedding ids out of range fail with the same message, writing nothing',
  run: async (b) => {
    const x = randomTensor(19, [2, 2, 1, 4]);
    const out = zeros([2, 2, 1, 4]);
    const e1 = await caught(() => ops.ropeSync(x, tensor(Int32Array.of(0, 1, 2, -3), [2, 2]), 10000, { ...on(b), out }));
    assert.is(e1.code, 'ERR_GRIP_RANGE');
    assert.is(e1.message, 'expected positions >= 0 for positions but received -3 at [1, 1]');
    assert.ok(valuesOf(out).every((v) => v === 0), 'rope wrote nothing');
    const table = randomTensor(20, [10, 2], 1, 'bf16');
    const e2 = await caught(() => ops.embeddingSync(table, tensor(Int32Array.of(0, 1, 2, 3, 10, -1), [2, 3]), on(b)));
    assert.is(e2.code, 'ERR_GRIP_RANGE');
    assert.is(e2.message, 'expected ids in [0, 10) for ids but received 10 at [1, 1]');
    const e3 = await caught(() => ops.embedding(table, tensor(Int32Array.of(-1), [1]), on(b)));
    assert.is(e3.message, 'expected ids in [0, 10) for ids but received -1 at [0]');
  },
});

// ---- registration -----------------------------------------------------------------------------

const test = suite('transformer');
reportSkips('transformer.test.ts');
for (const run of BACKENDS) {
  for (const c of cases) {
    if (c.big && run.backend === 'emu') continue; // the emulator is too slow for these shapes
    const title = `${run.name}: ${c.name}`;
    if (run.skip) test.skip(title, () => {});
    else test(title, () => c.run(run));
  }
}
test.run();
