// matmul.test.ts — the GEMM op against a plain float64 matmul, on every
// backend, for f32/f16/bf16 weights, both weight layouts and awkward sizes
// (edge tiles of the packed kernels and of the CUDA 64x64 tiles).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ops, tensor } from '../lib/index.ts';
import { BACKENDS, caught, normErr, on, reportSkips, rng, uniform, valuesOf } from './helpers.ts';

const test = suite('matmul');
reportSkips('matmul.test.ts');

function refMatmul(a: ArrayLike<number>, b: ArrayLike<number>, M: number, N: number, K: number, transB: boolean): Float64Array {
  const out = new Float64Array(M * N);
  for (let i = 0; i < M; i++)
    for (let j = 0; j < N; j++) {
      let acc = 0;
      for (let p = 0; p < K; p++) acc += a[i * K + p]! * b[transB ? j * K + p : p * N + j]!;
      out[i * N + j] = acc;
    }
  return out;
}

const SHAPES: [number, number, number][] = [[1, 1, 1], [7, 13, 5], [33, 65, 129], [70, 3, 64], [5, 8, 0]];

for (const run of BACKENDS) {
  for (const dtype of ['f32', 'f16', 'bf16'] as const) {
    for (const transB of [false, true]) {
      const name = `${run.name}: ${dtype} weights${transB ? ' [N,K]' : ''} match a float64 matmul`;
      if (run.skip) {
        test.skip(name, () => {});
        continue;
      }
      test(name, () => {
        const r = rng(11);
        for (const [M, N, K] of SHAPES) {
          const a = tensor(uniform(r, M * K), [M, K]);
          const b = tensor(uniform(r, K * N), transB ? [N, K] : [K, N], dtype);
          const out = ops.matmulSync(a, b, { ...on(run), transB });
          assert.equal(out.shape, [M, N]);
          // Products of f32 values summed in f32: error grows like sqrt(K) ulps.
          const err = normErr(out.toFloat32(), refMatmul(valuesOf(a), valuesOf(b), M, N, K, transB));
          assert.ok(err < 2e-6 * Math.max(1, Math.sqrt(K)), `[${M},${N},${K}] normalised error ${err}`);
        }
      });
    }
  }
}

test('async and sync matmul agree bit for bit', async () => {
  const r = rng(3);
  const a = tensor(uniform(r, 40 * 50), [40, 50]);
  const b = tensor(uniform(r, 50 * 30), [50, 30], 'bf16');
  const sync = ops.matmulSync(a, b, { backend: 'cpu' });
  const async = await ops.matmul(a, b, { backend: 'cpu' });
  assert.equal(Array.from(async.host), Array.from(sync.host));
});

test('matmul names the mismatched inner dimension', async () => {
  const a = tensor(new Float32Array(6), [2, 3]);
  const e1 = await caught(() => ops.matmulSync(a, tensor(new Float32Array(8), [4, 2])));
  assert.is(e1.code, 'ERR_GRIP_SHAPE');
  assert.is(e1.message, 'expected [3, 2] [K,N] for b but received [4, 2]');
  const e2 = await caught(() => ops.matmulSync(a, tensor(new Float32Array(8), [2, 4]), { transB: true }));
  assert.is(e2.message, 'expected [2, 3] [N,K] for b but received [2, 4]');
  const e3 = await caught(() => ops.matmulSync(tensor(new Int32Array(6), [2, 3]), tensor(new Float32Array(6), [3, 2])));
  assert.is(e3.code, 'ERR_GRIP_DTYPE');
  assert.is(e3.message, 'expected f32 for dtype of a but received i32');
});

test.run();
