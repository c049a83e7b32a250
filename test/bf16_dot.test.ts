// bf16_dot.test.ts — the bf16 dot path (GRIP_BF16_DOT=1: vdpbf16ps GEMM and
// GEMV for bf16 weights, activations rounded to bf16) through the public
// ops, in a child process since the switch is read once per process: against
// a float64 product of the bf16-rounded activations and weights at the f32
// tolerance of gemv.test.ts, visibly different from the unrounded product
// where the CPU has AVX512_BF16 (and equal to it elsewhere: the switch is
// then ignored), and each row bit-identical alone, in a batch, on 1 or 2 threads.
// The native checks (gemm_check.cc, gemv_check.cc) cover the kernels directly.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ROOT } from './helpers.native.ts';
import { bf16Value } from './helpers.ts';
import { dotCases } from './fixtures/bf16_dot_cases.ts';

/** f32 -> bf16 bits, round to nearest even (test-side; finite inputs only). */
function roundBf16(v: number): number {
  const u = new Uint32Array(new Float32Array([v]).buffer)[0]!;
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}
const bf16 = (v: number) => bf16Value(roundBf16(v));

function child(dot: string) {
  const run = spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'test/fixtures/bf16_dot_child.ts')], {
    cwd: ROOT, encoding: 'utf8', env: { ...process.env, GRIP_BF16_DOT: dot }, maxBuffer: 64 << 20,
  });
  assert.is(run.status, 0, `child failed: ${run.stderr.slice(-2000)}`);
  return JSON.parse(run.stdout) as { simd: string; outs: number[][]; batch: number[]; alone: number[]; oneThread: number[] };
}

const cases = dotCases();
const on = child('1');

/** The bf16 value nearest each entry (round to nearest even), as float64. */
const roundedAll = (a: Float32Array) => Float64Array.from(a, bf16);

/** y = op(x)·op(w) in float64 (x optionally rounded to bf16) and sum |x||w| per entry. */
function reference(c: (typeof cases)[number], roundX: boolean) {
  const { M, N, K, transB } = c;
  // Rounded once per case: rounding inside the triple loop made this file take minutes.
  const x = roundX ? roundedAll(c.x) : Float64Array.from(c.x), w = roundedAll(c.w);
  const y = new Float64Array(M * N), scale = new Float64Array(M * N);
  for (let m = 0; m < M; m++)
    for (let n = 0; n < N; n++) {
      let acc = 0, mag = 0;
      for (let k = 0; k < K; k++) {
        const p = x[m * K + k]! * w[transB ? n * K + k : k * N + n]!;
        acc += p;
        mag += Math.abs(p);
      }
      y[m * N + n] = acc;
      scale[m * N + n] = mag;
    }
  return { y, scale };
}

test('GRIP_BF16_DOT=1: bf16 weights match a float64 product of bf16-rounded activations', () => {
  const rounds = on.simd === 'avx512_bf16';
  let beyondF32 = 0;
  cases.forEach((c, i) => {
    const got = on.outs[i]!;
    const { y, scale } = reference(c, rounds);
    const plain = reference(c, false);
    for (let j = 0; j < got.length; j++) {
      // f32 products summed in f32: 2K + 8 roundings at worst (as in gemv.test.ts).
      const tol = 1.2e-7 * (2 * c.K + 8) * scale[j]! + 1e-30;
      assert.ok(Math.abs(got[j]! - y[j]!) <= tol,
        `M=${c.M} N=${c.N} K=${c.K} transB=${c.transB} out[${j}] = ${got[j]} but the reference is ${y[j]} (tolerance ${tol})`);
      if (Math.abs(got[j]! - plain.y[j]!) > 1.2e-7 * (2 * c.K + 8) * plain.scale[j]!) beyondF32++;
    }
  });
  if (rounds) assert.ok(beyondF32 > 0, 'GRIP_BF16_DOT=1 on an AVX512_BF16 CPU left the activations unrounded');
  else assert.is(beyondF32, 0, `GRIP_BF16_DOT=1 without AVX512_BF16 (${on.simd}) changed results`);
});

test('GRIP_BF16_DOT=1: a row gives the same bits alone, in a batch of 4, and on 1 or 2 threads', () => {
  assert.equal(on.alone, on.batch.slice(2 * 300, 3 * 300), 'row 2 alone vs in the batch');
  assert.equal(on.oneThread, on.batch, '1 thread vs 2');
});

test('GRIP_BF16_DOT=0 (the default) keeps the f32-widened bf16 path', () => {
  const off = child('0');
  cases.forEach((c, i) => {
    const got = off.outs[i]!;
    const { y, scale } = reference(c, false);
    for (let j = 0; j < got.length; j++) {
      const tol = 1.2e-7 * (2 * c.K + 8) * scale[j]! + 1e-30;
      assert.ok(Math.abs(got[j]! - y[j]!) <= tol, `M=${c.M} K=${c.K} out[${j}] = ${got[j]} but the reference is ${y[j]}`);
    }
  });
});

test.run();
