// llamacpp.bench.ts — our runtime against llama.cpp (node-llama-cpp 3.21.1,
// its prebuilt CPU binary) on the same weights: a seeded random Llama at
// Vicuna-7B shapes (the LLM of LLaVA-1.5-7B) with a few decoder layers,
// written as our safetensors checkpoint and as GGUF (tools/gguf/). First it
// checks that both compute the same function (exit 1 if not), then times,
// 2 threads each, alternating runs, medians: prefill of 611 and 2915 tokens
// (LLaVA-1.5 and LLaVA-NeXT prompts), decode of 32 tokens after a 611-token
// prefix; F32, BF16 and 8-bit (llama.cpp Q8_0 against ours with loadVLM's
// weights 'int8', the same q8_0 bytes and 8-bit activations).
// Writes bench/results/llamacpp.json.
// Also: the decode GEMV against the packed GEMM on the Linear shapes (same process).
// Usage: node --import tsx bench/llamacpp.bench.ts [--quick] [--layers N] [--reps N] [--variants F32,BF16,Q8_0] [--prefills 611,2915] [--out FILE]
// (--quick: 2 layers, 1 rep, prefill 611 only; the default: 4 layers, 3 reps, both prefills)
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { info, ops, setBackend, setNumThreads, tensor, zeros } from '../lib/index.ts';
import { mulberry32 } from '../lib/random.ts';
import { runTable, type Row } from './harness.ts';
import { argmax } from '../lib/model/runtime/decode.ts';
import { lmHead } from '../lib/model/llama.ts';
import { kernels } from '../lib/model/kernels.ts';
import { argmaxRows, centeredRelErr, nearTies } from '../tools/gguf/compare.ts';
import { loadLlamaText, lastRow, LlamaTextRunner } from '../tools/gguf/llama-text.ts';
import { LlamaCppRunner, llamaCppUnavailable } from '../tools/gguf/llamacpp.ts';
import { VICUNA_7B, writeRandomLlama } from '../tools/gguf/random-model.ts';
import type { GgmlTypeName } from '../tools/gguf/gguf.ts';

const args = process.argv.slice(2);
const flag = (name: string, fallback: string) => {
  const at = args.indexOf(`--${name}`);
  return at >= 0 ? args[at + 1]! : fallback;
};
const quick = args.includes('--quick');
const numLayers = Number(flag('layers', quick ? '2' : '4'));
const reps = Number(flag('reps', quick ? '1' : '3'));
const variants = flag('variants', 'F32,BF16,Q8_0').split(',').filter((v) => v !== '') as GgmlTypeName[]; // '' : only memcpy and the GEMV table
const THREADS = 2;
// --quick leaves out the 2915-token prefill: our attention materialises its S x S scores, so it alone takes minutes.
const PREFILLS = flag('prefills', quick ? '611' : '611,2915').split(',').map(Number);
const DECODE_PREFIX = 611, DECODE_TOKENS = 32;
/** Same-function check: relative L2 gap of the centred logits (see test/gguf.test.ts for why these bounds). */
// Q8_0: both round the activations to 8 bits, but the f32 parts differ by ~5e-4 (llama.cpp's own), enough to flip
// many roundings, so the two 8-bit noises are nearly independent (1.5e-2 to 2e-2 on the test model).
const TOLERANCE: Partial<Record<GgmlTypeName, number>> = { F32: 1e-3, BF16: 1e-2, Q8_0: 3e-2 };

setBackend('cpu');
setNumThreads(THREADS);
const here = dirname(fileURLToPath(import.meta.url));
const cpu = `${cpus()[0]?.model.trim() ?? 'unknown CPU'}, ${cpus().length} cores`;
const i = info();
console.log(`grip-vlm ${i.version} · simd ${i.simd} · ${THREADS} threads · node ${process.version} · ${cpu}`);
const unavailable = await llamaCppUnavailable();
if (unavailable) {
  console.error(`llama.cpp is not available: ${unavailable}`);
  process.exit(1);
}

// ---- the model, cached by shape and seed ----------------------------------------------------------
const dir = join(tmpdir(), `grip-llamacpp-vicuna7b-${numLayers}layers-seed1`);
if (!variants.every((v) => existsSync(join(dir, `model-${v}.gguf`)))) {
  console.log(`writing the random model (${numLayers} layers, bf16-exact weights) to ${dir} ...`);
  const t0 = performance.now();
  await writeRandomLlama(dir, { ...VICUNA_7B, numLayers }, { seed: 1, dtype: 'bf16', ggufTypes: variants });
  console.log(`... in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
}
const { vocabSize: V, hiddenSize: D, intermediateSize: F } = VICUNA_7B;
const promptOf = (n: number) => Int32Array.from({ length: n }, (_, p) => 3 + ((p * 7919 + 17) % (V - 3)));

// ---- memory bandwidth: a large copy on one thread ---------------------------------------------------
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
/**
 * GB/s copied by memcpy (TypedArray.set) of 1 GiB split among `threads`
 * worker threads, median of 5 (each byte is read once and written once).
 */
async function copyBandwidth(threads: number): Promise<number> {
  const bytes = 1 << 30;
  const src = new SharedArrayBuffer(bytes), dst = new SharedArrayBuffer(bytes);
  new Uint8Array(src).fill(1);
  const code = `const { parentPort, workerData: w } = require('node:worker_threads');
    const s = new Uint8Array(w.src, w.begin, w.end - w.begin), d = new Uint8Array(w.dst, w.begin, w.end - w.begin);
    parentPort.on('message', () => { d.set(s); parentPort.postMessage(0); });`;
  const workers = Array.from({ length: threads }, (_, t) => new Worker(code, { eval: true, workerData: { src, dst, begin: (bytes / threads) * t, end: (bytes / threads) * (t + 1) } }));
  const times: number[] = [];
  for (let r = 0; r < 6; r++) {
    const t0 = performance.now();
    await Promise.all(workers.map((w) => new Promise((resolve) => { w.once('message', resolve); w.postMessage(0); })));
    if (r > 0) times.push(performance.now() - t0); // the first run faults the pages in
  }
  await Promise.all(workers.map((w) => w.terminate()));
  return bytes / (median(times) * 1e6);
}
const copyGBs = { 1: await copyBandwidth(1), [THREADS]: await copyBandwidth(THREADS) };
const copyLine = Object.entries(copyGBs).map(([t, gbs]) => `${t} thread${t === '1' ? '' : 's'} ${gbs.toFixed(1)} GB/s copied (${(2 * gbs).toFixed(1)} GB/s read + write)`).join(', ');
console.log(`memcpy of 1 GiB: ${copyLine}`);

// ---- the decode GEMV against the packed GEMM, same process --------------------------------------
// One activation row times a Linear weight: linear (weights [N,K]) takes the GEMV; matmul with the
// same weights stored [K,N] takes the packed GEMM, which reads the same bytes (the path decode took before).
{
  const r = mulberry32(3);
  const gemvRows: Row[] = [];
  for (const [name, N, K] of [['q/k/v/o proj', D, D], ['gate/up proj', F, D], ['down proj', D, F]] as const) {
    const x = tensor(Float32Array.from({ length: K }, () => 2 * r() - 1), [1, K]);
    for (const dtype of ['f32', 'bf16'] as const) {
      const values = Float32Array.from({ length: N * K }, () => (2 * r() - 1) / Math.sqrt(K));
      const transposed = new Float32Array(N * K);
      for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) transposed[k * N + n] = values[n * K + k]!;
      const w = tensor(values, [N, K], dtype), wT = tensor(transposed, [K, N], dtype);
      const out = zeros([1, N]);
      gemvRows.push({
        op: `linear, 1 row, ${name} (${dtype} weights)`, shape: `1x${N}x${K}`, work: { bytes: w.bytes },
        run: () => ops.linearSync(x, w, null, { out }),
        baseline: { name: 'packed GEMM (same weights stored [K,N])', run: () => ops.matmulSync(x, wT, { out }) },
      });
    }
  }
  await runTable(`Decode GEMV vs the packed GEMM (${THREADS} threads, ${cpu}; weight bytes / time)`, gemvRows);
}

interface ResultRow { variant: string; phase: 'prefill' | 'decode'; tokens: number; gripMs: number | null; llamacppMs: number }
const rows: ResultRow[] = [];
// Decode reads every matrix once per token (layers + LM head; the embedding row is negligible).
const matrixValues = numLayers * (4 * D * D + 3 * D * F) + V * D;
const BYTES_PER_VALUE: Record<GgmlTypeName, number> = { F32: 4, F16: 2, BF16: 2, Q8_0: 34 / 32 };

for (const variant of variants) {
  // Q8_0: the stored matrices quantised at load (each widened to f32 first, one at a time), as loadVLM weights 'int8'.
  const ours: LlamaTextRunner | null = new LlamaTextRunner(await loadLlamaText(dir, variant === 'Q8_0' ? { dtype: 'auto', weights: 'int8' } : { dtype: variant === 'F32' ? 'f32' : 'bf16' }));
  const cpp = await LlamaCppRunner.open(join(dir, `model-${variant}.gguf`), { threads: THREADS, contextSize: 3072 });
  console.log(`\n## ${variant} (load average ${loadavg()[0]!.toFixed(1)} on ${cpus().length} cores; llama.cpp batch ${cpp.context.batchSize}, flash attention ${String(cpp.context.flashAttention)}, KV cache f16; ours KV f32)`);

  // Same function first.
  if (ours) {
    const probe = promptOf(16), probeRows = Array.from(probe, (_, p) => p);
    const logits = await ours.logits(probe);
    const logProbs = await cpp.logProbs(probe, probeRows, V);
    const err = centeredRelErr(logits, logProbs, V);
    const ties = nearTies(logits, logProbs, V);
    const decisive = (tokens: number[]) => tokens.filter((_, r) => !ties[r]);
    const same = err <= TOLERANCE[variant]! && JSON.stringify(decisive(argmaxRows(logits, V))) === JSON.stringify(decisive(argmaxRows(logProbs, V)));
    console.log(`same function: logits gap ${err.toExponential(2)} (bound ${TOLERANCE[variant]}), argmax equal at ${ties.filter((t) => !t).length} decisive positions of 16: ${same ? 'yes' : 'NO'}`);
    if (!same) {
      console.error(`\nFAIL: our runtime and llama.cpp do not compute the same function for ${variant}; the timings would compare different things.`);
      process.exit(1);
    }
  }

  const o = { backend: 'cpu' as const, k: kernels('async'), signal: undefined };
  const oursPrefill = async (ids: Int32Array) => {
    const t0 = performance.now();
    const state = await ours!.prefill(ids);
    argmax((await lmHead(ours!.model.weights, ours!.model.config, lastRow(state.x), o)).host as Float32Array, 0, V);
    const ms = performance.now() - t0;
    state.cache.dispose();
    return ms;
  };
  const cppPrefill = async (ids: Int32Array) => {
    const t0 = performance.now();
    await cpp.prefill(ids);
    return performance.now() - t0;
  };
  const oursDecode = async () => {
    const ids = promptOf(DECODE_PREFIX);
    const state = await ours!.prefill(ids, DECODE_PREFIX + DECODE_TOKENS + 1);
    const t0 = performance.now();
    // DECODE_TOKENS decoder steps; one LM head more than llama.cpp's (the first token's), against us.
    await ours!.decode(state, DECODE_PREFIX, DECODE_TOKENS + 1);
    return performance.now() - t0;
  };
  const cppDecode = async () => {
    const first = await cpp.prefill(promptOf(DECODE_PREFIX));
    const t0 = performance.now();
    await cpp.decode(first, DECODE_TOKENS);
    return performance.now() - t0;
  };

  const measure = async (phase: ResultRow['phase'], tokens: number, oursRun: (() => Promise<number>) | null, cppRun: () => Promise<number>) => {
    const a: number[] = [], b: number[] = [];
    for (let r = 0; r < reps; r++) {
      // Alternate who goes first, so neither always runs on a warmer (or hotter) machine.
      if (r % 2 === 0) { if (oursRun) a.push(await oursRun()); b.push(await cppRun()); }
      else { b.push(await cppRun()); if (oursRun) a.push(await oursRun()); }
    }
    const row: ResultRow = { variant, phase, tokens, gripMs: oursRun ? median(a) : null, llamacppMs: median(b) };
    rows.push(row);
    const ratio = row.gripMs === null ? 'n/a' : `${(row.llamacppMs / row.gripMs).toFixed(2)}x`;
    const per = phase === 'decode' ? ` (${row.gripMs === null ? 'n/a' : (row.gripMs / tokens).toFixed(1)} vs ${(row.llamacppMs / tokens).toFixed(1)} ms/token)` : '';
    console.log(`${phase} ${tokens}: ours ${row.gripMs === null ? 'n/a' : `${row.gripMs.toFixed(0)} ms`}, llama.cpp ${row.llamacppMs.toFixed(0)} ms, llama.cpp/ours ${ratio}${per}`);
  };
  // One untimed warm-up each (page cache, thread pools).
  if (ours) await oursPrefill(promptOf(64));
  await cppPrefill(promptOf(64));
  for (const n of PREFILLS) await measure('prefill', n, ours ? () => oursPrefill(promptOf(n)) : null, () => cppPrefill(promptOf(n)));
  await measure('decode', DECODE_TOKENS, ours ? oursDecode : null, cppDecode);
  await cpp.dispose();
}

// ---- the table -------------------------------------------------------------------------------------
console.log(`\n### Our runtime vs llama.cpp (node-llama-cpp 3.21.1, CPU) · Vicuna-7B shapes, ${numLayers} decoder layers · ${THREADS} threads each · ${cpu} · median of ${reps}\n`);
console.log('| weights | phase | tokens | ours | llama.cpp | llama.cpp / ours | ours, weights read | llama.cpp, weights read |');
console.log('|---|---|---|---|---|---|---|---|');
for (const r of rows) {
  const ours = r.gripMs === null ? 'n/a' : `${r.gripMs.toFixed(0)} ms`;
  const ratio = r.gripMs === null ? 'n/a' : `${(r.llamacppMs / r.gripMs).toFixed(2)}x`;
  const bytes = matrixValues * BYTES_PER_VALUE[r.variant as GgmlTypeName];
  const bw = (ms: number | null) => (r.phase === 'decode' && ms !== null ? `${((bytes * r.tokens) / (ms * 1e6)).toFixed(1)} GB/s` : '');
  console.log(`| ${r.variant} | ${r.phase} | ${r.tokens} | ${ours} | ${r.llamacppMs.toFixed(0)} ms | ${ratio} | ${bw(r.gripMs)} | ${bw(r.llamacppMs)} |`);
}
console.log(`load average at the end: ${loadavg().map((x) => x.toFixed(1)).join(', ')} (1, 5, 15 min) on ${cpus().length} cores: other processes share them, so read the ratios, not the times`);
console.log(`memcpy of 1 GiB: ${copyLine}`);
if (rows.length === 0) process.exit(0); // nothing timed against llama.cpp: keep the last results
await mkdir(join(here, 'results'), { recursive: true });
const out = flag('out', join(here, 'results', 'llamacpp.json')); // --out: keep another machine's or variant's rows apart
await writeFile(out, `${JSON.stringify({ cpu, threads: THREADS, layers: numLayers, reps, quick, memcpyGBs: copyGBs, loadAverage: loadavg()[0], rows }, null, 2)}\n`);
console.log(`wrote ${out}`);
