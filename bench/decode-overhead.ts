// decode-overhead.ts — what a decode step costs beyond its kernels (issue 19's
// per-token overhead: TypeScript, N-API calls, thread hops, sampling). On the
// embedded model (hidden 128, vocab 51) the kernels of one token take
// microseconds, so the time per decoded token is almost all overhead. Run
// with its 4 layers and with them stacked 8 times (32 layers, Vicuna-7B's
// count: the overhead is per op and layer, at any width), for each decoder
// path (fused: one native call per layer range; ops: one call per op, the
// baseline) and op mode (sync, async). Alternating runs, medians, one process.
// The overhead column is the time per token less the time of its kernels
// alone: the same decode step's native calls (decoder layers, final norm and
// LM head, embedding) made back to back from a loop, synchronously.
// Usage: node --import tsx bench/decode-overhead.ts [--tokens N] [--reps N]
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { info } from '../lib/index.ts';
import { embeddedModelDir } from '../lib/demo.ts';
import { loadVLM, type GenerateRequest, type VLM } from '../lib/model/vlm.ts';
import type { TextWeights } from '../lib/model/weights.ts';
import type { TextConfig } from '../lib/model/config.ts';
import { DecoderPlan } from '../lib/model/fused_decoder.ts';
import { KVCache } from '../lib/model/llama.ts';
import { native } from '../lib/native.ts';
import { ops } from '../lib/ops.ts';
import { Tensor } from '../lib/tensor.ts';
import { makeExamples, renderScene } from '../lib/data/shapes/index.ts';

const args = process.argv.slice(2);
const flag = (name: string, fallback: string) => (args.includes(`--${name}`) ? args[args.indexOf(`--${name}`) + 1]! : fallback);
const tokens = Number(flag('tokens', '64')), reps = Number(flag('reps', '9'));

/** The model with its decoder layers repeated `times` times (the same weight tensors: only the layer count changes). */
async function load(opMode: 'sync' | 'async', decoder: 'fused' | 'ops', times: number): Promise<VLM> {
  const vlm = await loadVLM(embeddedModelDir(), { backend: 'cpu', opMode, decoder });
  const inner = vlm as unknown as { model: { text: { weights: TextWeights; config: { numLayers: number } } } };
  const { weights, config } = inner.model.text;
  weights.layers = Array.from({ length: times }, () => weights.layers).flat();
  config.numLayers = weights.layers.length;
  return vlm;
}

const variants: { name: string; layers: number; vlm: VLM }[] = [];
for (const times of [1, 8])
  for (const decoder of ['ops', 'fused'] as const)
    for (const opMode of ['sync', 'async'] as const) {
      const vlm = await load(opMode, decoder, times);
      variants.push({ name: `${decoder} ${opMode}`, layers: vlm.config.text.numLayers, vlm });
    }
const [example] = makeExamples('test', 1, { questionsPerScene: 1 });
const request: GenerateRequest = { image: await renderScene(example!.scene), prompt: example!.question, template: 'llava-1.5', maxNewTokens: tokens, stopAtEos: false };

const times = variants.map(() => [] as number[]);
let prefill = 0;
for (const v of variants) await v.vlm.generate(request); // warm-up
for (let r = 0; r < reps; r++) {
  const order = variants.map((_, i) => i);
  if (r % 2) order.reverse();
  for (const i of order) {
    const result = await variants[i]!.vlm.generate(request);
    // The first new token comes from the prefill; the rest are decode steps.
    times[i]!.push(result.timings.decodeMs / (result.tokenIds.length - 1));
    prefill = result.prefillTokens;
  }
}
const median = (a: number[]) => [...a].sort((p, q) => p - q)[a.length >> 1]!;

/** ms of one decode step's kernels alone (B = 1, a cache `length` long), called back to back. */
function kernelMs(vlm: VLM, length: number): number {
  const { weights: w, config } = (vlm as unknown as { model: { text: { weights: TextWeights; config: TextConfig } } }).model.text;
  const D = config.hiddenSize, L = config.numLayers;
  const cache = new KVCache(1, length + 2, config, 'cpu');
  cache.lengths.forEach((l) => l.fill(length));
  const x = new Tensor('f32', [1, 1, D], new Float32Array(D).fill(0.1), 'cpu');
  const positions = new Tensor('i32', [1, 1], Int32Array.of(length), 'cpu');
  const ids = new Tensor('i32', [1, 1], Int32Array.of(1), 'cpu');
  const plan = new DecoderPlan(w, cache, 'cpu', config);
  const handle = (plan as unknown as { handle: object }).handle;
  const h = new Tensor('f32', [1, D], x.host, 'cpu');
  const step = () => {
    native().decoderRun(0, handle, x, positions, Int32Array.of(1), new Int32Array(L).fill(length), 0, L);
    ops.linearSync(ops.rmsNormSync(h, w.norm, config.rmsNormEps), w.lmHead, null);
    ops.embeddingSync(w.embed, ids);
  };
  const samples: number[] = [];
  for (let r = 0; r < 15; r++) {
    const t0 = performance.now();
    for (let i = 0; i < 50; i++) step();
    samples.push((performance.now() - t0) / 50);
  }
  plan.free();
  cache.dispose();
  return median(samples.slice(3));
}
const kernel = new Map<number, number>();
const rows = variants.map((v, i) => {
  const baseline = variants.findIndex((b) => b.layers === v.layers && b.name === v.name.replace('fused', 'ops'));
  if (!kernel.has(v.layers)) kernel.set(v.layers, kernelMs(v.vlm, prefill + tokens / 2));
  const perTokenMs = median(times[i]!), kernelsMs = kernel.get(v.layers)!;
  return { variant: v.name, layers: v.layers, tokens, perTokenMs, kernelsMs, overheadMs: perTokenMs - kernelsMs, speedupOverOps: median(times[baseline]!) / perTokenMs };
});
console.log(`grip-vlm ${info().version} · simd ${info().simd} · embedded model (hidden 128) · ${tokens} new tokens · ${reps} runs each, medians`);
console.log('| decoder, ops | layers | ms / token | kernels alone | overhead | ops path / this |');
console.log('|---|---|---|---|---|---|');
for (const r of rows) console.log(`| ${r.variant} | ${r.layers} | ${r.perTokenMs.toFixed(3)} | ${r.kernelsMs.toFixed(3)} | ${r.overheadMs.toFixed(3)} | ${r.speedupOverOps.toFixed(2)}x |`);
const out = join(dirname(fileURLToPath(import.meta.url)), 'results', 'decode-overhead.json');
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, JSON.stringify({ cpu: info().simd, rows }, null, 2) + '\n');
