// prefill.bench.ts — the runtime's cost: (1) the Linear GEMMs of a LLaVA-7B
// decoder layer against numpy/OpenBLAS on the same shapes, (2) LLM prefill
// at LLaVA-1.5-7B layer shapes (random bf16 weights, a few layers) for the
// unpruned sequence and for pruned ones — the speed-up of pruning, measured
// against the unpruned prefill in the same run — and (3) the whole model
// (vision, projector, LLM) on the embedded test checkpoint.
// Usage: node --import tsx bench/prefill.bench.ts [--quick] [--layers N]
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { info, ops, setBackend, tensor, zeros } from '../lib/index.ts';
import type { TextConfig } from '../lib/model/config.ts';
import { kernels } from '../lib/model/kernels.ts';
import { KVCache, runDecoder } from '../lib/model/llama.ts';
import { loadVLM } from '../lib/model/vlm.ts';
import { embeddedModelDir } from '../lib/demo.ts';
import type { TextWeights } from '../lib/model/weights.ts';
import { RandomPruner } from '../lib/prune/heuristics/random.ts';
import { runTable, type Row } from './harness.ts';

setBackend('cpu');
const quick = process.argv.includes('--quick');
const layersArg = process.argv.indexOf('--layers');
const numLayers = layersArg > 0 ? Number(process.argv[layersArg + 1]) : 2;
const here = dirname(fileURLToPath(import.meta.url));
let seed = 1;
const random = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648) * 2 - 1;
const floats = (n: number, scale = 1) => {
  const out = new Float32Array(n);
  for (let j = 0; j < n; j++) out[j] = random() * scale;
  return out;
};
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
  await runTable('Linear layers of LLaVA-7B (prefill of 611 tokens) vs OpenBLAS', rows);
}

// ---- (2) prefill at LLaVA-7B layer shapes ----------------------------------------------------
const config: TextConfig = {
  hiddenSize: D, numLayers, numHeads: H, numKvHeads: H, headDim: Dh, intermediateSize: F,
  rmsNormEps: 1e-5, ropeTheta: 10000, vocabSize: V, hiddenAct: 'silu', maxPositionEmbeddings: 4096, tieWordEmbeddings: false,
};
const bf16 = (rows: number, cols: number) => ({ weight: tensor(floats(rows * cols, 1 / Math.sqrt(cols)), [rows, cols], 'bf16'), bias: null });
const ones = () => tensor(new Float32Array(D).fill(1), [D]);
const weights: TextWeights = {
  embed: tensor(new Uint16Array(1), [1, 1], 'bf16'), lmHead: tensor(new Uint16Array(1), [1, 1], 'bf16'), norm: ones(),
  layers: Array.from({ length: numLayers }, () => ({
    inputNorm: ones(), postNorm: ones(),
    q: bf16(D, D), k: bf16(D, D), v: bf16(D, D), o: bf16(D, D), gate: bf16(F, D), up: bf16(F, D), down: bf16(D, F),
  })),
};

async function prefillMs(tokens: number): Promise<number> {
  const x = tensor(floats(tokens * D), [1, tokens, D]);
  const positions = tensor(Int32Array.from({ length: tokens }, (_, p) => p), [1, tokens]);
  const times: number[] = [];
  for (let rep = 0; rep < (quick ? 1 : 3); rep++) {
    const cache = new KVCache(1, tokens, config, 'cpu');
    const t0 = performance.now();
    await runDecoder(weights, config, x, positions, Int32Array.of(tokens), cache, { from: 0, to: numLayers }, { backend: 'cpu', k: kernels('async') });
    times.push(performance.now() - t0);
  }
  return times.sort((a, b) => a - b)[0]!;
}

console.log(`\n### Prefill at LLaVA-1.5-7B shapes (${numLayers} of 32 decoder layers, bf16 weights, ${textTokens} text + kept visual tokens)\n`);
console.log('| keep ratio | tokens | prefill (per layer) | tokens/s | baseline: unpruned | speed-up | ideal (token ratio) |');
console.log('|---|---|---|---|---|---|---|');
const unprunedMs = await prefillMs(S);
for (const keepRatio of [1, 0.5, 0.25, 0.11]) {
  const tokens = textTokens + Math.ceil(keepRatio * N);
  const ms = keepRatio === 1 ? unprunedMs : await prefillMs(tokens);
  console.log(`| ${keepRatio} | ${tokens} | ${(ms / numLayers).toFixed(1)} ms | ${((tokens / ms) * 1000).toFixed(0)} | ${(unprunedMs / numLayers).toFixed(1)} ms | ${(unprunedMs / ms).toFixed(2)}x | ${(S / tokens).toFixed(2)}x |`);
}

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

