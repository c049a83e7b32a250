// int8.bench.ts — the q8_0 Linear (8-bit weights, native/cpu/q8_0*.cc) against
// the bf16 and f32 Linear on the same values, same process, alternating:
// decode (1 and 4 rows, the GEMV) and a 64-row prefill (the packed GEMM for
// the float ones), at a Vicuna-7B q/k/v/o shape, printing time, weight bytes
// read per second and bf16 time / q8_0 time.
// Usage: node --import tsx bench/int8.bench.ts [--threads N] [--reps N] [--rows 1,4,64]
// (rows of 16 or more take the AMX-INT8 tiles where the CPU has them; GRIP_SIMD=avx512_bf16 keeps AVX512_VNNI)
import { info, ops, setNumThreads, tensor, type Tensor } from '../lib/index.ts';
import { mulberry32 } from '../lib/random.ts';

const args = process.argv.slice(2);
const flag = (name: string, fallback: string) => (args.includes(`--${name}`) ? args[args.indexOf(`--${name}`) + 1]! : fallback);
const threads = Number(flag('threads', '2')), reps = Number(flag('reps', '20'));
const rowCounts = flag('rows', '1,4,64').split(',').map(Number);
setNumThreads(threads);
const N = 4096, K = 4096;
const random = mulberry32(1);
const values = new Float32Array(N * K).map(() => random() - 0.5);
const weights: [string, Tensor][] = [['f32', tensor(values, [N, K])], ['bf16', tensor(values, [N, K], 'bf16')], ['q8_0', ops.quantizeQ8_0Sync(tensor(values, [N, K]))]];
console.log(`grip-vlm ${info().version} · simd ${info().simd} · int8 kernel ${info().int8Kernel} · ${threads} threads · weights ${N}x${K}`);
console.log('| rows | f32 | bf16 | q8_0 | q8_0 weight bytes/s | bf16 / q8_0 |');
console.log('|---|---|---|---|---|---|');
for (const M of rowCounts) {
  const x = tensor(new Float32Array(M * K).map(() => random()), [M, K]);
  const times = new Map<string, number[]>(weights.map(([name]) => [name, []]));
  for (const [, w] of weights) ops.linearSync(x, w, null, { backend: 'cpu' }); // warm-up
  const n = M >= 64 ? Math.max(1, Math.floor(reps / 4)) : reps;
  for (let r = 0; r < n; r++)
    for (const [name, w] of r % 2 ? [...weights].reverse() : weights) {
      const t0 = performance.now();
      ops.linearSync(x, w, null, { backend: 'cpu' });
      times.get(name)!.push(performance.now() - t0);
    }
  const median = (a: number[]) => [...a].sort((p, q) => p - q)[a.length >> 1]!;
  const ms = Object.fromEntries([...times].map(([name, t]) => [name, median(t)])) as Record<string, number>;
  const q8Bytes = weights[2]![1].bytes;
  console.log(`| ${M} | ${ms.f32!.toFixed(2)} ms | ${ms.bf16!.toFixed(2)} ms | ${ms.q8_0!.toFixed(2)} ms | ${(q8Bytes / ms.q8_0! / 1e6).toFixed(1)} GB/s | ${(ms.bf16! / ms.q8_0!).toFixed(2)}x |`);
}
