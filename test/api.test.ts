// api.test.ts — tensor() / zeros() (dtype inference, f16/bf16 rounding with
// known bit patterns), info(), setNumThreads (same bits with 1 and 2
// threads), setBackend/getBackend, and the CommonJS entry of dist/.
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Tensor, getBackend, info, ops, setBackend, setNumThreads, tensor, toHost, zeros } from '../lib/index.ts';
import { bf16Value, halfValue, rng, scorerParams, uniform } from './helpers.ts';

const test = suite('api');
const root = join(dirname(fileURLToPath(import.meta.url)), '..');

const f16Bits = (v: number) => (tensor([v], [1], 'f16').host as Uint16Array)[0]!;
const bf16Bits = (v: number) => (tensor([v], [1], 'bf16').host as Uint16Array)[0]!;
const hex = (n: number) => `0x${n.toString(16).padStart(4, '0')}`;

// ---- tensor() / zeros() ---------------------------------------------------------------------

test('tensor() infers f32 from numbers and Float32Array, i32 from Int32Array', () => {
  assert.is(tensor([1, 2], [2]).dtype, 'f32');
  assert.ok(tensor([1, 2], [2]).host instanceof Float32Array);
  const f = new Float32Array(4);
  assert.is(tensor(f, [2, 2]).dtype, 'f32');
  const i = Int32Array.of(1, 2, 3);
  const ti = tensor(i, [3]);
  assert.is(ti.dtype, 'i32');
  assert.is(ti.host, i, 'an Int32Array is used without a copy');
  assert.is(tensor(f, [4]).host, f, 'a Float32Array is used without a copy');
  const bits = Uint16Array.of(0x3c00);
  assert.is(tensor(bits, [1], 'f16').host, bits, 'a Uint16Array is taken as the f16 bits without a copy');
});

test('tensor() metadata: shape frozen, size, bytes, device, toHost() is the tensor itself', () => {
  const t = tensor(new Float32Array(6), [2, 3], 'bf16');
  assert.equal(t.shape, [2, 3]);
  assert.ok(Object.isFrozen(t.shape), 'shape is frozen');
  assert.is(t.size, 6);
  assert.is(t.bytes, 12);
  assert.is(t.device, 'cpu');
  assert.is(t.toHost(), t);
  assert.is(toHost(t), t);
  assert.ok(t instanceof Tensor);
  assert.is(tensor([], [0, 5]).size, 0);
  assert.is(tensor([7], []).size, 1, 'a scalar has one element');
});

test('f16 rounding: known bit patterns (round to nearest even, overflow to inf, subnormals)', () => {
  const cases: [number, number][] = [
    [1, 0x3c00], [-2, 0xc000], [0.5, 0x3800], [65504, 0x7bff], [65519, 0x7bff], [65520, 0x7c00], [1e9, 0x7c00],
    [-Infinity, 0xfc00], [-0, 0x8000], [0, 0x0000], [2 ** -14, 0x0400], [2 ** -24, 0x0001], [2 ** -25, 0x0000],
    [3 * 2 ** -26, 0x0001], [3 * 2 ** -25, 0x0002], [1023 * 2 ** -24, 0x03ff], [1 + 2 ** -11, 0x3c00], [1 + 3 * 2 ** -11, 0x3c02],
    [0.1, 0x2e66], [NaN, 0x7e00],
  ];
  for (const [v, bits] of cases) assert.is(hex(f16Bits(v)), hex(bits), `f16(${Object.is(v, -0) ? '-0' : v})`);
});

test('bf16 rounding: known bit patterns (round to nearest even, quiet NaN)', () => {
  const cases: [number, number][] = [
    [1, 0x3f80], [-2, 0xc000], [1 + 2 ** -8, 0x3f80], [1 + 3 * 2 ** -8, 0x3f82], [0.1, 0x3dcd], [3.4e38, 0x7f80],
    [-Infinity, 0xff80], [-0, 0x8000], [2 ** -130, 0x0008], [NaN, 0x7fc0], [65520, 0x4780],
  ];
  for (const [v, bits] of cases) assert.is(hex(bf16Bits(v)), hex(bits), `bf16(${Object.is(v, -0) ? '-0' : v})`);
});

test('every f16 and bf16 bit pattern widens exactly and rounds back to itself', () => {
  const all = Uint16Array.from({ length: 65536 }, (_, i) => i);
  for (const dtype of ['f16', 'bf16'] as const) {
    const widened = tensor(all, [65536], dtype).toFloat32();
    const value = dtype === 'f16' ? halfValue : bf16Value;
    const back = tensor(widened, [65536], dtype).host as Uint16Array;
    for (let i = 0; i < 65536; i++) {
      const v = value(i);
      if (Number.isNaN(v)) {
        assert.ok(Number.isNaN(widened[i]!), `${dtype} ${hex(i)} widens to NaN`);
        continue;
      }
      if (!Object.is(widened[i], v)) assert.unreachable(`${dtype} ${hex(i)} widens to ${widened[i]}, expected ${v}`);
      if (back[i] !== i) assert.unreachable(`${dtype} ${hex(i)} -> ${v} -> ${hex(back[i]!)}`);
    }
  }
});

test('toFloat32() of i32 and f32 tensors', () => {
  assert.equal(Array.from(tensor(Int32Array.of(-3, 7), [2]).toFloat32()), [-3, 7]);
  const f = tensor([1.5, -2], [2]);
  const copy = f.toFloat32();
  assert.equal(Array.from(copy), [1.5, -2]);
  assert.is.not(copy, f.host, 'toFloat32 returns a copy');
});

test('zeros(): default f32, storage type per dtype, all zero', () => {
  const z = zeros([2, 3]);
  assert.is(z.dtype, 'f32');
  assert.equal(z.shape, [2, 3]);
  assert.ok(z.host instanceof Float32Array && z.host.every((v) => v === 0));
  assert.ok(zeros([4], 'i32').host instanceof Int32Array);
  assert.ok(zeros([4], 'f16').host instanceof Uint16Array);
  assert.ok(zeros([4], 'bf16').host instanceof Uint16Array);
  assert.is(zeros([0]).size, 0);
});

// ---- info / threads / backends ------------------------------------------------------------------

test('info() fields', () => {
  const i = info();
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
  assert.is(i.version, pkg.version, 'version matches package.json');
  assert.ok(i.backend === 'cpu' || i.backend === 'cuda', `backend ${i.backend}`);
  assert.type(i.cuda.compiled, 'boolean');
  assert.ok(Number.isInteger(i.cuda.devices) && i.cuda.devices >= 0, `cuda.devices ${i.cuda.devices}`);
  assert.is(i.backend === 'cuda', i.cuda.compiled && i.cuda.devices > 0, "backend is 'cuda' exactly when compiled with a device");
  assert.ok(['avx512_bf16', 'avx512', 'avx2', 'scalar'].includes(i.simd), `simd ${i.simd}`);
  assert.ok(Number.isInteger(i.threads) && i.threads >= 1, `threads ${i.threads}`);
});

test('setNumThreads: info().threads follows; 0 means the number of cores', () => {
  const before = info().threads;
  try {
    setNumThreads(1);
    assert.is(info().threads, 1);
    setNumThreads(3);
    assert.is(info().threads, 3);
  } finally {
    setNumThreads(before);
  }
});

test('cpu results are bit-identical with 1 and 2 threads', () => {
  const r = rng(321);
  const B = 4, N = 200, D = 96;
  const x = tensor(uniform(r, B * N * D), [B, N, D], 'bf16');
  const q = tensor(uniform(r, B * D), [B, D]);
  const sp = scorerParams(r, D, 16, 8);
  const d = tensor(uniform(r, B * N), [B, N]);
  const scoresIn = tensor(Float32Array.from(uniform(r, 64 * 500), (v) => Math.round(v * 8)), [64, 500]);
  const logits = tensor(uniform(r, 8 * 50), [8, 50]);
  const run = () => {
    const o = { backend: 'cpu' as const };
    const scores = ops.scoreTokensSync(x, q, 0.4, sp.params, o);
    const grads = ops.scoreTokensBackwardSync(x, q, 0.4, sp.params, d, o);
    const top = ops.topkSync(scoresIn, 123, o);
    const g = ops.gumbelTopkSync(logits, 10, { samples: 300, seed: 5, ...o });
    const dl = ops.plackettLuceBackwardSync(logits, g.indices, tensor(new Float32Array(8 * 300).fill(1), [8, 300]), o);
    const kept = ops.topkSync(scores, 50, o);
    const gathered = ops.gatherRowsSync(x, kept.indices, o);
    const flat = (t: Tensor) => Array.from(new Uint32Array((t.host as Float32Array | Int32Array | Uint16Array).slice().buffer));
    return {
      scores: flat(scores), top: flat(top.indices), g: flat(g.indices), lp: flat(g.logProb), dl: flat(dl), gathered: flat(gathered),
      ...Object.fromEntries(Object.entries(grads).map(([k, t]) => [`grad.${k}`, flat(t)])),
    };
  };
  const before = info().threads;
  try {
    setNumThreads(1);
    const one = run();
    setNumThreads(2);
    const two = run();
    for (const key of Object.keys(one)) assert.equal((two as Record<string, number[]>)[key], (one as Record<string, number[]>)[key], `${key} differs between 1 and 2 threads`);
  } finally {
    setNumThreads(before);
  }
});

test('setBackend / getBackend: default auto, set values stick, ops use the default', () => {
  assert.is(getBackend(), 'auto');
  try {
    for (const b of ['cpu', 'emu', 'auto'] as const) {
      setBackend(b);
      assert.is(getBackend(), b);
    }
    setBackend('emu');
    // No per-call backend: the call runs on the default ('emu' here).
    const out = ops.topkSync(tensor([3, 1, 2], [1, 3]), 1);
    assert.equal(Array.from(out.indices.host), [0]);
    setBackend('cpu');
    assert.equal(Array.from(ops.topkSync(tensor([3, 1, 2], [1, 3]), 2).indices.host), [0, 2]);
  } finally {
    setBackend('auto');
  }
});

// ---- the CommonJS entry ----------------------------------------------------------------------------

const cjs = join(root, 'dist', 'cjs', 'index.js');
if (!existsSync(cjs)) console.log(`[api.test.ts] skipping the CommonJS entry test: ${cjs} is not built (run \`npm run build:ts\`)`);
(existsSync(cjs) ? test : test.skip)('the CommonJS entry (dist/cjs) loads the addon and runs an op', () => {
  const require = createRequire(import.meta.url);
  const grip = require(cjs);
  for (const name of ['ops', 'tensor', 'zeros', 'info', 'setBackend', 'GripError', 'Tensor']) assert.ok(name in grip, `dist/cjs exports ${name}`);
  assert.is(grip.info().version, info().version);
  const out = grip.ops.topkSync(grip.tensor([1, 5, 3], [1, 3]), 2, { backend: 'cpu' });
  assert.equal(Array.from(out.indices.host), [1, 2]);
  let code: string | undefined;
  try {
    grip.ops.topkSync(grip.tensor([1, NaN], [1, 2]), 1, { backend: 'cpu' });
  } catch (e) {
    code = (e as { code?: string }).code;
    assert.ok(e instanceof grip.GripError, 'native errors are the CJS bundle\'s GripError');
  }
  assert.is(code, 'ERR_GRIP_RANGE');
});

test.run();
