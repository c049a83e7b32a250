// q8_0_child.ts — run by test/q8_0.test.ts under each GRIP_SIMD value: one
// fixed q8_0 Linear (prefill and decode shapes), printed as the kernel name
// and the result bits, so the parent can compare every kernel's output.
import { info, ops, tensor } from '../lib/index.ts';
import { rng, uniform } from './helpers.ts';

const r = rng(23);
const K = 4096 + 64, N = 45;
const out: string[] = [];
for (const M of [1, 3, 4, 9, 16, 37]) {
  const x = tensor(uniform(r, M * K, 3), [M, K]);
  const w = ops.quantizeQ8_0Sync(tensor(uniform(r, N * K, 0.5), [N, K]));
  const bias = tensor(uniform(r, N), [N]);
  const y = ops.linearSync(x, w, bias, { backend: 'cpu' }).host as Float32Array;
  out.push(Buffer.from(y.buffer, y.byteOffset, y.byteLength).toString('base64'));
}
console.log(JSON.stringify({ kernel: info().int8Kernel, outputs: out }));
