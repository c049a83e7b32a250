// prefill.bench.ts — the runtime's cost: (1) the Linear GEMMs of a LLaVA-7B
// decoder layer against numpy/OpenBLAS on the same shapes, (2) LLM prefill
// at 7B decoder shapes (random bf16 weights, a few layers) for the unpruned
// sequence and for pruned ones — the speed-up of pruning, measured against
// the unpruned prefill in the same run, with the share of the time spent in
// the attention op — at LLaVA-1.5 (576 visual tokens) and LLaVA-NeXT (2880)
// lengths, beside the CLIP-L/336 vision tower for LLaVA-NeXT's 5 tiles, and
// (3) the whole model (vision, projector, LLM) on the embedded checkpoint.
// Rows go to bench/results/prefill.json (prefill.quick.json with --quick).
// Usage: node --import tsx bench/prefill.bench.ts [--quick] [--layers N] [--rounds N]
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { info, ops, setBackend, tensor, zeros } from '../lib/index.ts';
import type { LlavaConfig, TextConfig } from '../lib/model/config.ts';
import { kernels, type Kernels } from '../lib/model/kernels.ts';
import { KVCache, runDecoder } from '../lib/model/llama.ts';
import { loadVLM } from '../lib/model/vlm.ts';
import { embeddedModelDir } from '../lib/demo.ts';
import { runVision } from '../lib/model/vision.ts';
import type { TextWeights, VisionWeights } from '../lib/model/weights.ts';
import { RandomPruner } from '../lib/prune/heuristics/random.ts';
import { runTable, writeResults, type MeasuredRow, type Row, seededFloats } from './harness.ts';

setBackend('cpu');
const quick = process.argv.includes('--quick');
const layersArg = process.argv.indexOf('--layers');
const numLayers = layersArg > 0 ? Number(process.argv[layersArg + 1]) : quick ? 1 : 2;
const roundsArg = process.argv.indexOf('--rounds');
const rounds = roundsArg > 0 ? Number(process.argv[roundsArg + 1]) : quick ? 3 : 5;
const here = dirname(fileURLToPath(import.meta.url));
const floats = seededFloats(1);
const i = info();
console.log(`grip-vlm ${i.version} · backend cpu · simd ${i.simd} · threads ${i.threads} · node ${process.version}`);

// LLaVA-1.5-7B's language model (Vicuna-7B).
const D = 4096, F = 11008, H = 32, Dh = 128, V = 32064;
const textTokens = 35; // "USER: <image>\n" + a question + " ASSISTANT:" with Llama's tokenizer
const N = 576;

// ---- (1) GEMM vs numpy --------------------------------------------------------------------
const S = textTokens + N;
const shapes: [string, number, number][] = [['q/k/v/o proj', D, D], ['gate/up proj', F, D], ['down proj', D, F]];
const numpy = (() => {
  const env: NodeJS.ProcessEnv = { ...process.env, OPENBLAS_NUM_THREADS: String(i.threads) };
  delete env.OPENBLAS_CORETYPE;
  delete env.OPENBLAS_L2_SIZE;
  const run = spawnSync('python3', [join(here, 'gemm_numpy.py'), '--seconds', ...shapes.map(([, n, k]) => `${S},${n},${k},1`)], { encoding: 'utf8', env });
  return run.status === 0 ? run.stdout.trim().split(' ').map(Number) : null;
})();
const gemmRows: MeasuredRow[] = [];
if (numpy === null) console.log('(python3 with numpy not found: the GEMM comparison is skipped)');
else {
  const rows: Row[] = [];
  shapes.forEach(([name, n, k], s) => {
    const x = tensor(floats(S * k), [S, k]);
    for (const dtype of ['f32', 'bf16'] as const) {
      const w = tensor(floats(n * k, 0.02), [n, k], dtype);
      const out = zeros([S, n]);
      rows.push({
        op: `linear ${name} (${dtype} weights)`, shape: `${S}x${n}x${k}`, work: { flop: 2 * S * n * k },
        run: () => ops.linearSync(x, w, null, { out }),
        baseline: { name: `numpy/OpenBLAS f32, ${i.threads} thread${i.threads > 1 ? 's' : ''}`, ns: numpy[s]! * 1e9 },
      });
    }
  });
  gemmRows.push(...(await runTable('Linear layers of LLaVA-7B (prefill of 611 tokens) vs OpenBLAS', rows)));
}

// ---- (2) prefill at 7B decoder shapes, LLaVA-1.5 and LLaVA-NeXT lengths -----------------------
// Each round times every configuration once, in alternating order (forwards, then backwards),
// so a burst of load from other processes on the shared cores hits all of them alike; the
// table reports the median over the rounds.
const config: TextConfig = {
  hiddenSize: D, numLayers, numHeads: H, numKvHeads: H, headDim: Dh, intermediateSize: F,
  rmsNormEps: 1e-5, ropeTheta: 10000, vocabSize: V, hiddenAct: 'silu', maxPositionEmbeddings: 4096, tieWordEmbeddings: false,
};
const bf16 = (rows: number, cols: number) => ({ weight: tensor(floats(rows * cols, 1 / Math.sqrt(cols)), [rows, cols], 'bf16'), bias: null });
const f32 = (n: number, value: number) => tensor(new Float32Array(n).fill(value), [n]);
const weights: TextWeights = {
  embed: tensor(new Uint16Array(1), [1, 1], 'bf16'), lmHead: tensor(new Uint16Array(1), [1, 1], 'bf16'), norm: f32(D, 1),
  layers: Array.from({ length: numLayers }, () => ({
    inputNorm: f32(D, 1), postNorm: f32(D, 1),
    q: bf16(D, D), k: bf16(D, D), v: bf16(D, D), o: bf16(D, D), gate: bf16(F, D), up: bf16(F, D), down: bf16(D, F),
  })),
};

/** The async kernels, each op's wall time added to `spent` under its name (ops are awaited one at a time). */
function timedKernels(spent: Map<string, number>): Kernels {
  const base = kernels('async') as unknown as Record<string, unknown>;
  const table: Record<string, unknown> = { ...base };
  for (const [name, op] of Object.entries(base)) {
    if (typeof op !== 'function' || name === 'yield') continue;
    table[name] = async (...args: unknown[]) => {
      const t0 = performance.now();
      try {
        return await (op as (...a: unknown[]) => Promise<unknown>)(...args);
      } finally {
        spent.set(name, (spent.get(name) ?? 0) + performance.now() - t0);
      }
    };
  }
  return table as unknown as Kernels;
}

interface Timing { ms: number; attentionMs: number }

async function prefill(tokens: number): Promise<Timing> {
  const x = tensor(floats(tokens * D), [1, tokens, D]);
  const positions = tensor(Int32Array.from({ length: tokens }, (_, p) => p), [1, tokens]);
  const cache = new KVCache(1, tokens, config, 'cpu');
  const spent = new Map<string, number>();
  const t0 = performance.now();
  await runDecoder(weights, config, x, positions, Int32Array.of(tokens), cache, { from: 0, to: numLayers }, { backend: 'cpu', k: timedKernels(spent) });
  return { ms: performance.now() - t0, attentionMs: spent.get('attention') ?? 0 };
}

// CLIP ViT-L/14 at 336 px, LLaVA's tower: 24 layers, of which 23 run (feature layer -2).
const clip = { hiddenSize: 1024, numLayers: 24, numHeads: 16, intermediateSize: 4096, patchSize: 14, imageSize: 336, numChannels: 3, hiddenAct: 'quick_gelu' as const, layerNormEps: 1e-5 };
const clipTokens = (clip.imageSize / clip.patchSize) ** 2 + 1; // 577 with CLS
const clipLayersRun = clip.numLayers - 1;
const visionLayers = numLayers; // timed, then scaled to clipLayersRun
const tiles = 5; // LLaVA-NeXT's largest layouts: the base image + 2x2 tiles
const visionConfig = { vision: clip, visionFeatureSelectStrategy: 'default' } as unknown as LlavaConfig;
const layerNorm = () => ({ weight: f32(clip.hiddenSize, 1), bias: f32(clip.hiddenSize, 0) });
const withBias = (rows: number, cols: number) => ({ ...bf16(rows, cols), bias: f32(rows, 0) });
const visionWeights: VisionWeights = {
  patch: bf16(clip.hiddenSize, clip.numChannels * clip.patchSize ** 2),
  tokenBias: tensor(floats(clipTokens * clip.hiddenSize, 0.02), [clipTokens, clip.hiddenSize]),
  preNorm: layerNorm(),
  layers: Array.from({ length: visionLayers }, () => ({
    norm1: layerNorm(), norm2: layerNorm(),
    q: withBias(1024, 1024), k: withBias(1024, 1024), v: withBias(1024, 1024), o: withBias(1024, 1024),
    fc1: withBias(clip.intermediateSize, 1024), fc2: withBias(1024, clip.intermediateSize),
  })),
};
const tilePixels = floats(tiles * clip.numChannels * clip.imageSize ** 2);

async function visionTower(): Promise<Timing> {
  const spent = new Map<string, number>();
  const t0 = performance.now();
  await runVision(visionWeights, visionConfig, tilePixels, tiles, { backend: 'cpu', k: timedKernels(spent) });
  return { ms: performance.now() - t0, attentionMs: spent.get('attention') ?? 0 };
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

/** Median of `rounds` alternating runs of each job. */
async function alternating(jobs: (() => Promise<Timing>)[]): Promise<Timing[]> {
  const samples: Timing[][] = jobs.map(() => []);
  for (let round = 0; round < rounds; round++) {
    const order = jobs.map((_, j) => j);
    if (round % 2) order.reverse();
    for (const j of order) samples[j]!.push(await jobs[j]!());
  }
  return samples.map((s) => ({ ms: median(s.map((t) => t.ms)), attentionMs: median(s.map((t) => t.attentionMs)) }));
}

/** Prefill rows with the attention op's share of each prefill, for results/prefill.json. */
interface PrefillRow extends MeasuredRow { attentionShare: number; rounds: number }
const prefillRows: PrefillRow[] = [];
const keepRatios = [1, 0.5, 0.25, 0.11];

async function prefillTable(model: string, numVisual: number, text: number, withVision: boolean): Promise<void> {
  const lengths = keepRatios.map((keepRatio) => text + Math.ceil(keepRatio * numVisual));
  const jobs = lengths.map((tokens) => () => prefill(tokens));
  if (withVision) jobs.push(visionTower);
  const timings = await alternating(jobs);
  const unpruned = timings[0]!;
  const title = `Prefill at ${model} shapes (${numLayers} of 32 decoder layers, bf16 weights, ${text} text + kept visual tokens; median of ${rounds} alternating rounds)`;
  console.log(`\n### ${title}\n`);
  console.log('| keep ratio | tokens | prefill (per layer) | tokens/s | baseline: unpruned | speed-up | ideal (token ratio) | attention share |');
  console.log('|---|---|---|---|---|---|---|---|');
  keepRatios.forEach((keepRatio, j) => {
    const t = timings[j]!, tokens = lengths[j]!;
    const share = t.attentionMs / t.ms;
    console.log(`| ${keepRatio} | ${tokens} | ${(t.ms / numLayers).toFixed(1)} ms | ${((tokens / t.ms) * 1000).toFixed(0)} | ${(unpruned.ms / numLayers).toFixed(1)} ms | ${(unpruned.ms / t.ms).toFixed(2)}x | ${(lengths[0]! / tokens).toFixed(2)}x | ${(100 * share).toFixed(1)}% |`);
    prefillRows.push({
      table: title, op: `prefill, keep ratio ${keepRatio}`, shape: `${tokens} tokens x ${numLayers} layers`, ns: (t.ms / numLayers) * 1e6,
      baseline: `unpruned prefill (${lengths[0]} tokens), per layer`, baselineNs: (unpruned.ms / numLayers) * 1e6, ratio: unpruned.ms / t.ms,
      attentionShare: share, rounds,
    });
  });
  console.log(`\nattention share: time in the attention op (QK^T, softmax, ·V) over the whole prefill; the rest is the 7 Linear layers (${(100 * (1 - unpruned.attentionMs / unpruned.ms)).toFixed(1)}% with norms, RoPE, cache writes, SiLU and adds, unpruned).`);
  if (!withVision) return;
  const vision = timings[keepRatios.length]!;
  const visionMs = (vision.ms / visionLayers) * clipLayersRun;
  const llmMs = (unpruned.ms / numLayers) * 32;
  console.log(`\n### Vision tower beside it: CLIP-L/336 on ${tiles} tiles (${clipTokens} tokens each, bf16 weights; ${visionLayers} of the ${clipLayersRun} layers that run timed, scaled by ${clipLayersRun}/${visionLayers})\n`);
  console.log('| stage | shape | time | share of vision + unpruned LLM prefill |');
  console.log('|---|---|---|---|');
  console.log(`| vision tower (not pruned) | ${tiles} x ${clipTokens} tokens x ${clipLayersRun} layers | ${(visionMs / 1000).toFixed(2)} s | ${((100 * visionMs) / (visionMs + llmMs)).toFixed(1)}% |`);
  console.log(`| LLM prefill, unpruned (32 layers, scaled) | ${lengths[0]} tokens | ${(llmMs / 1000).toFixed(2)} s | ${((100 * llmMs) / (visionMs + llmMs)).toFixed(1)}% |`);
  console.log(`| LLM prefill, keep 0.11 (32 layers, scaled) | ${lengths[3]} tokens | ${((timings[3]!.ms / numLayers) * 32 / 1000).toFixed(2)} s | |`);
  prefillRows.push({
    table: 'Vision tower beside the LLaVA-NeXT prefill', op: `vision tower (CLIP-L/336), ${tiles} tiles, timed on ${visionLayers} of ${clipLayersRun} layers and scaled`, shape: `${tiles}x${clipTokens} tokens x ${clipLayersRun} layers`,
    ns: visionMs * 1e6, baseline: `unpruned LLM prefill (${lengths[0]} tokens), 32 layers, timed on ${numLayers} and scaled`, baselineNs: llmMs * 1e6, ratio: llmMs / visionMs,
    attentionShare: vision.attentionMs / vision.ms, rounds,
  });
}

await prefillTable('LLaVA-1.5-7B', N, textTokens, false);
await prefillTable('LLaVA-NeXT-7B', 2880, 40, true); // 2880 = 5 crops x 576, the field's count; 40 text tokens
writeResults('prefill', [...gemmRows, ...prefillRows]);

// ---- (3) the whole model: the embedded testbed model (or the tiny test checkpoint) ------------
const embedded = embeddedModelDir();
const modelDir = existsSync(join(embedded, 'model.safetensors')) ? embedded : join(here, '..', 'test', 'fixtures', 'tiny-llava');
const model = await loadVLM(modelDir, { backend: 'cpu' });
if (model.config.modelType !== 'llava') throw new Error(`expected a LLaVA-1.5 checkpoint in ${modelDir} but received ${model.config.modelType}`);
const imageSize = model.config.vision.imageSize;
const pixelValues = tensor(floats(3 * imageSize ** 2), [3, imageSize, imageSize]);
const prompt = 'what color is the object in the top left ?';
console.log(`\n### Whole model: ${modelDir.split('/').slice(-2).join('/')} (${model.numImageTokens} visual tokens, LLM hidden ${model.config.text.hiddenSize}, ${model.config.text.numLayers} layers; ops on the calling thread)\n`);
console.log('| keep ratio | prefill tokens | vision | prefill | total | baseline: unpruned total | speed-up |');
console.log('|---|---|---|---|---|---|---|');
async function whole(keepRatio: number) {
  const best = { vision: Infinity, prefill: Infinity, total: Infinity, tokens: 0 };
  for (let rep = 0; rep < (quick ? 5 : 30); rep++) {
    const t0 = performance.now();
    const r = await model.generate({ pixelValues, prompt, maxNewTokens: 1, keepRatio, ...(keepRatio < 1 ? { pruner: new RandomPruner() } : {}) });
    const total = performance.now() - t0;
    if (total < best.total) Object.assign(best, { vision: r.timings.visionMs, prefill: r.timings.prefillMs, total, tokens: r.prefillTokens });
  }
  return best;
}
const base = await whole(1);
for (const keepRatio of [1, 0.5, 0.25, 0.11]) {
  const r = keepRatio === 1 ? base : await whole(keepRatio);
  console.log(`| ${keepRatio} | ${r.tokens} | ${r.vision.toFixed(2)} ms | ${r.prefill.toFixed(2)} ms | ${r.total.toFixed(2)} ms | ${base.total.toFixed(2)} ms | ${(base.total / r.total).toFixed(2)}x |`);
}

