// c_abi.test.ts — a C program links libgrip.so through grip.h and runs an op.
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ROOT, cmakeBuild } from './helpers.native.ts';

const test = suite('c abi');

test('a C99 program compiles against grip.h, links libgrip.so and runs topk', () => {
  const lib = cmakeBuild('checks', 'grip', ['GRIP_CUDA=OFF', 'GRIP_NATIVE_CHECKS=ON']);
  assert.ok(lib.ok, `building libgrip.so failed:\n${lib.log.slice(-3000)}`);
  const exe = join(mkdtempSync(join(tmpdir(), 'grip-c-')), 'example');
  const libDir = join(lib.binaryDir, 'lib');
  const cc = spawnSync('cc', ['-std=c99', '-Wall', '-Wextra', '-Werror', '-pedantic', join(ROOT, 'test/c/example.c'),
    `-I${join(ROOT, 'native/include')}`, `-L${libDir}`, '-lgrip', `-Wl,-rpath,${libDir}`, '-o', exe], { encoding: 'utf8' });
  assert.is(cc.status, 0, `cc failed:\n${cc.stderr}`);
  const run = spawnSync(exe, { encoding: 'utf8' });
  assert.is(run.status, 0, `example exited ${run.status}:\n${run.stdout}${run.stderr}`);
  const lines = run.stdout.trim().split('\n');
  assert.match(lines[0]!, /^version 0\.1\.0 simd (avx512_bf16|avx512|avx2|scalar)$/);
  // Row 0 has a tie (0.9 at 1 and 3) and keeps both; row 1 keeps its first three.
  assert.is(lines[1], 'row 0: 1 3 -1');
  assert.is(lines[2], 'row 1: 0 1 2');
  assert.is(lines[3], 'error 3: expected k in [0, 5] for k but received 6 at [0]');
});

// Every line of test/c/guards.c: "case: status message". The TS layer never sends
// these; a C caller may, and each must be refused (before 7b5da9e's twin fix in
// capi.cc, Hq = 0 with Hkv = 2 divided by the head group 0: SIGFPE).
const GUARDS = [
  'attention Hq=0 Hkv=2: 1 expected a positive multiple of Hkv = 2 query heads [B,Tq,Hq,Dh] for q but received [1, 1, 0, 4]',
  'attention Hq=3 Hkv=2: 1 expected a positive multiple of Hkv = 2 query heads [B,Tq,Hq,Dh] for q but received [1, 1, 3, 4]',
  'attention Hq=2 Hkv=0: 1 expected a positive multiple of Hkv = 0 query heads [B,Tq,Hq,Dh] for q but received [1, 1, 2, 4]',
  'attention options NULL: 3 expected options for attention but received NULL',
  'attention q NULL: 1 expected a tensor for q but received NULL',
  'attention probRows NULL: 1 expected an array [R] for probRows but received NULL',
  'attention numProbRows -1: 3 expected an integer >= 0 for numProbRows but received -1',
  'topk scores NULL: 1 expected a tensor for scores but received NULL',
  'topk k NULL: 1 expected k per row for k but received NULL',
  'topk indices NULL: 1 expected a tensor for indices but received NULL',
  'topk negative extent: 1 expected extents in [0, 2147483647] [B,N] for scores but received [-2, 5]',
  'topk ndim -1: 1 expected 2 dimensions [B,N] for scores but received -1 dimensions []',
  'topk ndim 9: 1 expected 2 dimensions [B,N] for scores but received 9 dimensions []',
  'topk data NULL: 1 expected a data pointer for scores but received NULL',
  'topk unknown dtype: 2 expected f32 for dtype of scores but received an unknown dtype',
  'topk unknown device: 4 expected cpu, cuda or emu for device of scores but received an unknown device',
  'gumbel samples 0: 3 expected an integer >= 1 for samples but received 0',
  'gumbel k -1: 3 expected k in [0, 5] for k but received -1',
  'gumbel logProb NULL: 1 expected a tensor for logProb but received NULL',
  `gelu overflowing shape: 1 expected fewer than 2^60 elements (any shape) for x but received [${Array(8).fill(2147483647).join(', ')}]`,
  'gelu wrapping shape: 1 expected fewer than 2^60 elements (any shape) for x but received [65536, 65536, 65536, 65536]',
  'gelu kind 7: 3 expected 0 (erf), 1 (tanh) or 2 (quick) for kind but received 7',
  'softmax out NULL: 1 expected a tensor for out but received NULL',
  'adamw options NULL: 3 expected options for adamw but received NULL',
  'adamw param NULL: 1 expected a tensor for param but received NULL',
  'score params NULL: 1 expected scorer params for params but received NULL',
  'compactKVInPlace newLengths NULL: 1 expected an output array [B] for newLengths but received NULL',
  'cacheWrite start NULL: 1 expected start and count arrays [B] for start but received NULL',
  'layerNorm bias NULL: 1 expected a tensor [D] for bias but received NULL',
  'threads -1: 3 expected an integer in [0, 256] for threads but received -1',
  'cuda malloc out NULL: 6 expected a build with CUDA for cuda malloc but received a CPU-only build',
  'cuda mem info: 6 expected a build with CUDA for cuda mem info but received a CPU-only build',
  'cuda mem info zeroed: 0 ok',
];

test('the C ABI refuses NULL pointers, bad extents, Hq = 0 attention and unknown enums (test/c/guards.c)', () => {
  const lib = cmakeBuild('checks', 'grip', ['GRIP_CUDA=OFF', 'GRIP_NATIVE_CHECKS=ON']);
  assert.ok(lib.ok, `building libgrip.so failed:\n${lib.log.slice(-3000)}`);
  const exe = join(mkdtempSync(join(tmpdir(), 'grip-c-')), 'guards');
  const libDir = join(lib.binaryDir, 'lib');
  const cc = spawnSync('cc', ['-std=c99', '-Wall', '-Wextra', '-Werror', '-pedantic', join(ROOT, 'test/c/guards.c'),
    `-I${join(ROOT, 'native/include')}`, `-L${libDir}`, '-lgrip', `-Wl,-rpath,${libDir}`, '-o', exe], { encoding: 'utf8' });
  assert.is(cc.status, 0, `cc failed:\n${cc.stderr}`);
  const run = spawnSync(exe, { encoding: 'utf8' });
  assert.is(run.signal, null, `guards died of ${run.signal} after:\n${run.stdout}`);
  assert.is(run.status, 0, `guards exited ${run.status}:\n${run.stdout}${run.stderr}`);
  const lines = run.stdout.trim().split('\n');
  GUARDS.forEach((want, i) => assert.is(lines[i], want, `line ${i + 1}`));
  assert.is(lines.length, GUARDS.length, 'number of cases');
});

test.run();
