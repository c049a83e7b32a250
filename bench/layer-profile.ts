// layer-profile.ts — where one decoder layer's prefill time goes at
// Vicuna-7B shapes (hidden 4096, 32 heads, Dh 128, intermediate 11008):
// runs lib/model/llama.ts's runDecoder for one layer of random weights and
// adds up each op's wall time (ops awaited one at a time), so the shares of
// linear, attention, rmsNorm, rope, cacheWrite, siluMul and add are read in
// one process; with --attention-old the attention op is timed again on the
// same q, k, v with GRIP_ATTENTION_IMPL=reference (main's kernel) for a
// same-process ratio (issue 19; docs/llamacpp.md, "Where prefill time goes").
// With --attention-only, just the attention op on random q, k, v [1,T,32,128]
// (causal prefill), both kernels alternating, --reps rounds (min and median).
// Usage: node --import tsx bench/layer-profile.ts [--tokens 611,2915] [--dtype f32|bf16] [--reps N] [--attention-old | --attention-only]
import { info, ops, setBackend, tensor } from '../lib/index.ts';
import type { TextConfig } from '../lib/model/config.ts';
import { kernels, type Kernels } from '../lib/model/kernels.ts';
import { KVCache, runDecoder } from '../lib/model/llama.ts';
import type { TextWeights } from '../lib/model/weights.ts';

setBackend('cpu');
const arg = (name: string, fallback: string) => {
  const at = process.argv.indexOf(name);
  return at > 0 ? process.argv[at + 1]! : fallback;
};
const tokenList = arg('--tokens', '611,2915').split(',').map(Number);
const dtype = arg('--dtype', 'f32') as 'f32' | 'bf16';
const reps = Number(arg('--reps', '1'));
const attentionOld = process.argv.includes('--attention-old');
const attentionOnly = process.argv.includes('--attention-only');

const D = 4096, F = 11008, H = 32, Dh = 128;
let seed = 1;
const random = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648) * 2 - 1;
const floats = (n: number, scale = 1) => {
  const out = new Float32Array(n);
  for (let j = 0; j < n; j++) out[j] = random() * scale;
  return out;
};
const config: TextConfig = {
  hiddenSize: D, numLayers: 1, numHeads: H, numKvHeads: H, headDim: Dh, intermediateSize: F,
  rmsNormEps: 1e-5, ropeTheta: 10000, vocabSize: 32000, hiddenAct: 'silu', maxPositionEmbeddings: 4096, tieWordEmbeddings: false,
};
const median = (v: number[]) => [...v].sort((a, b) => a - b)[v.length >> 1]!;

/** main's kernel (GRIP_ATTENTION_IMPL=reference) against this one on the same inputs, alternating. */
async function compareAttention(args: unknown[], rounds: number): Promise<Record<string, number[]>> {
  const [q, k, v, options] = args as [never, never, never, never];
  const times: Record<string, number[]> = { reference: [], tiled: [] };
  for (let r = 0; r < rounds; r++) {
    for (const impl of r % 2 ? ['tiled', 'reference'] : ['reference', 'tiled']) {
      process.env.GRIP_ATTENTION_IMPL = impl;
      const t0 = performance.now();
      await ops.attention(q, k, v, options);
      times[impl]!.push(performance.now() - t0);
    }
  }
  delete process.env.GRIP_ATTENTION_IMPL;
  return times;
}

if (attentionOnly) {
  const i = info();
  console.log(`grip-vlm ${i.version} · cpu · simd ${i.simd} · threads ${i.threads} · attention [1,T,${H},${Dh}] causal prefill · ${reps} alternating rounds · node ${process.version}`);
  console.log('| tokens | main (min / median) | this (min / median) | speed-up (min / median) | GFLOP/s (this, min) |');
  console.log('|---|---|---|---|---|');
  for (const T of tokenList) {
    const q = tensor(floats(T * H * Dh), [1, T, H, Dh]), k = tensor(floats(T * H * Dh), [1, H, T, Dh]), v = tensor(floats(T * H * Dh), [1, H, T, Dh]);
    const t = await compareAttention([q, k, v, {}], Math.max(2, reps));
    const ref = t.reference!, now = t.tiled!;
    const flop = 2 * 2 * H * Dh * (T * (T + 1)) / 2;
    console.log(`| ${T} | ${Math.min(...ref).toFixed(1)} / ${median(ref).toFixed(1)} ms | ${Math.min(...now).toFixed(1)} / ${median(now).toFixed(1)} ms | ${(Math.min(...ref) / Math.min(...now)).toFixed(2)}x / ${(median(ref) / median(now)).toFixed(2)}x | ${(flop / (Math.min(...now) * 1e6)).toFixed(1)} |`);
  }
  process.exit(0);
}

const matrix = (rows: number, cols: number) => ({ weight: tensor(floats(rows * cols, Math.sqrt(3 / cols)), [rows, cols], dtype), bias: null });
const ones = () => tensor(new Float32Array(D).fill(1), [D]);
const weights: TextWeights = {
  embed: tensor(new Float32Array(1), [1, 1]), lmHead: tensor(new Float32Array(1), [1, 1]), norm: ones(),
  layers: [{ inputNorm: ones(), postNorm: ones(), q: matrix(D, D), k: matrix(D, D), v: matrix(D, D), o: matrix(D, D), gate: matrix(F, D), up: matrix(F, D), down: matrix(D, F) }],
};

/** The async kernels, each op's wall time added to `spent` under its name; attention's inputs kept in `seen`. */
function timedKernels(spent: Map<string, number>, calls: Map<string, number>, seen: { attention?: unknown[] }): Kernels {
  const base = kernels('async') as unknown as Record<string, unknown>;
  const table: Record<string, unknown> = { ...base };
  for (const [name, op] of Object.entries(base)) {
    if (typeof op !== 'function' || name === 'yield') continue;
    table[name] = async (...args: unknown[]) => {
      if (name === 'attention') seen.attention = args;
      const t0 = performance.now();
      try {
        return await (op as (...a: unknown[]) => Promise<unknown>)(...args);
      } finally {
        spent.set(name, (spent.get(name) ?? 0) + performance.now() - t0);
        calls.set(name, (calls.get(name) ?? 0) + 1);
      }
    };
  }
  return table as unknown as Kernels;
}

const i = info();
console.log(`grip-vlm ${i.version} · cpu · simd ${i.simd} · threads ${i.threads} · ${dtype} weights · 1 decoder layer at Vicuna-7B shapes · node ${process.version}`);
console.log('| tokens | op | calls | time | share | GFLOP/s |');
console.log('|---|---|---|---|---|---|');
for (const T of tokenList) {
  const spent = new Map<string, number>(), calls = new Map<string, number>();
  const seen: { attention?: unknown[] } = {};
  let total = 0;
  for (let r = 0; r < reps; r++) {
    const x = tensor(floats(T * D), [1, T, D]);
    const positions = tensor(Int32Array.from({ length: T }, (_, p) => p), [1, T]);
    const cache = new KVCache(1, T, config, 'cpu');
    const t0 = performance.now();
    await runDecoder(weights, config, x, positions, Int32Array.of(T), cache, { from: 0, to: 1 }, { backend: 'cpu', k: timedKernels(spent, calls, seen) });
    total += performance.now() - t0;
    if (r < reps - 1) cache.dispose();
  }
  const flop: Record<string, number> = { linear: 2 * T * (4 * D * D + 3 * D * F), attention: 2 * 2 * H * Dh * (T * (T + 1)) / 2 };
  const sorted = [...spent].sort((a, b) => b[1] - a[1]);
  for (const [name, ms] of sorted) {
    const rate = flop[name] ? (flop[name]! * reps / (ms * 1e6)).toFixed(1) : '';
    console.log(`| ${T} | ${name} | ${(calls.get(name) ?? 0) / reps} | ${(ms / reps).toFixed(1)} ms | ${(100 * ms / total).toFixed(1)}% | ${rate} |`);
  }
  const opsMs = [...spent.values()].reduce((a, b) => a + b, 0);
  console.log(`| ${T} | (outside the ops) | | ${((total - opsMs) / reps).toFixed(1)} ms | ${(100 * (total - opsMs) / total).toFixed(1)}% | |`);
  console.log(`| ${T} | **layer** | | ${(total / reps).toFixed(1)} ms | 100% | ${((flop.linear! + flop.attention!) * reps / (total * 1e6)).toFixed(1)} |`);
  if (attentionOld && seen.attention) {
    const t = await compareAttention(seen.attention, 3);
    const ref = median(t.reference!), now = median(t.tiled!);
    console.log(`attention ${T}: main's kernel ${ref.toFixed(1)} ms, this one ${now.toFixed(1)} ms, speed-up ${(ref / now).toFixed(2)}x (medians of 3, alternating)`);
  }
}
