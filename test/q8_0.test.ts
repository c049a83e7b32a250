// q8_0.test.ts — 8-bit weights (native/cpu/q8_0*.cc): the quantiser byte for
// byte against ggml's quantize_row_q8_0_ref written in TS (test/ref/q8_0.ts),
// the Linear product over q8_0 weights (decode 1-4 rows and prefill) against
// the same quantised arithmetic in float64, the same bits on 1 and 2 threads,
// alone or in a batch, and at every kernel the CPU has (child processes under
// GRIP_SIMD), and the refusals (K not a multiple of 32, CUDA, matmul).
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { info, ops, setNumThreads, tensor, Tensor } from '../lib/index.ts';
import { expectError, halfValue, rng, uniform } from './helpers.ts';
import { linearQ8_0, quantizeQ8_0 } from './ref/q8_0.ts';

const bits = (t: Tensor) => Array.from(new Uint32Array((t.host as Float32Array).slice().buffer));

test('quantizeQ8_0 gives the bytes of ggml quantize_row_q8_0_ref (ties, zero blocks, tiny and huge scales)', () => {
  const r = rng(3);
  const K = 256, N = 9;
  const x = uniform(r, N * K, 2);
  x.fill(0, 32, 64); // an all-zero block: d = 0, q = 0
  for (let j = 0; j < 32; j++) x[64 + j] = (j - 16) * 1e-6; // d an f16 subnormal
  for (let j = 0; j < 32; j++) x[96 + j] = (j % 2 ? -1 : 1) * 30000 * (j / 31); // d near f16's top
  for (let j = 0; j < 32; j++) x[128 + j] = j === 0 ? 127 : j - 15.5; // x/d lands on halves: round away from zero
  const got = ops.quantizeQ8_0Sync(tensor(x, [N, K]));
  assert.is(got.dtype, 'q8_0');
  assert.equal(got.shape, [N, K]);
  assert.is(got.bytes, (N * K / 32) * 34);
  const want = quantizeQ8_0(x);
  const gotBytes = got.host as Uint8Array;
  for (let i = 0; i < want.length; i++) assert.is(gotBytes[i], want[i], `byte ${i} (block ${Math.floor(i / 34)})`);
  // The halves block (d = 127/127 = 1): x = -14.5 gives -15, away from zero.
  const q = new Int8Array(gotBytes.buffer, gotBytes.byteOffset + 4 * 34 + 2, 32);
  assert.is(q[1], -15);
  assert.is(q[0], 127);
});

test('toFloat32 of a q8_0 tensor gives d * q', () => {
  const x = new Float32Array(64).map((_, i) => (i - 31.75) / 8);
  const t = ops.quantizeQ8_0Sync(tensor(x, [2, 32]));
  const bytes = t.host as Uint8Array;
  const view = new DataView(bytes.buffer, bytes.byteOffset), q = new Int8Array(bytes.buffer, bytes.byteOffset);
  const back = t.toFloat32();
  for (let i = 0; i < 64; i++) {
    const at = Math.floor(i / 32) * 34;
    assert.is(back[i], Math.fround(halfValue(view.getUint16(at, true)) * q[at + 2 + (i % 32)]!), `value ${i}`);
  }
});

const KS = [32, 64, 96, 160, 4096 + 32];

test('q8_0 linear, 1 to 4 rows (decode) and 5 to 37 rows (prefill), matches the quantised arithmetic in float64', () => {
  const r = rng(11);
  for (const K of KS)
    for (const M of [1, 2, 3, 4, 5, 9, 37]) {
      const N = 19;
      const x = uniform(r, M * K, 4);
      const wf = uniform(r, N * K, 0.25);
      const w = ops.quantizeQ8_0Sync(tensor(wf, [N, K]));
      const bias = M % 2 === 1 ? uniform(r, N) : null;
      const got = ops.linearSync(tensor(x, [M, K]), w, bias ? tensor(bias, [N]) : null, { backend: 'cpu' }).host as Float32Array;
      const { y, scale } = linearQ8_0(x, w.host as Uint8Array, bias, M, N, K);
      // f32 sums of K/32 exact terms per lane, then 8 lanes: at most K/32 + 9 roundings, each <= 2^-24 of the running |sum|.
      for (let i = 0; i < M * N; i++) {
        const tol = 6e-8 * (K / 32 + 9) * scale[i]! + 1e-30;
        assert.ok(Math.abs(got[i]! - y[i]!) <= tol, `M=${M} K=${K} y[${i}] = ${got[i]} but the reference is ${y[i]} (tolerance ${tol})`);
      }
    }
});

test('q8_0 linear stays close to the f32 product of the unquantised values (the 8-bit error is small)', () => {
  const r = rng(12);
  const M = 3, N = 64, K = 1024;
  const x = tensor(uniform(r, M * K), [M, K]);
  const wf = tensor(uniform(r, N * K, 0.1), [N, K]);
  const exact = ops.linearSync(x, wf, null, { backend: 'cpu' }).host as Float32Array;
  const q8 = ops.linearSync(x, ops.quantizeQ8_0Sync(wf), null, { backend: 'cpu' }).host as Float32Array;
  let num = 0, den = 0;
  for (let i = 0; i < exact.length; i++) {
    num += (q8[i]! - exact[i]!) ** 2;
    den += exact[i]! ** 2;
  }
  const rel = Math.sqrt(num / den);
  // Two uniform 8-bit roundings per product: about 0.8% relative RMS (0.0077 on this seed); 2% would mean a wrong scale.
  assert.ok(rel < 0.02 && rel > 1e-4, `relative RMS error ${rel}`);
});

test('q8_0 linear: a row gives the same bits alone, in a batch, and on 1 or 2 threads', () => {
  const r = rng(13);
  const K = 4096, N = 300;
  const x = tensor(uniform(r, 11 * K), [11, K]);
  const w = ops.quantizeQ8_0Sync(tensor(uniform(r, N * K), [N, K]));
  const threads = info().threads;
  try {
    setNumThreads(2);
    const batch = bits(ops.linearSync(x, w, null, { backend: 'cpu' }));
    const alone = bits(ops.linearSync(tensor((x.host as Float32Array).slice(6 * K, 7 * K), [1, K]), w, null, { backend: 'cpu' }));
    assert.equal(alone, batch.slice(6 * N, 7 * N), 'row 6 alone vs in the batch of 11');
    const four = bits(ops.linearSync(tensor((x.host as Float32Array).slice(4 * K, 8 * K), [4, K]), w, null, { backend: 'cpu' }));
    assert.equal(four, batch.slice(4 * N, 8 * N), 'rows 4-7 as a decode batch of 4 vs in the prefill of 11');
    setNumThreads(1);
    assert.equal(bits(ops.linearSync(x, w, null, { backend: 'cpu' })), batch, '1 thread vs 2');
  } finally {
    setNumThreads(threads);
  }
});

test('every q8_0 kernel the CPU has gives the same bits (GRIP_SIMD=scalar, avx2, avx_vnni, avx512; amx_int8 from 16 rows on: close)', () => {
  const child = fileURLToPath(new URL('./q8_0_child.ts', import.meta.url));
  const runs = new Map<string, string[]>();
  for (const level of ['scalar', 'avx2', 'avx_vnni', 'avx512', 'native']) {
    const run = spawnSync(process.execPath, ['--import', 'tsx', child], { encoding: 'utf8', env: { ...process.env, GRIP_SIMD: level } });
    assert.is(run.status, 0, `GRIP_SIMD=${level}: exit ${run.status}\n${run.stderr.slice(-2000)}`);
    const { kernel, outputs } = JSON.parse(run.stdout) as { kernel: string; outputs: string[] };
    runs.set(kernel, outputs);
  }
  const best = info().int8Kernel;
  const expected = ['scalar', 'avx2', 'avx_vnni', 'avx512_vnni', 'amx_int8'];
  assert.ok(expected.includes(best), `unknown int8 kernel ${best}`);
  // This machine's kernels and those below it; an AVX-512 CPU without AVX-VNNI (Skylake-X .. Ice Lake) has no avx_vnni run.
  for (const name of expected.slice(0, expected.indexOf(best) + 1)) {
    if (name === 'avx_vnni' && !runs.has(name) && expected.indexOf(best) >= 3) continue;
    assert.ok(runs.has(name), `no run used the ${name} kernel (ran: ${[...runs.keys()].join(', ')})`);
  }
  const amx = runs.get('amx_int8');
  runs.delete('amx_int8');
  const [first, ...rest] = [...runs.entries()];
  for (const [name, outputs] of rest) assert.equal(outputs, first![1], `${name} vs ${first![0]}`);
  if (amx) {
    // q8_0_child's row counts 1, 3, 4, 9 take the avx512_vnni kernels (same bits), 16 and 37 the tiles: one
    // int32 per block, so only float rounding apart (a few ulps of the output's scale).
    const floats = (b64: string) => new Float32Array(new Uint8Array(Buffer.from(b64, 'base64')).buffer);
    amx.forEach((out, i) => {
      if (i < 4) return assert.equal(out, first![1][i], `amx_int8 vs ${first![0]}, output ${i} (fewer than 16 rows)`);
      const a = floats(out), b = floats(first![1][i]!);
      let worst = 0, scale = 0;
      for (let j = 0; j < a.length; j++) { worst = Math.max(worst, Math.abs(a[j]! - b[j]!)); scale = Math.max(scale, Math.abs(b[j]!)); }
      assert.ok(worst > 0 || a.length === 0, `amx_int8 output ${i}: bit-identical to ${first![0]}, so the tile kernel did not run`);
      assert.ok(worst <= 1e-5 * scale, `amx_int8 output ${i}: ${worst} from ${first![0]} (scale ${scale})`);
    });
  }
});

test('q8_0 refusals: rows not in whole blocks of 32, matmul, and the CUDA backend', async () => {
  await expectError(() => ops.quantizeQ8_0Sync(tensor(new Float32Array(66), [2, 33])), 'ERR_GRIP_SHAPE',
    'expected a row length K that is a multiple of 32 (q8_0 blocks) for x but received K = 33');
  const bad = new Tensor('q8_0', [2, 48], new Uint8Array(102), 'cpu');
  await expectError(() => ops.linearSync(tensor(new Float32Array(48), [1, 48]), bad, null, { backend: 'cpu' }), 'ERR_GRIP_SHAPE',
    'expected a row length K that is a multiple of 32 (q8_0 blocks) for weight but received K = 48');
  const w = ops.quantizeQ8_0Sync(tensor(new Float32Array(64), [2, 32]));
  await expectError(() => ops.matmulSync(tensor(new Float32Array(32), [1, 32]), w, { transB: true }), 'ERR_GRIP_DTYPE',
    'expected f32, f16 or bf16 for dtype of b but received q8_0');
  await expectError(() => ops.linearSync(tensor(new Float32Array(31), [1, 31]), w, null), 'ERR_GRIP_SHAPE',
    'expected [2, 31] [N,K] for weight but received [2, 32]');
  // The emulator runs the CUDA twins on the CPU, so it refuses as CUDA does; CUDA itself only
  // where a device is visible (a CUDA build without a GPU refuses the backend first).
  for (const backend of info().backend === 'cuda' ? ['emu', 'cuda'] as const : ['emu'] as const)
    await expectError(() => ops.linearSync(tensor(new Float32Array(32), [1, 32]), w, null, { backend }), 'ERR_GRIP_UNSUPPORTED',
      'expected a cpu tensor (q8_0 has CPU kernels only) for device of weight but received cuda');
});

test.run();
