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

test.run();
