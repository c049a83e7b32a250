// errors.test.ts — every error path of the public API with its exact code and
// message ("expected X for Y but received Z"). Argument errors come from
// lib/validate.ts before the addon is called; data-dependent errors come from
// native/core/errors.h and must read the same on every backend.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { deviceMemory, GripError, info, ops, setBackend, getBackend, setEmulatorSchedule, setNumThreads, Tensor, tensor, zeros } from '../lib/index.ts';
import { BACKENDS, on, reportSkips, rng, scorerParams, uniform, type BackendRun } from './helpers.ts';
import { native } from '../lib/native.ts';

const test = suite('errors');
reportSkips('errors.test.ts');

/** Runs fn (sync, or a Promise that must reject) and checks the GripError's code and message. */
async function expectError(fn: () => unknown, code: string, message: string, what = ''): Promise<void> {
  let error: unknown;
  let result: unknown;
  try {
    result = fn();
  } catch (e) {
    error = e;
  }
  if (error === undefined && result instanceof Promise) {
    error = await result.then(() => undefined, (e: unknown) => e);
  }
  const prefix = what ? `${what}: ` : '';
  assert.ok(error !== undefined, `${prefix}expected ${code} "${message}" but the call succeeded`);
  assert.ok(error instanceof GripError, `${prefix}expected a GripError but got ${String(error)}`);
  const e = error as GripError;
  assert.is(e.name, 'GripError', `${prefix}name`);
  assert.is(e.message, message, `${prefix}message`);
  assert.is(e.code, code, `${prefix}code (message: ${e.message})`);
}

const S = tensor([1, 2, 3, 4, 5, 6, 7, 8], [2, 4]);
const D = 8, H = 4, R = 2;
const sp = scorerParams(rng(1), D, H, R);
const X = tensor(uniform(rng(2), 2 * 3 * D), [2, 3, D]);
const Q = tensor(uniform(rng(3), 2 * D), [2, D]);
const withParam = (name: string, value: unknown) => ({ ...sp.params, [name]: value }) as typeof sp.params;

// ---- wrong types / ndim / shapes / dtypes ------------------------------------------------

test('non-Tensor arguments are ERR_GRIP_SHAPE naming the argument and what was received', async () => {
  await expectError(() => ops.topkSync('x' as never, 1), 'ERR_GRIP_SHAPE', 'expected a Tensor [B,N] for scores but received the string "x"');
  await expectError(() => ops.topkSync(null as never, 1), 'ERR_GRIP_SHAPE', 'expected a Tensor [B,N] for scores but received null');
  await expectError(() => ops.topkSync(new Float32Array(4) as never, 1), 'ERR_GRIP_SHAPE', 'expected a Tensor [B,N] for scores but received Float32Array');
  await expectError(() => ops.topkSync([1, 2] as never, 1), 'ERR_GRIP_SHAPE', 'expected a Tensor [B,N] for scores but received an array');
  await expectError(() => ops.topkSync({} as never, 1), 'ERR_GRIP_SHAPE', 'expected a Tensor [B,N] for scores but received an object');
  await expectError(() => ops.gatherRowsSync(X, 3 as never), 'ERR_GRIP_SHAPE', 'expected a Tensor [B,K] for indices but received number 3');
  await expectError(() => ops.compactKVSync(true as never, S), 'ERR_GRIP_SHAPE', 'expected a Tensor [B,Hkv,T,Dh] for cache but received boolean true');
});

test('an undefined argument reads "received undefined"', async () => {
  // describe(undefined) in lib/tensor.ts prints "undefined undefined".
  await expectError(() => ops.topkSync(undefined as never, 1), 'ERR_GRIP_SHAPE', 'expected a Tensor [B,N] for scores but received undefined');
});

test('wrong number of dimensions is ERR_GRIP_SHAPE', async () => {
  await expectError(() => ops.topkSync(tensor([1, 2, 3], [3]), 1), 'ERR_GRIP_SHAPE', 'expected 2 dimensions [B,N] for scores but received 1 dimensions [3]');
  await expectError(() => ops.scoreTokensSync(S, Q, 0.5, sp.params), 'ERR_GRIP_SHAPE', 'expected 3 dimensions [B,N,D] for x but received 2 dimensions [2, 4]');
  await expectError(() => ops.compactKVSync(X, tensor(Int32Array.of(0, 1), [2, 1])), 'ERR_GRIP_SHAPE', 'expected 4 dimensions [B,Hkv,T,Dh] for cache but received 3 dimensions [2, 3, 8]');
  await expectError(() => ops.plackettLuceLogProbSync(S, tensor(Int32Array.of(0, 1), [2, 1])), 'ERR_GRIP_SHAPE', 'expected 3 dimensions [B,G,k] for indices but received 2 dimensions [2, 1]');
});

test('mismatched extents are ERR_GRIP_SHAPE with the expected shape', async () => {
  await expectError(() => ops.scoreTokensSync(X, tensor(new Float32Array(2 * 9), [2, 9]), 0.5, sp.params), 'ERR_GRIP_SHAPE', 'expected [2, 8] [B,D] for query but received [2, 9]');
  await expectError(() => ops.scoreTokensSync(X, Q, 0.5, withParam('w1', zeros([D, H + 1]))), 'ERR_GRIP_SHAPE', 'expected [8, 4] [D,H] for params.w1 but received [8, 5]');
  await expectError(() => ops.scoreTokensSync(X, Q, 0.5, withParam('filmW', zeros([15, 2 * H]))), 'ERR_GRIP_SHAPE', 'expected [16, 8] [16,2H] for params.filmW but received [15, 8]');
  await expectError(() => ops.scoreTokensSync(X, Q, 0.5, withParam('lnWeight', zeros([D - 1]))), 'ERR_GRIP_SHAPE', 'expected [8] [D] for params.lnWeight but received [7]');
  await expectError(() => ops.scoreTokensSync(X, Q, 0.5, withParam('wk', zeros([D, R + 1]))), 'ERR_GRIP_SHAPE', 'expected [8, 2] [D,R] for params.wk but received [8, 3]');
  await expectError(() => ops.scoreTokensSync(X, Q, 0.5, withParam('b2', zeros([2]))), 'ERR_GRIP_SHAPE', 'expected [1] [1] for params.b2 but received [2]');
  await expectError(() => ops.scoreTokensBackwardSync(X, Q, 0.5, sp.params, zeros([2, 4])), 'ERR_GRIP_SHAPE', 'expected [2, 3] [B,N] for dScores but received [2, 4]');
  await expectError(() => ops.plackettLuceBackwardSync(S, tensor(Int32Array.of(0, 1, 2, 3), [2, 1, 2]), zeros([2, 2])), 'ERR_GRIP_SHAPE', 'expected [2, 1] [B,G] for dLogProb but received [2, 2]');
});

test('a batch mismatch of gather / PL / compact indices names the full expected shape', async () => {
  // check.tensor with a partial `expected` ([B]) prints only "[2]" as the expected shape.
  await expectError(() => ops.gatherRowsSync(X, tensor(Int32Array.of(0), [1, 1])), 'ERR_GRIP_SHAPE', 'expected [2, 1] [B,K] for indices but received [1, 1]');
  await expectError(() => ops.compactKVSync(zeros([2, 1, 4, 1]), tensor(Int32Array.of(0), [1, 1])), 'ERR_GRIP_SHAPE', 'expected [2, 1] [B,K] for keep but received [1, 1]');
  await expectError(() => ops.plackettLuceLogProbSync(S, tensor(Int32Array.of(0, 1, 2, 3, 0, 1), [1, 3, 2])), 'ERR_GRIP_SHAPE', 'expected [2, 3, 2] [B,G,k] for indices but received [1, 3, 2]');
});

test('scorer params: not an object, missing tensors, H < 1, R < 1', async () => {
  await expectError(() => ops.scoreTokensSync(X, Q, 0.5, null as never), 'ERR_GRIP_SHAPE', 'expected scorer params for params but received null');
  await expectError(() => ops.scoreTokensSync(X, Q, 0.5, withParam('filmB', [0, 0])), 'ERR_GRIP_SHAPE', 'expected a Tensor [2H] for params.filmB but received an array');
  await expectError(() => ops.scoreTokensSync(X, Q, 0.5, withParam('b1', zeros([0]))), 'ERR_GRIP_SHAPE', 'expected H >= 1 [H] for params.b1 but received [0]');
  await expectError(() => ops.scoreTokensSync(X, Q, 0.5, withParam('wq', zeros([D, 0]))), 'ERR_GRIP_SHAPE', 'expected R >= 1 [D,R] for params.wq but received [8, 0]');
});

test('wrong dtypes are ERR_GRIP_DTYPE', async () => {
  await expectError(() => ops.topkSync(tensor([1, 2], [1, 2], 'f16'), 1), 'ERR_GRIP_DTYPE', 'expected f32 for dtype of scores but received f16');
  await expectError(() => ops.scoreTokensSync(tensor(Int32Array.from({ length: 2 * 3 * D }), [2, 3, D]), Q, 0.5, sp.params), 'ERR_GRIP_DTYPE', 'expected f32, f16 or bf16 for dtype of x but received i32');
  await expectError(() => ops.scoreTokensSync(X, tensor(new Float32Array(2 * D), [2, D], 'bf16'), 0.5, sp.params), 'ERR_GRIP_DTYPE', 'expected f32 for dtype of query but received bf16');
  await expectError(() => ops.scoreTokensSync(X, Q, tensor([0.5, 0.5], [2], 'f16'), sp.params), 'ERR_GRIP_DTYPE', 'expected f32 for dtype of keepRatio but received f16');
  await expectError(() => ops.scoreTokensSync(X, Q, 0.5, withParam('w2', zeros([H], 'bf16'))), 'ERR_GRIP_DTYPE', 'expected f32 for dtype of params.w2 but received bf16');
  await expectError(() => ops.gatherRowsSync(X, tensor([0, 1], [2, 1])), 'ERR_GRIP_DTYPE', 'expected i32 for dtype of indices but received f32');
  await expectError(() => ops.gumbelTopkSync(tensor(Int32Array.of(1, 2), [1, 2]), 1, { samples: 1, seed: 1 }), 'ERR_GRIP_DTYPE', 'expected f32 for dtype of logits but received i32');
  await expectError(() => ops.compactKVSync(zeros([1, 1, 2, 1], 'i32'), tensor(Int32Array.of(0), [1, 1])), 'ERR_GRIP_DTYPE', 'expected f32, f16 or bf16 for dtype of cache but received i32');
});

// ---- ranges ------------------------------------------------------------------------------

test('topk k out of range (number, per row, wrong count)', async () => {
  await expectError(() => ops.topkSync(S, 5), 'ERR_GRIP_RANGE', 'expected an integer in [0, 4] for k but received number 5');
  await expectError(() => ops.topkSync(S, -1), 'ERR_GRIP_RANGE', 'expected an integer in [0, 4] for k but received number -1');
  await expectError(() => ops.topkSync(S, 1.5), 'ERR_GRIP_RANGE', 'expected an integer in [0, 4] for k but received number 1.5');
  await expectError(() => ops.topkSync(S, [1, 9]), 'ERR_GRIP_RANGE', 'expected an integer in [0, 4] for k[1] but received number 9');
  await expectError(() => ops.topkSync(S, [1, 2, 3]), 'ERR_GRIP_SHAPE', 'expected 2 values [B] for k but received 3');
  await expectError(() => ops.topkSync(S, null as never), 'ERR_GRIP_RANGE', 'expected a number or one k per row for k but received null');
});

test('gumbelTopk k, samples and seed out of range', async () => {
  const opts = { samples: 2, seed: 1 };
  await expectError(() => ops.gumbelTopkSync(S, 5, opts), 'ERR_GRIP_RANGE', 'expected an integer in [0, 4] for k but received number 5');
  await expectError(() => ops.gumbelTopkSync(S, 1, { samples: 0, seed: 1 }), 'ERR_GRIP_RANGE', 'expected an integer in [1, 2147483647] for samples but received number 0');
  await expectError(() => ops.gumbelTopkSync(S, 1, { samples: 1.5, seed: 1 }), 'ERR_GRIP_RANGE', 'expected an integer in [1, 2147483647] for samples but received number 1.5');
  const seedMsg = (v: string) => `expected an integer in [0, 2^64) (number or bigint) for seed but received ${v}`;
  await expectError(() => ops.gumbelTopkSync(S, 1, { samples: 1, seed: -1 }), 'ERR_GRIP_RANGE', seedMsg('-1'));
  await expectError(() => ops.gumbelTopkSync(S, 1, { samples: 1, seed: 0.5 }), 'ERR_GRIP_RANGE', seedMsg('0.5'));
  await expectError(() => ops.gumbelTopkSync(S, 1, { samples: 1, seed: 2 ** 53 }), 'ERR_GRIP_RANGE', seedMsg('9007199254740992'));
  await expectError(() => ops.gumbelTopkSync(S, 1, { samples: 1, seed: 1n << 64n }), 'ERR_GRIP_RANGE', seedMsg('18446744073709551616n'));
  await expectError(() => ops.gumbelTopkSync(S, 1, { samples: 1, seed: -1n }), 'ERR_GRIP_RANGE', seedMsg('-1n'));
  await expectError(() => ops.gumbelTopkSync(S, 1, { samples: 1, seed: '7' as never }), 'ERR_GRIP_RANGE', seedMsg('7'));
  await expectError(() => ops.gumbelTopkSync(S, 1, undefined as never), 'ERR_GRIP_RANGE', 'expected options { samples, seed } for options but received undefined');
});

test('keepRatio outside (0, 1] or of the wrong length', async () => {
  const num = (v: string) => `expected a number in (0, 1] for keepRatio but received ${v}`;
  await expectError(() => ops.scoreTokensSync(X, Q, 0, sp.params), 'ERR_GRIP_RANGE', num('number 0'));
  await expectError(() => ops.scoreTokensSync(X, Q, 1.5, sp.params), 'ERR_GRIP_RANGE', num('number 1.5'));
  await expectError(() => ops.scoreTokensSync(X, Q, NaN, sp.params), 'ERR_GRIP_RANGE', num('number NaN'));
  await expectError(() => ops.scoreTokensSync(X, Q, [0.5, 0], sp.params), 'ERR_GRIP_RANGE', 'expected values in (0, 1] for keepRatio but received 0 at [1]');
  await expectError(() => ops.scoreTokensSync(X, Q, tensor([-0.5, 0.5], [2]), sp.params), 'ERR_GRIP_RANGE', 'expected values in (0, 1] for keepRatio but received -0.5 at [0]');
  await expectError(() => ops.scoreTokensSync(X, Q, [0.5, 0.5, 0.5], sp.params), 'ERR_GRIP_SHAPE', 'expected 2 values [B] for keepRatio but received 3');
  await expectError(() => ops.scoreTokensSync(X, Q, tensor([0.5], [1]), sp.params), 'ERR_GRIP_SHAPE', 'expected [2] [B] for keepRatio but received [1]');
});

// ---- the op fuzzer's findings (fixed in 7b5da9e): each one crashed or threw a TypeError before ----

test('a Tensor over a too-short buffer is ERR_GRIP_SHAPE (aborted node in gumbelTopk before)', async () => {
  const short = new Tensor('f32', [2, 4], new Float32Array(7), 'cpu');
  const msg = (what: string) => `expected at least 32 bytes for data of ${what} but received 28`;
  await expectError(() => ops.gumbelTopkSync(short, 1, { samples: 1, seed: 1 }), 'ERR_GRIP_SHAPE', msg('logits'));
  await expectError(() => ops.gumbelTopk(short, 1, { samples: 1, seed: 1 }), 'ERR_GRIP_SHAPE', msg('logits'), 'async');
  await expectError(() => ops.topkSync(short, 1), 'ERR_GRIP_SHAPE', msg('scores'));
  const shortI32 = new Tensor('i32', [2, 2], new Int32Array(4).subarray(0, 3), 'cpu');
  await expectError(() => ops.gatherRowsSync(X, shortI32), 'ERR_GRIP_SHAPE', 'expected at least 16 bytes for data of indices but received 12');
});

test('keepRatio null, undefined, a BigInt or non-number elements is ERR_GRIP_RANGE (a TypeError or a silent coercion before)', async () => {
  const whole = (v: string) => `expected a number in (0, 1], an array of B numbers or a Tensor [B] for keepRatio but received ${v}`;
  await expectError(() => ops.scoreTokensSync(X, Q, null as never, sp.params), 'ERR_GRIP_RANGE', whole('null'));
  await expectError(() => ops.scoreTokensSync(X, Q, undefined as never, sp.params), 'ERR_GRIP_RANGE', whole('undefined'));
  await expectError(() => ops.scoreTokensSync(X, Q, 1n as never, sp.params), 'ERR_GRIP_RANGE', whole('bigint 1'));
  await expectError(() => ops.scoreTokensSync(X, Q, 'half' as never, sp.params), 'ERR_GRIP_RANGE', whole('the string "half"'));
  const element = (v: string) => `expected values in (0, 1] for keepRatio but received ${v}`;
  await expectError(() => ops.scoreTokensSync(X, Q, [0.5, '0.5'] as never, sp.params), 'ERR_GRIP_RANGE', element('the string "0.5" at [1]'));
  await expectError(() => ops.scoreTokensSync(X, Q, [1n, 0.5] as never, sp.params), 'ERR_GRIP_RANGE', element('bigint 1 at [0]'));
  await expectError(() => ops.scoreTokensSync(X, Q, [0.5, null] as never, sp.params), 'ERR_GRIP_RANGE', element('null at [1]'));
  await expectError(() => ops.scoreTokensBackwardSync(X, Q, [undefined, 0.5] as never, sp.params, zeros([2, 3])), 'ERR_GRIP_RANGE', element('undefined at [0]'));
});

test('PL / compact shape limits: k > N, K > T', async () => {
  await expectError(() => ops.plackettLuceLogProbSync(S, zeros([2, 1, 5], 'i32')), 'ERR_GRIP_SHAPE', 'expected k <= N = 4 [B,G,k] for indices but received [2, 1, 5]');
  await expectError(() => ops.compactKVSync(zeros([1, 1, 4, 2]), tensor(Int32Array.of(0, 1, 2, 3, -1), [1, 5])), 'ERR_GRIP_SHAPE', 'expected K <= T = 4 [B,K] for keep but received [1, 5]');
  await expectError(() => ops.compactKVInPlaceSync(zeros([1, 1, 4, 2]), tensor(Int32Array.of(0, 1, 2, 3, -1), [1, 5])), 'ERR_GRIP_SHAPE', 'expected K <= T = 4 [B,K] for keep but received [1, 5]');
});

test('adamw bad options and tensors', async () => {
  const p = () => tensor([1, 2, 3], [3]);
  const run = (o: object, grad: Tensor = zeros([3]), m: Tensor = zeros([3])) => () => ops.adamwSync(p(), grad, m, zeros([3]), o as never, { backend: 'cpu' });
  await expectError(run({ step: 0, lr: 0.1 }), 'ERR_GRIP_RANGE', 'expected an integer in [1, 9007199254740991] for step but received number 0');
  await expectError(run({ step: 1.5, lr: 0.1 }), 'ERR_GRIP_RANGE', 'expected an integer in [1, 9007199254740991] for step but received number 1.5');
  await expectError(run({ step: 1, lr: -1 }), 'ERR_GRIP_RANGE', 'expected a finite float32 >= 0 for lr but received number -1');
  await expectError(run({ step: 1, lr: Infinity }), 'ERR_GRIP_RANGE', 'expected a finite float32 >= 0 for lr but received number Infinity');
  await expectError(run({ step: 1, lr: 'x' }), 'ERR_GRIP_RANGE', 'expected a finite float32 >= 0 for lr but received the string "x"');
  await expectError(run({ step: 1, lr: 0.1, beta1: 1 }), 'ERR_GRIP_RANGE', 'expected a float32 in [0, 1) for beta1 but received number 1');
  await expectError(run({ step: 1, lr: 0.1, beta2: -0.1 }), 'ERR_GRIP_RANGE', 'expected a float32 in [0, 1) for beta2 but received number -0.1');
  await expectError(run({ step: 1, lr: 0.1, eps: 0 }), 'ERR_GRIP_RANGE', 'expected a finite float32 > 0 for eps but received number 0');
  await expectError(run({ step: 1, lr: 0.1, weightDecay: -1 }), 'ERR_GRIP_RANGE', 'expected a finite float32 >= 0 for weightDecay but received number -1');
  await expectError(run({ step: 1, lr: 0.1, weightDecay: NaN }), 'ERR_GRIP_RANGE', 'expected a finite float32 >= 0 for weightDecay but received number NaN');
  await expectError(() => ops.adamwSync(p(), zeros([3]), zeros([3]), zeros([3]), null as never), 'ERR_GRIP_RANGE', 'expected AdamW options { step, lr, ... } for options but received null');
  await expectError(run({ step: 1, lr: 0.1 }, zeros([4])), 'ERR_GRIP_SHAPE', 'expected [3] (the shape of param) for grad but received [4]');
  await expectError(run({ step: 1, lr: 0.1 }, zeros([3]), zeros([3], 'f16')), 'ERR_GRIP_DTYPE', 'expected f32 for dtype of m but received f16');
  await expectError(() => ops.adamwSync(null as never, zeros([3]), zeros([3]), zeros([3]), { step: 1, lr: 0.1 }), 'ERR_GRIP_SHAPE', 'expected a Tensor for param but received null');
});

test('adamw with a non-Tensor grad/m/v describes the value like every other argument', async () => {
  await expectError(() => ops.adamwSync(tensor([1, 2, 3], [3]), zeros([3]), zeros([3]), [0, 0, 0] as never, { step: 1, lr: 0.1 }), 'ERR_GRIP_SHAPE', 'expected [3] (the shape of param) for v but received an array');
  await expectError(() => ops.adamwSync(tensor([1, 2, 3], [3]), null as never, zeros([3]), zeros([3]), { step: 1, lr: 0.1 }), 'ERR_GRIP_SHAPE', 'expected [3] (the shape of param) for grad but received null');
});

test('adamw lr that overflows float32 is rejected by the TS check (the ABI carries float)', async () => {
  await expectError(() => ops.adamwSync(tensor([1], [1]), zeros([1]), zeros([1]), zeros([1]), { step: 1, lr: 1e39 }, { backend: 'cpu' }), 'ERR_GRIP_RANGE', 'expected a finite float32 >= 0 for lr but received number 1e+39');
});

// ---- options / backends ------------------------------------------------------------------

test('bad options objects and signals', async () => {
  await expectError(() => ops.topkSync(S, 1, 5 as never), 'ERR_GRIP_RANGE', 'expected an options object for options but received 5');
  await expectError(() => ops.topkSync(S, 1, { signal: {} as never }), 'ERR_GRIP_RANGE', 'expected an AbortSignal for options.signal but received an object');
  await expectError(() => ops.topkSync(S, 1, { backend: 'gpu' as never }), 'ERR_GRIP_RANGE', `expected one of 'auto', 'cpu', 'cuda', 'emu' for backend but received the string "gpu"`);
  await expectError(() => setBackend('tpu' as never), 'ERR_GRIP_RANGE', `expected one of 'auto', 'cpu', 'cuda', 'emu' for backend but received the string "tpu"`);
  await expectError(() => setNumThreads(300), 'ERR_GRIP_RANGE', 'expected an integer in [0, 256] for threads but received number 300');
  await expectError(() => setNumThreads(-1), 'ERR_GRIP_RANGE', 'expected an integer in [0, 256] for threads but received number -1');
  await expectError(() => setEmulatorSchedule('sideways' as never), 'ERR_GRIP_RANGE', `expected one of 'forward', 'reverse', 'random' for schedule but received the string "sideways"`);
  await expectError(() => setEmulatorSchedule('random', -3), 'ERR_GRIP_RANGE', 'expected an integer in [0, 9007199254740991] for seed but received number -3');
});

test('async variants reject (not throw) with the same validation error', async () => {
  let thrown = false;
  let promise: Promise<unknown> | undefined;
  try {
    promise = ops.topk(S, 9);
  } catch {
    thrown = true;
  }
  assert.not.ok(thrown, 'ops.topk threw synchronously instead of returning a rejected Promise');
  await expectError(() => promise, 'ERR_GRIP_RANGE', 'expected an integer in [0, 4] for k but received number 9');
});

const noCuda = info().backend !== 'cuda';
const cudaMessage = `expected a visible CUDA device for backend 'cuda' but received ${info().cuda.compiled ? 'none (this build has CUDA, but no GPU is visible)' : 'none (this build has no CUDA)'}`;
(noCuda ? test : test.skip)('backend cuda without a visible GPU is ERR_GRIP_DEVICE (setBackend and per call)', async () => {
  const before = getBackend();
  await expectError(() => setBackend('cuda'), 'ERR_GRIP_DEVICE', cudaMessage, 'setBackend');
  assert.is(getBackend(), before, 'a failed setBackend leaves the default unchanged');
  await expectError(() => ops.topkSync(S, 1, { backend: 'cuda' }), 'ERR_GRIP_DEVICE', cudaMessage, 'topkSync');
  await expectError(() => ops.topk(S, 1, { backend: 'cuda' }), 'ERR_GRIP_DEVICE', cudaMessage, 'topk');
});

(noCuda ? test : test.skip)('device memory without a visible GPU is ERR_GRIP_DEVICE', async () => {
  // A CPU-only build (GRIP_CUDA=OFF, e.g. the one of npm run test:asan) has no cuda malloc at all.
  const [code, message] = info().cuda.compiled
    ? ['ERR_GRIP_DEVICE', 'expected a visible CUDA device for cuda malloc but received none']
    : ['ERR_GRIP_UNSUPPORTED', 'expected a build with CUDA for cuda malloc but received a CPU-only build'];
  await expectError(() => zeros([2], 'f32', 'cuda'), code, message);
  await expectError(() => S.toDevice(), code, message);
  assert.is(deviceMemory(), null, 'deviceMemory() without a GPU');
  const [infoCode, infoMessage] = info().cuda.compiled
    ? ['ERR_GRIP_DEVICE', 'expected a visible CUDA device for cuda mem info but received none']
    : ['ERR_GRIP_UNSUPPORTED', 'expected a build with CUDA for cuda mem info but received a CPU-only build'];
  await expectError(() => native().cudaMemInfo(), infoCode, infoMessage);
});

(noCuda ? test.skip : test)('cuda: deviceMemory() sees a buffer the addon allocates', () => {
  const before = deviceMemory()!;
  assert.ok(before.totalBytes > 0 && before.usedBytes === before.totalBytes - before.freeBytes, JSON.stringify(before));
  const big = zeros([64 * 2 ** 20], 'f32', 'cuda'); // 256 MiB
  const during = deviceMemory()!;
  big.dispose();
  assert.ok(during.usedBytes - before.usedBytes >= 256 * 2 ** 20, `used ${before.usedBytes} -> ${during.usedBytes}`);
  assert.ok(deviceMemory()!.usedBytes < during.usedBytes, 'and no longer after dispose()');
});

(noCuda ? test.skip : test)('cuda: disposed buffers, mixed devices and cpu backends with device tensors', async () => {
  const d = S.toDevice();
  d.dispose();
  await expectError(() => ops.topkSync(d, 1), 'ERR_GRIP_DEVICE', 'expected a live device buffer for scores but received a disposed one');
  await expectError(() => d.toHost(), 'ERR_GRIP_DEVICE', 'expected a live device buffer for toHost but received a disposed one');
  const live = S.toDevice();
  await expectError(() => live.host, 'ERR_GRIP_DEVICE', 'expected a cpu tensor for host data but received a cuda tensor (call toHost() first)');
  await expectError(() => ops.topkSync(live, 1, { backend: 'cpu' }), 'ERR_GRIP_DEVICE', "expected host (cpu) tensors for backend 'cpu' but received cuda tensors");
  await expectError(() => ops.topkSync(live, 1, { backend: 'emu' }), 'ERR_GRIP_DEVICE', "expected host (cpu) tensors for backend 'emu' but received cuda tensors");
  await expectError(() => ops.plackettLuceLogProbSync(live, tensor(Int32Array.of(0, 1), [2, 1, 1])), 'ERR_GRIP_DEVICE', 'expected a cuda tensor (like logits) for indices but received a cpu tensor');
  live.dispose();
});
if (noCuda) console.log('[errors.test.ts] skipping the device-tensor error cases: no visible CUDA device');

// ---- data-dependent errors: the same text on every backend ------------------------------------

const nanScores = tensor([0, NaN, NaN, 1, NaN, 2, 3, 4], [2, 4]);
const logitMsg = (v: string, at: string) => `expected finite or -Infinity logits for logits but received ${v} at ${at}`;
const sampleRange = (v: number, N: number, at: string) => `expected indices in [0, ${N}) for indices but received ${v} at ${at}`;
const sampleRepeat = (v: number, at: string) => `expected distinct indices within a sample for indices but received repeated index ${v} at ${at}`;
const keepMsg = (v: number, T: number, at: string) => `expected strictly ascending positions in [0, ${T}) then -1 padding for keep but received ${v} at ${at}`;

function dataErrors(b: BackendRun) {
  return async () => {
    const o = on(b);
    // topk: the first NaN in row-major order, also when every k is 0.
    const nanMsg = 'expected scores without NaN for scores but received NaN at [0, 1]';
    await expectError(() => ops.topkSync(nanScores, 2, o), 'ERR_GRIP_RANGE', nanMsg, 'topk k=2');
    await expectError(() => ops.topkSync(nanScores, 0, on(b)), 'ERR_GRIP_RANGE', nanMsg, 'topk k=0');
    await expectError(() => ops.topkSync(tensor([0, 1, 2, 3, 4, 5, 6, NaN], [2, 4]), [2, 0], on(b)), 'ERR_GRIP_RANGE', 'expected scores without NaN for scores but received NaN at [1, 3]', 'topk NaN in a k=0 row');
    await expectError(() => ops.topk(nanScores, 1, on(b)), 'ERR_GRIP_RANGE', nanMsg, 'topk async');
    // Gumbel / PL logits: NaN or +Infinity, first in row-major order.
    const badLogits = tensor([0, 0, -Infinity, 0, Infinity, NaN, 0, 0], [2, 4]);
    await expectError(() => ops.gumbelTopkSync(badLogits, 1, { samples: 2, seed: 1, ...on(b) }), 'ERR_GRIP_RANGE', logitMsg('Infinity', '[1, 0]'), 'gumbel +Inf');
    const nanLogits = tensor([0, 0, 0, 0, 0, NaN, Infinity, 0], [2, 4]);
    await expectError(() => ops.gumbelTopkSync(nanLogits, 0, { samples: 1, seed: 1, ...on(b) }), 'ERR_GRIP_RANGE', logitMsg('NaN', '[1, 1]'), 'gumbel NaN k=0');
    const okIdx = tensor(Int32Array.of(0, 1, 2, 3), [2, 1, 2]);
    await expectError(() => ops.plackettLuceLogProbSync(badLogits, okIdx, on(b)), 'ERR_GRIP_RANGE', logitMsg('Infinity', '[1, 0]'), 'PL logProb +Inf');
    await expectError(() => ops.plackettLuceBackwardSync(nanLogits, okIdx, zeros([2, 1]), on(b)), 'ERR_GRIP_RANGE', logitMsg('NaN', '[1, 1]'), 'PL backward NaN');
    // Logits are checked before indices.
    await expectError(() => ops.plackettLuceLogProbSync(nanLogits, tensor(Int32Array.of(9, 9, 9, 9), [2, 1, 2]), on(b)), 'ERR_GRIP_RANGE', logitMsg('NaN', '[1, 1]'), 'PL logits before indices');
    // PL indices: out of range / repeated, first offending (b, g, j) in row-major order.
    const L = tensor(new Float32Array(8), [2, 4]);
    await expectError(() => ops.plackettLuceLogProbSync(L, tensor(Int32Array.of(0, 1, 4, 0, 1, 2, 3, 3), [2, 2, 2]), on(b)), 'ERR_GRIP_RANGE', sampleRange(4, 4, '[0, 1, 0]'), 'PL index 4');
    await expectError(() => ops.plackettLuceLogProbSync(L, tensor(Int32Array.of(0, 1, 2, 3, -1, 2, 0, 0), [2, 2, 2]), on(b)), 'ERR_GRIP_RANGE', sampleRange(-1, 4, '[1, 0, 0]'), 'PL index -1');
    await expectError(() => ops.plackettLuceBackwardSync(L, tensor(Int32Array.of(0, 1, 2, 2, 5, 2, 0, 0), [2, 2, 2]), zeros([2, 2]), on(b)), 'ERR_GRIP_RANGE', sampleRepeat(2, '[0, 1, 1]'), 'PL repeat before a later out-of-range');
    await expectError(() => ops.plackettLuceLogProbSync(L, tensor(Int32Array.of(3, 1, 3, 0, 0, 0), [2, 1, 3]), on(b)), 'ERR_GRIP_RANGE', sampleRepeat(3, '[0, 0, 2]'), 'PL repeat within a sample');
    // gather: indices outside [-1, N).
    const x = tensor(new Float32Array(2 * 5 * 2), [2, 5, 2], 'bf16');
    await expectError(() => ops.gatherRowsSync(x, tensor(Int32Array.of(0, -1, 5, 0), [2, 2]), on(b)), 'ERR_GRIP_RANGE', 'expected indices in [-1, 5) for indices but received 5 at [1, 0]', 'gather 5');
    await expectError(() => ops.gatherRowsSync(x, tensor(Int32Array.of(0, -2, 9, 0), [2, 2]), on(b)), 'ERR_GRIP_RANGE', 'expected indices in [-1, 5) for indices but received -2 at [0, 1]', 'gather -2');
    // compact keep: not ascending, value after -1, >= T, < -1 — for both forms.
    const cache = () => tensor(new Float32Array(2 * 2 * 6 * 3), [2, 2, 6, 3], 'f16');
    const keepCases: [number[], string][] = [
      [[0, 2, 2, 0, 1, -1], keepMsg(2, 6, '[0, 2]')],
      [[0, 3, 1, 0, 1, 2], keepMsg(1, 6, '[0, 2]')],
      [[1, -1, 3, 0, 1, 2], keepMsg(3, 6, '[0, 2]')],
      [[0, 1, 2, 4, 6, -1], keepMsg(6, 6, '[1, 1]')],
      [[-1, -1, -1, -2, -1, -1], keepMsg(-2, 6, '[1, 0]')],
    ];
    for (const [keep, message] of keepCases) {
      const k = tensor(Int32Array.from(keep), [2, 3]);
      await expectError(() => ops.compactKVSync(cache(), k, on(b)), 'ERR_GRIP_RANGE', message, `compactKV keep ${JSON.stringify(keep)}`);
      await expectError(() => ops.compactKVInPlaceSync(cache(), k, on(b)), 'ERR_GRIP_RANGE', message, `compactKVInPlace keep ${JSON.stringify(keep)}`);
    }
  };
}

for (const b of BACKENDS) {
  (b.skip ? test.skip : test)(`${b.name}: data-dependent errors (NaN scores, bad logits, sample/gather/keep indices) read exactly the same`, dataErrors(b));
}

test('tensor() and zeros() argument errors', async () => {
  await expectError(() => tensor([1, 2, 3], [2, 2]), 'ERR_GRIP_SHAPE', 'expected 4 elements (shape [2, 2]) for data but received 3');
  await expectError(() => tensor([1], [-1]), 'ERR_GRIP_SHAPE', 'expected integer extents in [0, 2147483647] for shape but received [-1]');
  await expectError(() => tensor([1], [1.5]), 'ERR_GRIP_SHAPE', 'expected integer extents in [0, 2147483647] for shape but received [1.5]');
  await expectError(() => tensor([1], 1 as never), 'ERR_GRIP_SHAPE', 'expected an array of extents for shape but received number 1');
  await expectError(() => tensor([], [1, 1, 1, 1, 1, 1, 1, 1, 0]), 'ERR_GRIP_SHAPE', 'expected at most 8 dimensions for shape but received 9');
  await expectError(() => tensor([1], [1], 'f64' as never), 'ERR_GRIP_RANGE', `expected one of 'f32', 'f16', 'bf16', 'i32' for dtype but received the string "f64"`);
  await expectError(() => tensor(new Uint16Array(1), [1], 'f32'), 'ERR_GRIP_DTYPE', 'expected f16 or bf16 for dtype of a Uint16Array but received f32');
  await expectError(() => tensor(new Uint16Array(1), [1]), 'ERR_GRIP_DTYPE', 'expected f16 or bf16 for dtype of a Uint16Array but received f32');
  await expectError(() => tensor(null as never, [1]), 'ERR_GRIP_SHAPE', 'expected a TypedArray or an array of numbers for data but received null');
  await expectError(() => tensor(5 as never, [1]), 'ERR_GRIP_SHAPE', 'expected a TypedArray or an array of numbers for data but received number 5');
  await expectError(() => zeros([2], 'u8' as never), 'ERR_GRIP_RANGE', `expected one of 'f32', 'f16', 'bf16', 'i32' for dtype but received the string "u8"`);
  await expectError(() => zeros([2, -3]), 'ERR_GRIP_SHAPE', 'expected integer extents in [0, 2147483647] for shape but received [2, -3]');
});

test('GripError is an Error with a code', () => {
  const e = new GripError('ERR_GRIP_RANGE', 'expected a for b but received c');
  assert.ok(e instanceof Error);
  assert.is(e.name, 'GripError');
  assert.is(e.code, 'ERR_GRIP_RANGE');
});

test.run();
