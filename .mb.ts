import { ops, setNumThreads, tensor, info } from './lib/index.ts';
setNumThreads(Number(process.argv[2] ?? 1));
const N = 4096, K = 4096;
const wf = new Float32Array(N * K).map(() => Math.random() - 0.5);
const W = { f32: tensor(wf, [N, K]), bf16: tensor(wf, [N, K], 'bf16'), q8: ops.quantizeQ8_0Sync(tensor(wf, [N, K])) };
for (const M of [1, 4, 64]) {
  const x = tensor(new Float32Array(M * K).map(() => Math.random()), [M, K]);
  const res: string[] = [];
  for (const [name, w] of Object.entries(W)) {
    for (let i = 0; i < 3; i++) ops.linearSync(x, w, null, { backend: 'cpu' });
    const reps = M === 64 ? 5 : 30;
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) ops.linearSync(x, w, null, { backend: 'cpu' });
    const ms = (performance.now() - t0) / reps;
    res.push(`${name} ${ms.toFixed(2)} ms (${(w.bytes / ms / 1e6).toFixed(1)} GB/s)`);
  }
  console.log(`M=${M}: ${res.join(' | ')}  [${info().int8Kernel}]`);
}
