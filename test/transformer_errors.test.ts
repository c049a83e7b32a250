// transformer_errors.test.ts — argument errors of the transformer ops with
// their exact code and message ("expected X for Y but received Z"), raised by
// lib/ before the addon runs (data-dependent errors — negative RoPE positions,
// embedding ids out of range — are checked per backend in transformer.test.ts).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { GripError, ops, tensor, zeros } from '../lib/index.ts';

const test = suite('transformer errors');

async function expectError(fn: () => unknown, code: string, message: string): Promise<void> {
  let error: unknown;
  try {
    const result = fn();
    if (result instanceof Promise) error = await result.then(() => undefined, (e: unknown) => e);
  } catch (e) {
    error = e;
  }
  assert.ok(error instanceof GripError, `expected ${code} "${message}" but got ${String(error)}`);
  assert.is((error as GripError).message, message);
  assert.is((error as GripError).code, code, `code (message: ${(error as GripError).message})`);
}

const x3 = zeros([2, 3, 8]);

test('linear: ranks, inner dimension, dtypes, bias and out', async () => {
  await expectError(() => ops.linearSync(zeros([]), zeros([4, 8]), null), 'ERR_GRIP_SHAPE', 'expected at least 1 dimension [..., K] for x but received 0 dimensions []');
  await expectError(() => ops.linearSync(x3, zeros([4, 7]), null), 'ERR_GRIP_SHAPE', 'expected [4, 8] [N,K] for weight but received [4, 7]');
  await expectError(() => ops.linearSync(x3, zeros([8]), null), 'ERR_GRIP_SHAPE', 'expected 2 dimensions [N,K] for weight but received 1 dimensions [8]');
  await expectError(() => ops.linearSync(x3, zeros([4, 8], 'i32'), null), 'ERR_GRIP_DTYPE', 'expected f32, f16, bf16 or q8_0 for dtype of weight but received i32');
  await expectError(() => ops.linearSync(zeros([2, 8], 'bf16'), zeros([4, 8]), null), 'ERR_GRIP_DTYPE', 'expected f32 for dtype of x but received bf16');
  await expectError(() => ops.linearSync(x3, zeros([4, 8]), zeros([5])), 'ERR_GRIP_SHAPE', 'expected [4] [N] for bias but received [5]');
  await expectError(() => ops.linearSync(x3, zeros([4, 8]), zeros([4], 'f16')), 'ERR_GRIP_DTYPE', 'expected f32 for dtype of bias but received f16');
  await expectError(() => ops.linearSync(x3, zeros([4, 8]), null, { out: zeros([6, 4]) }), 'ERR_GRIP_SHAPE', 'expected f32 [2, 3, 4] on cpu for options.out but received f32 [6, 4] on cpu');
  await expectError(() => ops.linear('x' as never, zeros([4, 8]), null), 'ERR_GRIP_SHAPE', 'expected a Tensor [..., K] for x but received the string "x"');
});

test('layerNorm / rmsNorm: weight and bias shapes, eps', async () => {
  await expectError(() => ops.layerNormSync(x3, zeros([7]), zeros([8]), 1e-5), 'ERR_GRIP_SHAPE', 'expected [8] [D] for weight but received [7]');
  await expectError(() => ops.layerNormSync(x3, zeros([8]), null as never, 1e-5), 'ERR_GRIP_SHAPE', 'expected a Tensor [D] for bias but received null');
  await expectError(() => ops.layerNormSync(x3, zeros([8]), zeros([8]), -1), 'ERR_GRIP_RANGE', 'expected a finite float32 >= 0 for eps but received number -1');
  await expectError(() => ops.rmsNormSync(x3, zeros([8]), NaN), 'ERR_GRIP_RANGE', 'expected a finite float32 >= 0 for eps but received number NaN');
  await expectError(() => ops.rmsNormSync(x3, zeros([8]), 1e39), 'ERR_GRIP_RANGE', 'expected a finite float32 >= 0 for eps but received number 1e+39');
  await expectError(() => ops.rmsNormSync(zeros([2, 3], 'i32'), zeros([3]), 1e-5), 'ERR_GRIP_DTYPE', 'expected f32 for dtype of x but received i32');
});

test('rope: layout, odd head dim, positions, theta', async () => {
  const x = zeros([2, 3, 4, 8]);
  await expectError(() => ops.ropeSync(zeros([2, 3, 8]), zeros([2, 3], 'i32'), 1e4), 'ERR_GRIP_SHAPE', 'expected 4 dimensions [B,T,H,Dh] for x but received 3 dimensions [2, 3, 8]');
  await expectError(() => ops.ropeSync(zeros([2, 3, 4, 7]), zeros([2, 3], 'i32'), 1e4), 'ERR_GRIP_SHAPE', 'expected an even head dim Dh [B,T,H,Dh] for x but received [2, 3, 4, 7]');
  await expectError(() => ops.ropeSync(x, zeros([2, 4], 'i32'), 1e4), 'ERR_GRIP_SHAPE', 'expected [2, 3] [B,T] for positions but received [2, 4]');
  await expectError(() => ops.ropeSync(x, zeros([2, 3]), 1e4), 'ERR_GRIP_DTYPE', 'expected i32 for dtype of positions but received f32');
  await expectError(() => ops.ropeSync(x, zeros([2, 3], 'i32'), 0), 'ERR_GRIP_RANGE', 'expected a finite number > 0 for theta but received number 0');
});

test('cacheWrite: shapes, per-row start and count, capacity', async () => {
  const cache = zeros([2, 2, 6, 4]);
  const src = zeros([2, 3, 2, 4]);
  await expectError(() => ops.cacheWriteSync(cache, zeros([2, 3, 1, 4]), [0, 0], [1, 1]), 'ERR_GRIP_SHAPE', 'expected [2, 3, 2, 4] [B,T,Hkv,Dh] for src but received [2, 3, 1, 4]');
  await expectError(() => ops.cacheWriteSync(zeros([2, 2, 6, 4], 'i32'), src, [0, 0], [1, 1]), 'ERR_GRIP_DTYPE', 'expected f32, f16 or bf16 for dtype of cache but received i32');
  await expectError(() => ops.cacheWriteSync(cache, zeros([2, 3, 2, 4], 'bf16'), [0, 0], [1, 1]), 'ERR_GRIP_DTYPE', 'expected f32 for dtype of src but received bf16');
  await expectError(() => ops.cacheWriteSync(cache, src, [0, 0], [1]), 'ERR_GRIP_SHAPE', 'expected 2 values [B] for count but received 1');
  await expectError(() => ops.cacheWriteSync(cache, src, [0, 0], [1, 4]), 'ERR_GRIP_RANGE', 'expected values in [0, 3] for count but received 4 at [1]');
  await expectError(() => ops.cacheWriteSync(cache, src, [-1, 0], [1, 1]), 'ERR_GRIP_RANGE', 'expected values in [0, 6] for start but received -1 at [0]');
  await expectError(() => ops.cacheWriteSync(cache, src, [0, 4], [1, 3]), 'ERR_GRIP_RANGE', 'expected start + count <= Tmax = 6 for row 1 but received 4 + 3');
  await expectError(() => ops.cacheWriteSync(cache, src, null as never, [1, 1]), 'ERR_GRIP_RANGE', 'expected an array of 2 integers for start but received null');
  await expectError(() => ops.cacheWriteSync(cache, src, [0, 0.5], [1, 1]), 'ERR_GRIP_RANGE', 'expected values in [0, 6] for start but received 0.5 at [1]');
});

test('attention: shapes, heads, lengths, probRows, scale', async () => {
  const q = zeros([2, 3, 4, 8]), k = zeros([2, 2, 5, 8]), v = zeros([2, 2, 5, 8]);
  await expectError(() => ops.attentionSync(q, zeros([2, 2, 5, 6]), v), 'ERR_GRIP_SHAPE', 'expected [2, 2, 5, 8] [B,Hkv,Tk,Dh] for k but received [2, 2, 5, 6]');
  await expectError(() => ops.attentionSync(q, k, zeros([2, 2, 4, 8])), 'ERR_GRIP_SHAPE', 'expected [2, 2, 5, 8] [B,Hkv,Tk,Dh] for v but received [2, 2, 4, 8]');
  await expectError(() => ops.attentionSync(zeros([2, 3, 3, 8]), k, v), 'ERR_GRIP_SHAPE', 'expected a positive multiple of Hkv = 2 query heads [B,Tq,Hq,Dh] for q but received [2, 3, 3, 8]');
  // Hq = 0 < Hkv made the native head group Hq / Hkv zero: SIGFPE before 7b5da9e (a fuzz finding).
  await expectError(() => ops.attentionSync(zeros([2, 3, 0, 8]), k, v), 'ERR_GRIP_SHAPE', 'expected a positive multiple of Hkv = 2 query heads [B,Tq,Hq,Dh] for q but received [2, 3, 0, 8]');
  await expectError(() => ops.attention(zeros([2, 3, 0, 8]), k, v), 'ERR_GRIP_SHAPE', 'expected a positive multiple of Hkv = 2 query heads [B,Tq,Hq,Dh] for q but received [2, 3, 0, 8]');
  await expectError(() => ops.attentionSync(zeros([2, 3, 1, 8]), k, v), 'ERR_GRIP_SHAPE', 'expected a positive multiple of Hkv = 2 query heads [B,Tq,Hq,Dh] for q but received [2, 3, 1, 8]');
  await expectError(() => ops.attentionSync(zeros([2, 3, 2, 8]), zeros([2, 0, 5, 8]), zeros([2, 0, 5, 8])), 'ERR_GRIP_SHAPE', 'expected a positive multiple of Hkv = 0 query heads [B,Tq,Hq,Dh] for q but received [2, 3, 2, 8]');
  await expectError(() => ops.attentionSync(q, zeros([2, 2, 5, 8], 'f16'), v), 'ERR_GRIP_DTYPE', 'expected f32 for dtype of k but received f16');
  await expectError(() => ops.attentionSync(q, k, v, { kvLen: [5, 6] }), 'ERR_GRIP_RANGE', 'expected values in [0, 5] for kvLen but received 6 at [1]');
  await expectError(() => ops.attentionSync(q, k, v, { kvLen: [5] }), 'ERR_GRIP_SHAPE', 'expected 2 values [B] for kvLen but received 1');
  await expectError(() => ops.attentionSync(q, k, v, { kvLen: [5, 2] }), 'ERR_GRIP_RANGE', 'expected Tq <= kvLen (or an explicit qLen) for q but received Tq = 3 > kvLen = 2 at [1]');
  await expectError(() => ops.attentionSync(q, k, v, { kvLen: [5, 2], qLen: [3, 3] }), 'ERR_GRIP_RANGE', 'expected values in [0, 2] (qLen <= Tq and qLen <= kvLen) for qLen but received 3 at [1]');
  await expectError(() => ops.attentionSync(q, k, v, { qLen: [4, 1] }), 'ERR_GRIP_RANGE', 'expected values in [0, 3] (qLen <= Tq and qLen <= kvLen) for qLen but received 4 at [0]');
  await expectError(() => ops.attentionSync(q, k, v, { probRows: [0, 3] }), 'ERR_GRIP_RANGE', 'expected values in [0, 2] for probRows but received 3 at [1]');
  await expectError(() => ops.attentionSync(q, k, v, { probRows: 2 as never }), 'ERR_GRIP_RANGE', 'expected an array of query row indices for probRows but received number 2');
  await expectError(() => ops.attentionSync(q, k, v, { scale: Infinity }), 'ERR_GRIP_RANGE', 'expected a finite float32 for options.scale but received number Infinity');
  await expectError(() => ops.attentionSync(q, k, v, { causal: 1 as never }), 'ERR_GRIP_RANGE', 'expected a boolean for options.causal but received number 1');
  await expectError(() => ops.attentionSync(q, k, v, { out: zeros([2, 3, 4, 7]) }), 'ERR_GRIP_SHAPE', 'expected f32 [2, 3, 4, 8] on cpu for options.out but received f32 [2, 3, 4, 7] on cpu');
  await expectError(() => ops.attention(q, k, v, { qLen: [1, -1] }), 'ERR_GRIP_RANGE', 'expected values in [0, 3] (qLen <= Tq and qLen <= kvLen) for qLen but received -1 at [1]');
});

test('gelu, siluMul, add, softmax, embedding', async () => {
  await expectError(() => ops.geluSync(x3, 'relu' as never), 'ERR_GRIP_RANGE', `expected one of 'erf', 'tanh', 'quick' for kind but received the string "relu"`);
  await expectError(() => ops.geluSync(zeros([3], 'f16'), 'erf'), 'ERR_GRIP_DTYPE', 'expected f32 for dtype of x but received f16');
  await expectError(() => ops.siluMulSync(x3, zeros([2, 3, 7])), 'ERR_GRIP_SHAPE', 'expected [2, 3, 8] (the shape of gate) for up but received [2, 3, 7]');
  await expectError(() => ops.addSync(x3, zeros([2, 8])), 'ERR_GRIP_SHAPE', 'expected a trailing part of [2, 3, 8] (the shape of a) for b but received [2, 8]');
  await expectError(() => ops.addSync(zeros([8]), zeros([2, 8])), 'ERR_GRIP_SHAPE', 'expected a trailing part of [8] (the shape of a) for b but received [2, 8]');
  await expectError(() => ops.softmaxSync(zeros([])), 'ERR_GRIP_SHAPE', 'expected at least 1 dimension [..., N] for x but received 0 dimensions []');
  await expectError(() => ops.softmaxSync(x3, { log: 'yes' as never }), 'ERR_GRIP_RANGE', 'expected a boolean for options.log but received the string "yes"');
  await expectError(() => ops.embeddingSync(zeros([10, 4]), zeros([3])), 'ERR_GRIP_DTYPE', 'expected i32 for dtype of ids but received f32');
  await expectError(() => ops.embeddingSync(zeros([10, 4, 1]), zeros([3], 'i32')), 'ERR_GRIP_SHAPE', 'expected 2 dimensions [V,D] for table but received 3 dimensions [10, 4, 1]');
  await expectError(() => ops.embeddingSync(zeros([10, 4]), zeros([1, 1, 1, 1, 1, 1, 1, 1], 'i32')), 'ERR_GRIP_SHAPE', 'expected at most 7 dimensions for ids but received 8 dimensions');
  await expectError(() => ops.embeddingSync(zeros([10, 4]), tensor(Int32Array.of(1), [1]), { out: zeros([1, 4], 'bf16') }), 'ERR_GRIP_DTYPE', 'expected f32 [1, 4] on cpu for options.out but received bf16 [1, 4] on cpu');
});

test.run();
