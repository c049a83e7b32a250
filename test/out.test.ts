// out.test.ts — `{ out }` writes a result into the caller's tensor: same
// values as a fresh result, the very tensor returned, and a precise error
// when it cannot hold the result.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ops, tensor, zeros } from '../lib/index.ts';
import { caught, rng, scorerParams, uniform } from './helpers.ts';

const test = suite('out');

test('gatherRows, compactKV, matmul and scoreTokens write into out and return it', async () => {
  const r = rng(5);
  const x = tensor(uniform(r, 2 * 6 * 4), [2, 6, 4], 'bf16');
  const idx = tensor(Int32Array.of(5, -1, 0, 2, 3, 4), [2, 3]);
  const out = zeros([2, 3, 4], 'bf16');
  assert.is(ops.gatherRowsSync(x, idx, { out }), out);
  assert.equal(Array.from(out.host), Array.from(ops.gatherRowsSync(x, idx).host));

  const cache = tensor(uniform(r, 2 * 3 * 5 * 2), [2, 3, 5, 2]);
  const keep = tensor(Int32Array.of(0, 3, 4, 1, -1, -1), [2, 3]);
  const compacted = zeros([2, 3, 3, 2]);
  assert.is(await ops.compactKV(cache, keep, { out: compacted }), compacted);
  assert.equal(Array.from(compacted.host), Array.from(ops.compactKVSync(cache, keep).host));

  const a = tensor(uniform(r, 3 * 5), [3, 5]);
  const b = tensor(uniform(r, 4 * 5), [4, 5], 'f16');
  const product = zeros([3, 4]);
  assert.is(ops.matmulSync(a, b, { transB: true, out: product }), product);
  assert.equal(Array.from(product.host), Array.from(ops.matmulSync(a, b, { transB: true }).host));

  const { params } = scorerParams(r, 4, 3, 2);
  const q = tensor(uniform(r, 2 * 4), [2, 4]);
  const xs = tensor(uniform(r, 2 * 6 * 4), [2, 6, 4]);
  const scores = zeros([2, 6]);
  assert.is(ops.scoreTokensSync(xs, q, [0.5, 0.25], params, { out: scores }), scores);
  assert.equal(Array.from(scores.host), Array.from(ops.scoreTokensSync(xs, q, [0.5, 0.25], params).host));
});

test('an out that cannot hold the result is refused before the op runs', async () => {
  const x = tensor(new Float32Array(2 * 6 * 4), [2, 6, 4]);
  const idx = tensor(Int32Array.of(0, 1, 2, 3, 4, 5), [2, 3]);
  const wrongShape = await caught(() => ops.gatherRowsSync(x, idx, { out: zeros([2, 3, 5]) }));
  assert.is(wrongShape.code, 'ERR_GRIP_SHAPE');
  assert.is(wrongShape.message, 'expected f32 [2, 3, 4] on cpu for options.out but received f32 [2, 3, 5] on cpu');
  const wrongDtype = await caught(() => ops.gatherRowsSync(x, idx, { out: zeros([2, 3, 4], 'f16') }));
  assert.is(wrongDtype.code, 'ERR_GRIP_DTYPE');
  assert.is(wrongDtype.message, 'expected f32 [2, 3, 4] on cpu for options.out but received f16 [2, 3, 4] on cpu');
  const notTensor = await caught(() => ops.matmulSync(tensor([1], [1, 1]), tensor([1], [1, 1]), { out: [0] as never }));
  assert.is(notTensor.message, 'expected a Tensor f32 [1, 1] on cpu for options.out but received an array');
});

test.run();
