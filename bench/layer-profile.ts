// layer-profile.ts — where one decoder layer's prefill time goes at
// Vicuna-7B shapes (hidden 4096, 32 heads, Dh 128, intermediate 11008):
// runs lib/model/llama.ts's runDecoder for one layer of random weights and
// adds up each op's wall time (ops awaited one at a time), so the shares of
// linear, attention, rmsNorm, rope, cacheWrite, siluMul and add are read in
// one process; with --attention-old the attention op is timed again on the
// same q, k, v with GRIP_ATTENTION_IMPL=reference (main's kernel) for a
// same-process ratio (issue 19; docs/llamacpp.md, "Where prefill time goes").
// With --attention-only, just the attention op on random q, k, v [1,T,32,128]
// (causal prefill): main's kernel with a fresh output per call (as main's
// runDecoder ran it), and both kernels on a reused output, --reps rounds (medians).
// Usage: node --import tsx bench/layer-profile.ts [--tokens 611,2915] [--layers N] [--dtype f32|bf16] [--reps N] [--attention-old | --attention-only]
import { info, ops, setBackend, tensor, type Tensor } from '../lib/index.ts';
import type { AttentionOptions } from '../lib/ops.ts';
import type { TextConfig } from '../lib/model/config.ts';
import { kernels, type Kernels } from '../lib/model/kernels.ts';
import { KVCache, runDecoder } from '../lib/model/llama.ts';
import type { TextWeights } from '../lib/model/weights.ts';
import { seededFloats } from './harness.ts';

setBackend('cpu');
const arg = (name: string, fallback: string) => {
  const at = process.argv.indexOf(name);
  return at > 0 ? process.argv[at + 1]! : fallback;
};
const tokenList = arg('--tokens', '611,2915').split(',').map(Number);
const dtype = arg('--dtype', 'f32') as 'f32' | 'bf16';
const reps = Number(arg('--reps', '1'));
const numLayers = Number(arg('--layers', '1'));
const attentionOld = process.argv.includes('--attention-old');
const attentionOnly = process.argv.includes('--attention-only');

const D = 4096, F = 11008, H = 32, Dh = 128;
const floats = seededFloats(1);
const config: TextConfig = {
  hiddenSize: D, numLayers, numHeads: H, numKvHeads: H, headDim: Dh, intermediateSize: F,
  rmsNormEps: 1e-5, ropeTheta: 10000, vocabSize: 32000, hiddenAct: 'silu', maxPositionEmbeddings: 4096, tieWordEmbeddings: false,
};
const median = (v: number[]) => [...v].sort((a, b) => a - b)[v.length >> 1]!;

/** Attention runs of (kernel, options) on the same q, k, v, alternating (forwards, then backwards). */
async function compareAttention(q: Tensor, k: Tensor, v: Tensor, runs: [impl: 'reference' | 'tiled', options: AttentionOptions][], rounds: number): Promise<number[][]> {
  const times: number[][] = runs.map(() => []);
  for (let r = 0; r < rounds; r++) {
    const order = runs.map((_, j) => j);
    if (r % 2) order.reverse();
    for (const j of order) {
      process.env.GRIP_ATTENTION_IMPL = runs[j]![0];
      const t0 = performance.now();
      await ops.attention(q, k, v, runs[j]![1]);
      times[j]!.push(performance.now() - t0);
    }
  }
  delete process.env.GRIP_ATTENTION_IMPL;
  return times;
}

if (attentionOnly) {
  const i = info();
  console.log(`grip-vlm ${i.version} · cpu · simd ${i.simd} · threads ${i.threads} · attention [1,T,${H},${Dh}] causal prefill · ${reps} alternating rounds · node ${process.version}`);
  console.log('| tokens | main: its kernel, fresh out | main\'s kernel, out reused | this kernel, out reused | kernel speed-up | as runDecoder calls it: speed-up | GFLOP/s (this) |');
  console.log('|---|---|---|---|---|---|---|');
  const freshMs: [tokens: number, ms: number][] = [];
  for (const T of tokenList) {
    const q = tensor(floats(T * H * Dh), [1, T, H, Dh]), k = tensor(floats(T * H * Dh), [1, H, T, Dh]), v = tensor(floats(T * H * Dh), [1, H, T, Dh]);
    const out = tensor(new Float32Array(T * H * Dh).fill(0), [1, T, H, Dh]);
    const t = await compareAttention(q, k, v, [['reference', {}], ['reference', { out }], ['tiled', { out }]], Math.max(2, reps));
    const [a, b, c] = t.map(median) as [number, number, number];
    const flop = 2 * 2 * H * Dh * (T * (T + 1)) / 2;
    freshMs.push([T, a]);
    console.log(`| ${T} | ${a.toFixed(1)} ms | ${b.toFixed(1)} ms | ${c.toFixed(1)} ms | ${(b / c).toFixed(2)}x | ${(a / c).toFixed(2)}x | ${(flop / (c * 1e6)).toFixed(1)} |`);
  }
  console.log(`medians of ${Math.max(2, reps)} alternating rounds each; "fresh out": a new output tensor per call (main's runDecoder), whose first touch faults its pages in`);
  // The ceiling: the packed f32 GEMM's rate in this process (the attention runs its macro-kernel), so a
  // speed-up target can be read against what the FMA units give at all.
  const n = 2048, ga = tensor(floats(n * n), [n, n]), gb = tensor(floats(n * n), [n, n]);
  const gemmMs: number[] = [];
  for (let r = 0; r < Math.max(3, reps); r++) {
    const t0 = performance.now();
    await ops.matmul(ga, gb);
    gemmMs.push(performance.now() - t0);
  }
  const gemmRate = (2 * n * n * n) / (Math.min(...gemmMs) * 1e6);
  console.log(`f32 GEMM ${n}x${n}x${n} in this process: ${gemmRate.toFixed(1)} GFLOP/s (best of ${gemmMs.length}); ` +
    'the kernel\'s rate for 2x main\'s kernel (fresh out):');
  for (const [T, fresh] of freshMs) {
    const need = (2 * 2 * H * Dh * (T * (T + 1)) / 2) / ((fresh / 2) * 1e6);
    console.log(`  ${T} tokens: 2x needs ${need.toFixed(1)} GFLOP/s = ${(100 * need / gemmRate).toFixed(0)}% of the GEMM's rate`);
  }
  process.exit(0);
}

const matrix = (rows: number, cols: number) => ({ weight: tensor(floats(rows * cols, Math.sqrt(3 / cols)), [rows, cols], dtype), bias: null });
const ones = () => tensor(new Float32Array(D).fill(1), [D]);
const weights: TextWeights = {
  embed: tensor(new Float32Array(1), [1, 1]), lmHead: tensor(new Float32Array(1), [1, 1]), norm: ones(),
  // One layer's weights shared by every layer (the cost is the same, the memory one layer's).
  layers: Array(numLayers).fill({ inputNorm: ones(), postNorm: ones(), q: matrix(D, D), k: matrix(D, D), v: matrix(D, D), o: matrix(D, D), gate: matrix(F, D), up: matrix(F, D), down: matrix(D, F) }),
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
console.log(`grip-vlm ${i.version} · cpu · simd ${i.simd} · threads ${i.threads} · ${dtype} weights · ${numLayers} decoder layer(s) at Vicuna-7B shapes, times per layer · node ${process.version}`);
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
    await runDecoder(weights, config, x, positions, Int32Array.of(T), cache, { from: 0, to: numLayers }, { backend: 'cpu', k: timedKernels(spent, calls, seen) });
    total += performance.now() - t0;
    if (r < reps - 1) cache.dispose();
  }
  const per = reps * numLayers;
  const flop: Record<string, number> = { linear: 2 * T * (4 * D * D + 3 * D * F), attention: 2 * 2 * H * Dh * (T * (T + 1)) / 2 };
  const sorted = [...spent].sort((a, b) => b[1] - a[1]);
  for (const [name, ms] of sorted) {
    const rate = flop[name] ? (flop[name]! * per / (ms * 1e6)).toFixed(1) : '';
    console.log(`| ${T} | ${name} | ${(calls.get(name) ?? 0) / per} | ${(ms / per).toFixed(1)} ms | ${(100 * ms / total).toFixed(1)}% | ${rate} |`);
  }
  const opsMs = [...spent.values()].reduce((a, b) => a + b, 0);
  console.log(`| ${T} | (outside the ops) | | ${((total - opsMs) / per).toFixed(1)} ms | ${(100 * (total - opsMs) / total).toFixed(1)}% | |`);
  console.log(`| ${T} | **layer** | | ${(total / per).toFixed(1)} ms | 100% | ${((flop.linear! + flop.attention!) * per / (total * 1e6)).toFixed(1)} |`);
  if (attentionOld && seen.attention) {
    const [q, k, v, options] = seen.attention as [Tensor, Tensor, Tensor, AttentionOptions];
    const [ref, now] = (await compareAttention(q, k, v, [['reference', options], ['tiled', options]], 3)).map(median) as [number, number];
    console.log(`attention ${T}: main's kernel ${ref.toFixed(1)} ms, this one ${now.toFixed(1)} ms, speed-up ${(ref / now).toFixed(2)}x (same inputs and output, medians of 3, alternating)`);
  }
}
