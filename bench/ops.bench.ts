// ops.bench.ts — every pruning op and the transformer ops (linear, attention,
// rmsNorm) at LLaVA-1.5-7B shapes (N=576 visual
// tokens, D=4096, scorer H=256, R=64, K=144 kept; KV cache 32 heads x 128
// dims x 600 tokens) and at small shapes, each beside a baseline measured in
// the same run: the plain GEMM the scorer contains (its floor), the
// plain-TypeScript references of test/ref (what a JS user would write),
// and TypedArray copies of the same bytes (memcpy) for the data movers.
// Results go into preallocated tensors ({ out }), as in a serving loop, so
// the figures measure the ops rather than fresh-page faults.
// Usage: npm run bench [-- --quick] [-- --only WORD]  (WORD picks the tables whose title contains it)
import { CDPrunerPruner, cosineSimilarities, DivPrunePruner, greedyKeep, info, ops, scorerShapes, setBackend, tensor, VisionZipMergePruner, zeros, type PruneContext, type ScorerParamName, type ScorerParams, type Tensor } from '../lib/index.ts';
import * as ref from '../test/ref/ops.ts';
import { scoreTokens as scoreRef, type RefParams } from '../test/ref/scorer.ts';
import { runTable, writeResults, type MeasuredRow, type Row } from './harness.ts';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

setBackend('cpu');
let seed = 1;
const random = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648) * 2 - 1;
const floats = (n: number, scale = 1) => Float32Array.from({ length: n }, () => random() * scale);

function scorer(D: number, H: number, R: number): ScorerParams {
  const shapes = scorerShapes(D, H, R);
  const param = (name: ScorerParamName, scale: number) => tensor(floats(shapes[name].shape.reduce((a, b) => a * b, 1), scale), shapes[name].shape);
  return {
    lnWeight: param('lnWeight', 1), lnBias: param('lnBias', 0.1), w1: param('w1', 1 / Math.sqrt(D)), b1: param('b1', 0.1),
    filmW: param('filmW', 0.1), filmB: param('filmB', 0.1), w2: param('w2', 1 / Math.sqrt(H)), b2: tensor([0], shapes.b2.shape),
    wq: param('wq', 1 / Math.sqrt(D)), wk: param('wk', 1 / Math.sqrt(D)),
  };
}

const allocLike = (t: Tensor) => (t.dtype === 'f32' ? new Float32Array(t.size) : new Uint16Array(t.size));

function refParams(p: ScorerParams): RefParams {
  return Object.fromEntries(Object.entries(p).map(([k, t]) => [k, Float64Array.from((t as Tensor).host as Float32Array)])) as RefParams;
}

/** The JS way to gather rows: one TypedArray.set (a memcpy) per kept row. */
function rowCopies(src: Float32Array | Uint16Array, dst: Float32Array | Uint16Array, rows: Int32Array, rowLength: number): () => void {
  return () => {
    for (let j = 0; j < rows.length; j++) {
      const r = rows[j]!;
      dst.set(src.subarray(r * rowLength, (r + 1) * rowLength) as never, j * rowLength);
    }
  };
}

const i = info();
console.log(`grip-vlm ${i.version} · backend cpu · simd ${i.simd} · threads ${i.threads} · node ${process.version}`);

// ---- GEMM against OpenBLAS (numpy), same shapes, same thread count ----------------------
const gemmShapes: [number, number, number, boolean][] = [[576, 4096, 4096, false], [576, 256, 4096, false], [576, 4096, 256, true]];
function numpySeconds(): number[] | null {
  // OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE (set on some machines for old
  // OpenBLAS builds) slow a current one down: unset for this run only.
  const env: NodeJS.ProcessEnv = { ...process.env, OPENBLAS_NUM_THREADS: String(i.threads) };
  delete env.OPENBLAS_CORETYPE;
  delete env.OPENBLAS_L2_SIZE;
  const run = spawnSync('python3', [join(dirname(fileURLToPath(import.meta.url)), 'gemm_numpy.py'), '--seconds',
    ...gemmShapes.map(([m, n, k, t]) => `${m},${n},${k},${t ? 1 : 0}`)], { encoding: 'utf8', env });
  if (run.status !== 0) return null;
  return run.stdout.trim().split(' ').map(Number);
}
const onlyAt = process.argv.indexOf('--only');
const only = onlyAt >= 0 ? process.argv[onlyAt + 1]?.toLowerCase() : undefined;
const wanted = (title: string) => only === undefined || title.toLowerCase().includes(only);
const gemmRows: Row[] = [];
const numpy = wanted('GEMM') ? numpySeconds() : null;
if (numpy === null) { if (wanted('GEMM')) console.log('(python3 with numpy not found: the GEMM table is skipped)'); }
else {
  gemmShapes.forEach(([M, N, K, transB], s) => {
    const a = tensor(floats(M * K), [M, K]);
    const b = tensor(floats(K * N), transB ? [N, K] : [K, N]);
    const out = zeros([M, N]);
    gemmRows.push({
      op: 'matmul (f32)', shape: `${M}x${N}x${K}${transB ? ' transB' : ''}`, work: { flop: 2 * M * N * K },
      run: () => ops.matmulSync(a, b, { transB, out }),
      baseline: { name: `numpy/OpenBLAS, ${i.threads} thread${i.threads > 1 ? 's' : ''}`, ns: numpy[s]! * 1e9 },
    });
  });
}

// ---- scorer ---------------------------------------------------------------------------
const scoreRows: Row[] = [];
{
  const [N, D, H, R] = [576, 4096, 256, 64];
  const params = scorer(D, H, R);
  for (const B of [1, 32]) {
    for (const dtype of ['f32', 'bf16'] as const) {
      if (B === 32 && dtype === 'bf16') continue;
      const x = tensor(floats(B * N * D), [B, N, D], dtype);
      const query = tensor(floats(B * D), [B, D]);
      const hidden = tensor(floats(B * N * D), [B * N, D]);
      const z = zeros([B * N, H]);
      const scores = zeros([B, N]);
      scoreRows.push({
        op: `scoreTokens (${dtype})`, shape: `B=${B} N=${N} D=${D} H=${H} R=${R}`,
        work: { flop: 2 * B * N * D * H },
        run: () => ops.scoreTokensSync(x, query, 0.25, params, { out: scores }),
        baseline: { name: `GEMM [${B * N},${D}]x[${D},${H}]`, run: () => ops.matmulSync(hidden, params.w1, { out: z }) },
      });
    }
  }
  const B = 1;
  const x = tensor(floats(B * N * D), [B, N, D]);
  const query = tensor(floats(B * D), [B, D]);
  const dScores = tensor(floats(B * N), [B, N]);
  const hidden = tensor(floats(N * D), [N, D]);
  const wideT = tensor(floats(H * D), [H, D]);
  const tall = tensor(floats(N * H), [N, H]);
  const [z1, z2] = [zeros([N, H]), zeros([N, D])];
  scoreRows.push({
    op: 'scoreTokensBackward', shape: `B=1 N=${N} D=${D} H=${H} R=${R}`,
    work: { flop: 3 * 2 * N * D * H },
    run: () => ops.scoreTokensBackwardSync(x, query, 0.25, params, dScores),
    baseline: {
      name: '3 GEMMs of [N,D]x[D,H] size',
      run: () => { ops.matmulSync(hidden, params.w1, { out: z1 }); ops.matmulSync(tall, wideT, { out: z2 }); ops.matmulSync(hidden, params.w1, { out: z1 }); },
    },
  });
  // Small shape against the plain-TS reference (float64 loops).
  const [n, d, h, r] = [64, 64, 16, 8];
  const small = scorer(d, h, r);
  const xs = tensor(floats(n * d), [1, n, d]);
  const qs = tensor(floats(d), [1, d]);
  const smallRef = refParams(small);
  scoreRows.push({
    op: 'scoreTokens (f32)', shape: `B=1 N=${n} D=${d} H=${h} R=${r}`,
    work: { flop: 2 * n * d * h },
    run: () => ops.scoreTokensSync(xs, qs, 0.25, small),
    baseline: { name: 'plain TS reference', run: () => scoreRef(xs.host as Float32Array, qs.host as Float32Array, [0.25], 1, n, smallRef) },
  });
}

// ---- selection and sampling ------------------------------------------------------------
const selectRows: Row[] = [];
{
  const N = 576, K = 144;
  for (const B of [1, 32]) {
    const scores = tensor(floats(B * N), [B, N]);
    const ks = Array(B).fill(K);
    selectRows.push({
      op: 'topk', shape: `B=${B} N=${N} k=${K}`, work: { bytes: B * N * 4 },
      run: () => ops.topkSync(scores, K),
      baseline: { name: 'plain TS (sort)', run: () => ref.topk(scores.host as Float32Array, B, N, ks) },
    });
  }
  const G = 8;
  const logits = tensor(floats(N, 3), [1, N]);
  const sample = ops.gumbelTopkSync(logits, K, { samples: G, seed: 7 });
  const dLogProb = tensor(floats(G), [1, G]);
  selectRows.push({
    op: 'gumbelTopk', shape: `B=1 G=${G} N=${N} k=${K}`, work: {},
    run: () => ops.gumbelTopkSync(logits, K, { samples: G, seed: 7 }),
    baseline: { name: 'plain TS reference', run: () => ref.gumbelTopk(logits.host as Float32Array, 1, N, K, G, 7n) },
  });
  selectRows.push({
    op: 'plackettLuceLogProb', shape: `B=1 G=${G} N=${N} k=${K}`, work: {},
    run: () => ops.plackettLuceLogProbSync(logits, sample.indices),
    baseline: { name: 'plain TS reference', run: () => ref.plLogProb(logits.host as Float32Array, sample.indices.host as Int32Array, 1, N, G, K) },
  });
  selectRows.push({
    op: 'plackettLuceBackward', shape: `B=1 G=${G} N=${N} k=${K}`, work: {},
    run: () => ops.plackettLuceBackwardSync(logits, sample.indices, dLogProb),
    baseline: { name: 'plain TS reference', run: () => ref.plBackward(logits.host as Float32Array, sample.indices.host as Int32Array, dLogProb.host as Float32Array, 1, N, G, K) },
  });
}

// GRIP's keep-set with the redundancy penalty (cosines of the states + the greedy walk), against
// top-k of the same scores (the λ = 0 keep-set): what the penalty costs per request, at the
// testbed's shapes and at LLaVA-1.5-7B's (N = 576 visual tokens of width 4096, pruned in the LLM).
for (const [N, D, K] of [[144, 128, 16], [576, 4096, 64]] as const) {
  const states = tensor(floats(N * D), [1, N, D]);
  const scores = tensor(floats(N, 3), [1, N]);
  selectRows.push({
    op: 'redundancy keep-set (λ = 10)', shape: `N=${N} D=${D} k=${K}`, work: { flop: 2 * N * N * D },
    run: async () => greedyKeep({ scores: scores.host as Float32Array, similarity: (await cosineSimilarities(states, 'cpu'))[0]!, redundancy: 10 }, K),
    baseline: { name: 'topk of the same scores', run: () => ops.topkSync(scores, K) },
  });
}

// The training-free baselines' selection per request (CDPruner's conditional DPP, greedy MAP
// O(N k^2) after the O(N^2 D) kernel; DivPrune's max-min diversity; VisionZip's selection and
// merge, O(N k_c D)) beside top-k of scores, at
// LLaVA-1.5-7B (576 tokens -> 64) and LLaVA-NeXT-7B (2880 -> 320) shapes; the share of the
// pruned prefill each saves is printed after the table (issue: it must stay under 5%).
const baselineCost: { op: string; N: number; D: number; K: number; run: () => Promise<unknown> }[] = [];
for (const [N, D, K] of [[576, 4096, 64], [2880, 4096, 320]] as const) {
  const ctx: PruneContext = {
    visual: tensor(floats(N * D), [1, N, D]), query: tensor(floats(D), [1, D]),
    keepRatio: Float32Array.from([K / N]), numKeep: Int32Array.from([K]), grid: { rows: 1, cols: N }, backend: 'cpu',
  };
  const scores = tensor(floats(N, 3), [1, N]);
  const withCls: PruneContext = { ...ctx, attention: floats(N) };
  for (const pruner of [new CDPrunerPruner(), new DivPrunePruner(), new VisionZipMergePruner()]) {
    // VisionZip: the selection and the merge of the leftovers into the contextual tokens.
    const run = pruner instanceof VisionZipMergePruner ? async () => pruner.merge(withCls, await pruner.select(withCls)) : () => pruner.select(ctx);
    baselineCost.push({ op: pruner.name, N, D, K, run });
    selectRows.push({
      op: `${pruner.name} select`, shape: `N=${N} D=${D} k=${K}`, work: { flop: 2 * N * N * D },
      run, baseline: { name: 'topk of scores', run: () => ops.topkSync(scores, K) },
    });
  }
}

// ---- data movement ----------------------------------------------------------------------
const moveRows: Row[] = [];
{
  const [N, D, K] = [576, 4096, 144];
  for (const dtype of ['f32', 'bf16'] as const) {
    const x = tensor(floats(N * D), [1, N, D], dtype);
    const keep = ops.topkSync(tensor(floats(N), [1, N]), K).indices;
    const bytes = K * D * (dtype === 'f32' ? 4 : 2);
    const out = zeros([1, K, D], dtype);
    moveRows.push({
      op: `gatherRows (${dtype})`, shape: `B=1 N=${N} D=${D} K=${K}`, work: { bytes: 2 * bytes },
      run: () => ops.gatherRowsSync(x, keep, { out }),
      baseline: { name: 'TypedArray.set per row', run: rowCopies(x.host as Float32Array, allocLike(out), keep.host as Int32Array, D) },
    });
  }
  const [Hkv, T, Dh] = [32, 600, 128];
  const keepCount = 168; // 144 visual tokens + 24 text tokens
  const keepIdx = Int32Array.from({ length: keepCount }, (_, j) => Math.floor((j * T) / keepCount));
  const keep = tensor(keepIdx, [1, keepCount]);
  const cache = tensor(floats(Hkv * T * Dh), [1, Hkv, T, Dh], 'f16');
  const bytes = Hkv * keepCount * Dh * 2;
  const compacted = zeros([1, Hkv, keepCount, Dh], 'f16');
  // Baseline: the same copies head by head, kept row by kept row, in JS.
  const headSrc = cache.host as Uint16Array, headDst = new Uint16Array(Hkv * keepCount * Dh);
  const headRowCopies = () => {
    for (let h = 0; h < Hkv; h++) rowCopies(headSrc.subarray(h * T * Dh), headDst.subarray(h * keepCount * Dh), keepIdx, Dh)();
  };
  moveRows.push({
    op: 'compactKV (f16)', shape: `B=1 Hkv=${Hkv} T=${T} Dh=${Dh} K=${keepCount}`, work: { bytes: 2 * bytes },
    run: () => ops.compactKVSync(cache, keep, { out: compacted }),
    baseline: { name: 'TypedArray.set per row', run: headRowCopies },
  });
  moveRows.push({
    op: 'compactKVInPlace (f16)', shape: `B=1 Hkv=${Hkv} T=${T} Dh=${Dh} K=${keepCount}`, work: { bytes: 2 * bytes },
    run: () => ops.compactKVInPlaceSync(cache, keep),
    baseline: { name: 'TypedArray.set per row', run: headRowCopies },
  });
  // AdamW over the scorer's parameter count at 7B shapes.
  const n = 4096 * 256 + 2 * 4096 * 64 + 2 * 4096 + 16 * 512 + 512 + 2 * 256 + 1;
  const [p, g, m, v] = [floats(n), floats(n), floats(n, 0.01), Float32Array.from(floats(n), Math.abs)];
  const [pt, gt, mt, vt] = [tensor(p, [n]), tensor(g, [n]), tensor(m, [n]), tensor(v, [n])];
  const o = { step: 10, lr: 1e-4, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 };
  moveRows.push({
    op: 'adamw', shape: `n=${n}`, work: { bytes: 28 * n },
    run: () => ops.adamwSync(pt, gt, mt, vt, o),
    baseline: { name: 'plain TS reference', run: () => ref.adamw(p, g, m, v, o) },
  });
}

// ---- transformer ops (LLaVA-1.5-7B: D=4096, 32 heads x 128, prefill of 640 tokens) ------
const transformerRows: Row[] = [];
{
  const [T, D, Hq, Dh] = [640, 4096, 32, 128];
  // linear with bf16 weights (bias in the GEMM's store) vs the f32 matmul of the same shape.
  const x = tensor(floats(T * D), [T, D]);
  const wBf16 = tensor(floats(D * D, 1 / 64), [D, D], 'bf16');
  const wF32 = tensor(floats(D * D, 1 / 64), [D, D]);
  const bias = tensor(floats(D), [D]);
  const [y1, y2] = [zeros([T, D]), zeros([T, D])];
  transformerRows.push({
    op: 'linear (bf16 W, bias)', shape: `${T}x${D}x${D}`, work: { flop: 2 * T * D * D },
    run: () => ops.linearSync(x, wBf16, bias, { out: y1 }),
    baseline: { name: 'matmul f32 W, same shape', run: () => ops.matmulSync(x, wF32, { transB: true, out: y2 }) },
  });
  // Causal prefill attention vs a GEMM of the same FLOP count (4·Hq·Dh·T(T+1)/2 ≈ 2·T·T·4096).
  const q = tensor(floats(T * Hq * Dh), [1, T, Hq, Dh]);
  const k = tensor(floats(Hq * T * Dh), [1, Hq, T, Dh]);
  const v = tensor(floats(Hq * T * Dh), [1, Hq, T, Dh]);
  const attnOut = zeros([1, T, Hq, Dh]);
  const a = tensor(floats(T * D), [T, D]), b = tensor(floats(D * T), [D, T]), c = zeros([T, T]);
  transformerRows.push({
    op: 'attention prefill (causal)', shape: `Tq=Tk=${T} Hq=${Hq} Dh=${Dh}`, work: { flop: 4 * Hq * Dh * (T * (T + 1)) / 2 },
    run: () => ops.attentionSync(q, k, v, { out: attnOut }),
    baseline: { name: `matmul ${T}x${T}x${D} (same FLOPs)`, run: () => ops.matmulSync(a, b, { out: c }) },
  });
  // Decode: one query against 1000 cached keys per head: K and V (32 MB) read once.
  const Tk = 1000;
  const q1 = tensor(floats(Hq * Dh), [1, 1, Hq, Dh]);
  const kc = tensor(floats(Hq * Tk * Dh), [1, Hq, Tk, Dh]);
  const vc = tensor(floats(Hq * Tk * Dh), [1, Hq, Tk, Dh]);
  const decOut = zeros([1, 1, Hq, Dh]);
  const gv = tensor(floats(D), [1, D]), gm = tensor(floats(D * 2 * Tk), [D, 2 * Tk]), go = zeros([1, 2 * Tk]);
  transformerRows.push({
    op: 'attention decode', shape: `Tq=1 Tk=${Tk} Hq=${Hq} Dh=${Dh}`, work: { flop: 4 * Hq * Dh * Tk },
    run: () => ops.attentionSync(q1, kc, vc, { out: decOut }),
    baseline: { name: `matmul 1x${2 * Tk}x${D} (same FLOPs and bytes)`, run: () => ops.matmulSync(gv, gm, { out: go }) },
  });
  // rmsNorm vs the plain TypeScript loop.
  const hidden = tensor(floats(T * D, 3), [T, D]);
  const gamma = tensor(floats(D), [D]);
  const normed = zeros([T, D]);
  const [hx, gw, jsOut] = [hidden.host as Float32Array, gamma.host as Float32Array, new Float32Array(T * D)];
  const rmsNormTs = () => {
    for (let r = 0; r < T; r++) {
      let ss = 0;
      for (let d = 0; d < D; d++) ss += hx[r * D + d]! * hx[r * D + d]!;
      const inv = 1 / Math.sqrt(ss / D + 1e-6);
      for (let d = 0; d < D; d++) jsOut[r * D + d] = hx[r * D + d]! * inv * gw[d]!;
    }
  };
  transformerRows.push({
    op: 'rmsNorm', shape: `${T}x${D}`, work: { bytes: 2 * T * D * 4 },
    run: () => ops.rmsNormSync(hidden, gamma, 1e-6, { out: normed }),
    baseline: { name: 'plain TS loop', run: rmsNormTs },
  });
}

const tables: [string, Row[]][] = [
  ['GEMM (the matmul op) against OpenBLAS', gemmRows],
  ['Transformer ops (LLaVA-7B shapes)', transformerRows],
  ['Scorer (fused LayerNorm + MLP + FiLM + query term)', scoreRows],
  ['Selection and sampling', selectRows],
  ['Gather, KV compaction, optimiser', moveRows],
];
const measured: MeasuredRow[] = [];
for (const [title, rows] of tables) if (rows.length && wanted(title)) measured.push(...(await runTable(title, rows)));

// What the baselines' selection costs against the prefill it saves at LLaVA-7B shapes: the
// saved prefill is estimated as 2 x 6.5e9 (the decoder's weights) x (N - k) FLOP at the GEMM
// rate measured here (attention's share ignored, so the estimate is low and the share high).
if (wanted('Selection')) {
  const [M, Kd] = [576, 4096];
  const a = tensor(floats(M * Kd), [M, Kd]), b = tensor(floats(Kd * Kd), [Kd, Kd]), out = zeros([M, Kd]);
  ops.matmulSync(a, b, { out });
  const t0 = performance.now();
  for (let r = 0; r < 3; r++) ops.matmulSync(a, b, { out });
  const gflops = (3 * 2 * M * Kd * Kd) / ((performance.now() - t0) * 1e6);
  console.log(`\n### Baseline selection against the prefill it saves (GEMM at ${gflops.toFixed(0)} GFLOP/s here)\n`);
  console.log('| pruner | N -> k | selection ms | saved prefill s (est.) | share |');
  console.log('|---|---|---|---|---|');
  for (const c of baselineCost) {
    const row = measured.find((m) => m.op === `${c.op} select` && m.shape === `N=${c.N} D=${c.D} k=${c.K}`);
    if (!row) continue;
    const savedS = (2 * 6.5e9 * (c.N - c.K)) / (gflops * 1e9);
    const share = row.ns / 1e9 / savedS;
    console.log(`| ${c.op} | ${c.N} -> ${c.K} | ${(row.ns / 1e6).toFixed(1)} | ${savedS.toFixed(1)} | ${(100 * share).toFixed(2)}% |`);
    measured.push({ table: 'Baseline selection against the prefill it saves', op: `${c.op} share of saved prefill`, shape: `N=${c.N} k=${c.K}`, ns: row.ns, baseline: 'estimated saved prefill', baselineNs: savedS * 1e9, ratio: share });
  }
}
writeResults('ops', measured);
