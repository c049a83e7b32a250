// gemv.test.ts — the decode GEMV (native/cpu/gemv*.cc: Linear with 1 to 4
// activation rows) against a plain float64 product, for f32/f16/bf16
// weights, k lengths around the kernels' 8/16/32-lane steps and tails, with
// a bias, and bit for bit the same on 1 and 2 threads and as each row alone.
// The native check test/native/gemv_check.cc runs it at every SIMD level
// (q8_0 weights: test/q8_0.test.ts and test/native/q8_0_check.cc).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { info, ops, setNumThreads, tensor, type Tensor } from '../lib/index.ts';
import { rng, uniform, valuesOf } from './helpers.ts';

/** y[m, n] = sum_k x[m, k] w[n, k] + bias[n] in float64, and sum_k |x||w| (the rounding scale). */
function refLinear(x: Float64Array, w: Float64Array, bias: Float64Array | null, M: number, N: number, K: number) {
  const y = new Float64Array(M * N), scale = new Float64Array(M * N);
  for (let m = 0; m < M; m++)
    for (let n = 0; n < N; n++) {
      let acc = bias ? bias[n]! : 0, mag = bias ? Math.abs(bias[n]!) : 0;
      for (let k = 0; k < K; k++) {
        const p = x[m * K + k]! * w[n * K + k]!;
        acc += p;
        mag += Math.abs(p);
      }
      y[m * N + n] = acc;
      scale[m * N + n] = mag;
    }
  return { y, scale };
}

const KS = [1, 7, 8, 15, 16, 17, 31, 32, 33, 63, 100, 4100];

for (const dtype of ['f32', 'f16', 'bf16'] as const) {
  test(`${dtype} weights: 1 to 4 rows match a float64 product (k tails, bias)`, () => {
    const r = rng(5);
    for (const K of KS) {
      for (let M = 1; M <= 4; M++) {
        const N = 37;
        const x = tensor(uniform(r, M * K), [M, K]);
        const w = tensor(uniform(r, N * K), [N, K], dtype);
        const bias = M % 2 === 0 ? tensor(uniform(r, N), [N]) : null;
        const got = ops.linearSync(x, w, bias, { backend: 'cpu' }).toFloat32();
        const { y, scale } = refLinear(valuesOf(x), valuesOf(w), bias ? valuesOf(bias) : null, M, N, K);
        // f32 products summed in f32: each partial sum rounds at most once per term (2K + 8 roundings at worst).
        for (let i = 0; i < M * N; i++) {
          const tol = 1.2e-7 * (2 * K + 8) * scale[i]! + 1e-30;
          assert.ok(Math.abs(got[i]! - y[i]!) <= tol, `${dtype} M=${M} K=${K} y[${i}] = ${got[i]} but the reference is ${y[i]} (tolerance ${tol})`);
        }
      }
    }
  });
}

test('a row gives the same bits alone, in a batch of 4, and on 1 or 2 threads', () => {
  const r = rng(9);
  const K = 4096 + 5, N = 300;
  const x = tensor(uniform(r, 4 * K), [4, K]);
  const w = tensor(uniform(r, N * K), [N, K], 'bf16');
  const bits = (t: Tensor) => Array.from(new Uint32Array((t.host as Float32Array).slice().buffer));
  const threads = info().threads;
  try {
    setNumThreads(2);
    const batch = bits(ops.linearSync(x, w, null, { backend: 'cpu' }));
    const alone = bits(ops.linearSync(tensor((x.host as Float32Array).slice(2 * K, 3 * K), [1, K]), w, null, { backend: 'cpu' }));
    assert.equal(alone, batch.slice(2 * N, 3 * N), 'row 2 alone vs in the batch');
    setNumThreads(1);
    assert.equal(bits(ops.linearSync(x, w, null, { backend: 'cpu' })), batch, '1 thread vs 2');
  } finally {
    setNumThreads(threads);
  }
});

test.run();
