// napi_guards.test.ts — the raw N-API binding (lib/native.ts) called the way
// lib/ never calls it: arguments missing, swapped, of the wrong type, tensors
// with bad shapes or short buffers, Hq = 0 attention. Each call must throw a
// GripError (or the caller's own exception), never abort the process: before
// these guards a failed tensor parse followed by a BigInt read aborted node
// ("FATAL ERROR: Error::New napi_get_last_error_info", the 7b5da9e finding).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { GripError } from '../lib/index.ts';
import { native, type NativeTensor } from '../lib/native.ts';

const test = suite('napi guards');
const addon = native() as unknown as Record<string, (...args: unknown[]) => unknown>;

function expectGripError(fn: () => unknown, code: string, message: string): void {
  let error: unknown;
  try {
    fn();
  } catch (e) {
    error = e;
  }
  assert.ok(error instanceof GripError, `expected ${code} "${message}" but got ${String(error)}`);
  assert.is((error as GripError).message, message);
  assert.is((error as GripError).code, code);
}

const f32 = (shape: number[], length = shape.reduce((a, b) => a * b, 1)): NativeTensor => ({ dtype: 'f32', shape, device: 'cpu', data: new Float32Array(length) });
const i32 = (shape: number[]): NativeTensor => ({ dtype: 'i32', shape, device: 'cpu', data: new Int32Array(shape.reduce((a, b) => a * b, 1)) });
const logits = f32([2, 4]), indices = i32([2, 1, 1]), logProb = f32([2, 1]);

test('gumbelTopk: a short buffer, then a BigInt read, throws instead of aborting', () => {
  expectGripError(() => addon.gumbelTopk!(0, f32([2, 4], 7), 1, 1, 1n, indices, logProb), 'ERR_GRIP_SHAPE', 'expected at least 32 bytes for data of logits but received 28');
  // The first failure wins: the bad seed after it is not read.
  expectGripError(() => addon.gumbelTopk!(0, f32([2, 4], 7), 1, 1, 'seed', indices, logProb), 'ERR_GRIP_SHAPE', 'expected at least 32 bytes for data of logits but received 28');
});

test('gumbelTopk: swapped, missing and wrongly typed arguments', () => {
  expectGripError(() => addon.gumbelTopk!(0, logits, 1n, 1, 1, indices, logProb), 'ERR_GRIP_RANGE', 'expected a number for k but received a bigint');
  expectGripError(() => addon.gumbelTopk!(0, logits, 1, 1, 1, indices, logProb), 'ERR_GRIP_RANGE', 'expected a BigInt in [0, 2^64) for seed but received number 1');
  expectGripError(() => addon.gumbelTopk!(0, logits, 1, 1, -1n, indices, logProb), 'ERR_GRIP_RANGE', 'expected a BigInt in [0, 2^64) for seed but received a bigint');
  expectGripError(() => addon.gumbelTopk!(0, logits, 1, 1, 1n << 64n, indices, logProb), 'ERR_GRIP_RANGE', 'expected a BigInt in [0, 2^64) for seed but received a bigint');
  expectGripError(() => addon.gumbelTopk!(0, logits, 1.5, 1, 1n, indices, logProb), 'ERR_GRIP_RANGE', 'expected an integer in [-2147483648, 2147483647] for k but received number 1.5');
  expectGripError(() => addon.gumbelTopk!(0, logits, 1, Symbol('s'), 1n, indices, logProb), 'ERR_GRIP_RANGE', 'expected a number for samples but received a symbol');
  expectGripError(() => addon.gumbelTopk!(0, logits, { valueOf() { throw new Error('coerced'); } }, 1, 1n, indices, logProb), 'ERR_GRIP_RANGE', 'expected a number for k but received an object');
  expectGripError(() => addon.gumbelTopk!(0, logits), 'ERR_GRIP_RANGE', 'expected a number for k but received undefined');
  expectGripError(() => addon.gumbelTopk!(0, logits, 1, 1, 1n, indices), 'ERR_GRIP_SHAPE', 'expected a Tensor for logProb but received undefined');
  expectGripError(() => addon.gumbelTopk!(), 'ERR_GRIP_RANGE', 'expected a number for mode but received undefined');
  // The C ABI's own range checks still run behind the binding.
  expectGripError(() => addon.gumbelTopk!(0, logits, 1, 0, 1n, i32([2, 0, 1]), f32([2, 0])), 'ERR_GRIP_RANGE', 'expected an integer >= 1 for samples but received 0');
});

test('the mode argument: a number, a known backend, | 4 when async', () => {
  expectGripError(() => addon.topk!('cpu', logits, new Int32Array([1, 1]), i32([2, 1]), f32([2, 1])), 'ERR_GRIP_RANGE', 'expected a number for mode but received a string');
  expectGripError(() => addon.topk!(3, logits, new Int32Array([1, 1]), i32([2, 1]), f32([2, 1])), 'ERR_GRIP_RANGE', 'expected 0 (cpu), 1 (cuda) or 2 (emu), | 4 when async, for mode but received 3');
  expectGripError(() => addon.topk!(8, logits, new Int32Array([1, 1]), i32([2, 1]), f32([2, 1])), 'ERR_GRIP_RANGE', 'expected an integer in [0, 6] for mode but received number 8');
  // Bad arguments in async mode throw at once (nothing is queued).
  expectGripError(() => addon.topk!(4, logits, new Float64Array([1, 1]), i32([2, 1]), f32([2, 1])), 'ERR_GRIP_SHAPE', 'expected an Int32Array for k but received another value');
});

test('tensor shapes: non-numbers, negative, fractional, NaN and byte counts that would wrap around', () => {
  const k = new Int32Array([1, 1]), idx = i32([2, 1]), val = f32([2, 1]);
  const scores = (shape: unknown[], length = 8): unknown => ({ dtype: 'f32', shape, device: 'cpu', data: new Float32Array(length) });
  const extents = (v: string) => `expected extents in [0, 2147483647] for shape of scores but received ${v}`;
  expectGripError(() => addon.topk!(0, scores([Symbol('d'), 4]), k, idx, val), 'ERR_GRIP_SHAPE', extents('a symbol at [0]'));
  expectGripError(() => addon.topk!(0, scores([2, -4]), k, idx, val), 'ERR_GRIP_SHAPE', extents('number -4 at [1]'));
  expectGripError(() => addon.topk!(0, scores([2, 2.5]), k, idx, val), 'ERR_GRIP_SHAPE', extents('number 2.5 at [1]'));
  expectGripError(() => addon.topk!(0, scores([NaN, 4]), k, idx, val), 'ERR_GRIP_SHAPE', extents('number NaN at [0]'));
  expectGripError(() => addon.topk!(0, scores(['2', 4]), k, idx, val), 'ERR_GRIP_SHAPE', extents('a string at [0]'));
  expectGripError(() => addon.topk!(0, scores([2 ** 31, 4]), k, idx, val), 'ERR_GRIP_SHAPE', extents('number 2147483648 at [0]'));
  // 4 * 65536^4 bytes = 2^66: a size_t product wraps to 0 and used to pass the byte check over an empty buffer.
  expectGripError(() => addon.gelu!(0, scores([65536, 65536, 65536, 65536], 0), 0, scores([1], 1)), 'ERR_GRIP_SHAPE', 'expected a size that fits in memory for shape of x but received more than 2^64 bytes');
  expectGripError(() => addon.topk!(0, scores(Array(9).fill(1)), k, idx, val), 'ERR_GRIP_SHAPE', 'expected at most 8 dimensions for scores but received 9');
  expectGripError(() => addon.topk!(0, { dtype: 'f64', shape: [2, 4], device: 'cpu', data: new Float64Array(8) }, k, idx, val), 'ERR_GRIP_DTYPE', 'expected f32, f16, bf16, i32 or q8_0 for dtype of scores but received f64');
  expectGripError(() => addon.topk!(0, { dtype: 'f32', shape: [2, 4], device: 'cpu', data: [0, 0] }, k, idx, val), 'ERR_GRIP_SHAPE', 'expected a TypedArray for data of scores but received another value');
  expectGripError(() => addon.topk!(0, { dtype: 'f32', shape: [2, 4], device: 'cuda', data: new Float32Array(8) }, k, idx, val), 'ERR_GRIP_DEVICE', 'expected a device buffer for data of scores but received another value');
});

test('a getter that throws propagates its own error, and nothing after it runs', () => {
  const trap = { dtype: 'f32', get shape(): number[] { throw new RangeError('from the getter'); }, device: 'cpu', data: new Float32Array(8) };
  assert.throws(() => addon.topk!(0, trap, new Int32Array([1, 1]), i32([2, 1]), f32([2, 1])), (e: Error) => e instanceof RangeError && e.message === 'from the getter');
  const params = new Proxy({}, { get() { throw new TypeError('from the proxy'); } });
  assert.throws(() => addon.scoreTokens!(0, f32([1, 2, 4]), f32([1, 4]), f32([1]), params, f32([1, 2])), (e: Error) => e instanceof TypeError && e.message === 'from the proxy');
});

test('host arrays must be Int32Arrays (a Uint8Array of R elements made attention read 4R bytes)', () => {
  const q = f32([1, 2, 2, 4]), kv = f32([1, 2, 3, 4]), out = f32([1, 2, 2, 4]);
  expectGripError(() => addon.attention!(0, q, kv, kv, true, 0.5, null, null, new Uint8Array(64), out, f32([1, 2, 64, 3])), 'ERR_GRIP_SHAPE', 'expected an Int32Array for probRows but received another value');
  expectGripError(() => addon.attention!(0, q, kv, kv, true, 0.5, new Float32Array(1), null, null, out, null), 'ERR_GRIP_SHAPE', 'expected an Int32Array for qLen but received another value');
  expectGripError(() => addon.attention!(0, q, kv, kv, true, '0.5', null, null, null, out, null), 'ERR_GRIP_RANGE', 'expected a number for scale but received a string');
  expectGripError(() => addon.compactKVInPlace!(0, f32([2, 1, 3, 2]), i32([2, 1]), new Int32Array(1)), 'ERR_GRIP_SHAPE', 'expected at least 8 bytes for newLengths but received 4');
});

test('attention with Hq = 0 or Hq not a multiple of Hkv through the raw binding (SIGFPE in the kernel before)', () => {
  const kv = f32([1, 2, 3, 4]);
  const msg = (hkv: number, shape: string) => `expected a positive multiple of Hkv = ${hkv} query heads [B,Tq,Hq,Dh] for q but received ${shape}`;
  expectGripError(() => addon.attention!(0, f32([1, 2, 0, 4]), kv, kv, true, 0.5, null, null, null, f32([1, 2, 0, 4]), null), 'ERR_GRIP_SHAPE', msg(2, '[1, 2, 0, 4]'));
  expectGripError(() => addon.attention!(0, f32([1, 2, 3, 4]), kv, kv, true, 0.5, null, null, null, f32([1, 2, 3, 4]), null), 'ERR_GRIP_SHAPE', msg(2, '[1, 2, 3, 4]'));
  const none = f32([1, 0, 3, 4]);
  expectGripError(() => addon.attention!(0, f32([1, 2, 2, 4]), none, none, true, 0.5, null, null, null, f32([1, 2, 2, 4]), null), 'ERR_GRIP_SHAPE', msg(0, '[1, 2, 2, 4]'));
});

test('scalars of the other ops are not coerced', () => {
  const x = f32([2, 4]), w = f32([4]);
  expectGripError(() => addon.layerNorm!(0, x, w, w, '1e-5', x), 'ERR_GRIP_RANGE', 'expected a number for eps but received a string');
  expectGripError(() => addon.rmsNorm!(0, x, w, undefined, x), 'ERR_GRIP_RANGE', 'expected a number for eps but received undefined');
  expectGripError(() => addon.rope!(0, f32([1, 1, 1, 4]), i32([1, 1]), null, f32([1, 1, 1, 4])), 'ERR_GRIP_RANGE', 'expected a number for theta but received null');
  expectGripError(() => addon.gelu!(0, x, 'erf', x), 'ERR_GRIP_RANGE', 'expected a number for kind but received a string');
  expectGripError(() => addon.adamw!(0, x, x, x, x, 1.5, 0.1, 0.9, 0.999, 1e-8, 0), 'ERR_GRIP_RANGE', 'expected an integer in [-9007199254740991, 9007199254740991] for step but received number 1.5');
  expectGripError(() => addon.adamw!(0, x, x, x, x, 1, 0.1, 0.9, 0.999, 1e-8), 'ERR_GRIP_RANGE', 'expected a number for weightDecay but received undefined');
});

test('library functions: setNumThreads, emuSetSchedule, cudaAlloc, cudaCopy', () => {
  expectGripError(() => addon.setNumThreads!('2'), 'ERR_GRIP_RANGE', 'expected a number for threads but received a string');
  expectGripError(() => addon.emuSetSchedule!(0, 1), 'ERR_GRIP_RANGE', 'expected a BigInt in [0, 2^64) for seed but received number 1');
  expectGripError(() => addon.emuSetSchedule!(undefined, 1n), 'ERR_GRIP_RANGE', 'expected a number for schedule but received undefined');
  expectGripError(() => addon.cudaAlloc!(-1), 'ERR_GRIP_RANGE', 'expected an integer in [0, 9007199254740991] for bytes but received number -1');
  expectGripError(() => addon.cudaCopy!({}, new Float32Array(4), true), 'ERR_GRIP_DEVICE', 'expected a device buffer and a TypedArray for copy but received an object and a TypedArray');
  expectGripError(() => addon.cudaCopy!(), 'ERR_GRIP_DEVICE', 'expected a device buffer and a TypedArray for copy but received undefined and undefined');
  addon.cudaFree!(42); // not a handle: nothing to free, no crash
});

test('decoder plans: bad layers, backends, ranges and handles; a plan is never read as a device buffer or the reverse', () => {
  const plan = (layers: unknown, heads: unknown = 1, mode = 0) => addon.decoderPlan!(mode, layers, heads, 1, 4, 8, 1e-6, 1e4);
  expectGripError(() => plan({}), 'ERR_GRIP_SHAPE', 'expected an array of layers for layers but received an object');
  expectGripError(() => plan([], 1, 1), 'ERR_GRIP_UNSUPPORTED', 'expected a cpu or emu backend for a decoder plan but received cuda');
  expectGripError(() => plan([1]), 'ERR_GRIP_SHAPE', 'expected a layer object for layers[0] but received number 1');
  expectGripError(() => plan([{ inputNorm: f32([4]) }]), 'ERR_GRIP_SHAPE', 'expected a Tensor for layers[0].postNorm but received undefined');
  expectGripError(() => plan([], 0), 'ERR_GRIP_RANGE', 'expected an integer in [1, 65536] for numHeads but received number 0');
  expectGripError(() => addon.decoderPlan!(0, [], 1, 1, 4, 8, '1e-6', 1e4), 'ERR_GRIP_RANGE', 'expected a number for rmsNormEps but received a string');
  const handle = plan([]);
  const x = f32([1, 1, 4]), pos = i32([1, 1]);
  const run = (mode: number, h: unknown, xt: unknown, tokens: unknown, to: number) => addon.decoderRun!(mode, h, xt, pos, tokens, new Int32Array(0), 0, to);
  expectGripError(() => run(0, {}, x, Int32Array.of(1), 0), 'ERR_GRIP_RANGE', 'expected a decoder plan for plan but received an object');
  expectGripError(() => run(2, handle, x, Int32Array.of(1), 0), 'ERR_GRIP_DEVICE', 'expected the backend the plan was made for (0) for mode but received 2');
  expectGripError(() => run(0, handle, x, Int32Array.of(1), 1), 'ERR_GRIP_RANGE', 'expected an integer in [0, 0] for to but received number 1');
  expectGripError(() => run(0, handle, x, Float64Array.of(1), 0), 'ERR_GRIP_SHAPE', 'expected an Int32Array for tokens but received another value');
  expectGripError(() => run(0, handle, f32([1, 4]), Int32Array.of(1), 0), 'ERR_GRIP_SHAPE', 'expected a tensor [B,T,D] for x but received 2 dimensions');
  run(0, handle, x, Int32Array.of(1), 0); // an empty range: nothing to do
  // Type tags: a plan where a device buffer is expected, and a device buffer's handle where a plan is.
  expectGripError(() => addon.cudaCopy!(handle, new Float32Array(4), true), 'ERR_GRIP_DEVICE', 'expected a device buffer and a TypedArray for copy but received an external and a TypedArray');
  addon.cudaFree!(handle); // not a device buffer: nothing freed
  expectGripError(() => addon.rmsNorm!(1, { dtype: 'f32', shape: [4], device: 'cuda', data: { handle } }, f32([4]), 1e-6, f32([4])), 'ERR_GRIP_DEVICE', 'expected a device buffer for data of x but received another value');
  addon.decoderPlanFree!(handle);
  expectGripError(() => addon.decoderPlanFree!(handle), 'ERR_GRIP_RANGE', 'expected a live decoder plan for plan but received a freed one');
  expectGripError(() => addon.decoderPlanFree!(42), 'ERR_GRIP_RANGE', 'expected a decoder plan for plan but received number 42');
});

test('the binding still runs a valid call after all of that', () => {
  const scores: NativeTensor = { dtype: 'f32', shape: [1, 4], device: 'cpu', data: Float32Array.of(0.1, 0.9, 0.3, 0.8) };
  const idx = i32([1, 2]), val = f32([1, 2]);
  addon.topk!(0, scores, Int32Array.of(2), idx, val);
  assert.equal(Array.from(idx.data as Int32Array), [1, 3]);
});

test.run();
