// decode-overhead.ts — what a decode step costs beyond its kernels (issue 19's
// per-token overhead: TypeScript, N-API calls, thread hops, sampling). On the
// embedded model (hidden 128, 4 layers, vocab 51) the kernels of one token
// take microseconds, so the time per decoded token is almost all overhead.
// Prints ms per token with synchronous ops and with async ops (one thread
// hop per op), the same per decoder layer, and the sum scaled to 32 layers
// (Vicuna-7B's count: the overhead is per op, and each layer makes the same
// ops at any width). Alternating runs, medians, one process.
// Usage: node --import tsx bench/decode-overhead.ts [--tokens N] [--reps N]
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { info } from '../lib/index.ts';
import { embeddedModelDir } from '../lib/demo.ts';
import { loadVLM, type GenerateRequest } from '../lib/model/vlm.ts';
import { makeExamples, renderScene } from '../lib/data/shapes/index.ts';

const args = process.argv.slice(2);
const flag = (name: string, fallback: string) => (args.includes(`--${name}`) ? args[args.indexOf(`--${name}`) + 1]! : fallback);
const tokens = Number(flag('tokens', '64')), reps = Number(flag('reps', '9'));

const models = {
  sync: await loadVLM(embeddedModelDir(), { backend: 'cpu', opMode: 'sync' }),
  async: await loadVLM(embeddedModelDir(), { backend: 'cpu', opMode: 'async' }),
};
const layers = models.sync.config.text.numLayers;
const [example] = makeExamples('test', 1, { questionsPerScene: 1 });
const request: GenerateRequest = { image: await renderScene(example!.scene), prompt: example!.question, template: 'llava-1.5', maxNewTokens: tokens, stopAtEos: false };

const times: Record<keyof typeof models, number[]> = { sync: [], async: [] };
for (const m of Object.values(models)) await m.generate(request); // warm-up
for (let r = 0; r < reps; r++)
  for (const mode of (r % 2 ? ['async', 'sync'] : ['sync', 'async']) as (keyof typeof models)[]) {
    const result = await models[mode].generate(request);
    // The first new token comes from the prefill; the rest are decode steps.
    times[mode].push(result.timings.decodeMs / (result.tokenIds.length - 1));
  }
const median = (a: number[]) => [...a].sort((p, q) => p - q)[a.length >> 1]!;
const rows = (Object.keys(times) as (keyof typeof models)[]).map((mode) => {
  const perToken = median(times[mode]);
  return { mode, layers, tokens, perTokenMs: perToken, perLayerMs: perToken / layers, at32LayersMs: (perToken / layers) * 32 };
});
console.log(`grip-vlm ${info().version} · simd ${info().simd} · embedded model (${layers} layers) · ${tokens} new tokens · ${reps} runs each, medians`);
console.log('| ops | ms / token | ms / token / layer | at 32 layers |');
console.log('|---|---|---|---|');
for (const r of rows) console.log(`| ${r.mode} | ${r.perTokenMs.toFixed(3)} | ${r.perLayerMs.toFixed(3)} | ${r.at32LayersMs.toFixed(2)} ms |`);
console.log(`async / sync: ${(rows[1]!.perTokenMs / rows[0]!.perTokenMs).toFixed(2)}x (the thread hops)`);
const out = join(dirname(fileURLToPath(import.meta.url)), 'results', 'decode-overhead.json');
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, JSON.stringify({ cpu: info().simd, rows }, null, 2) + '\n');
