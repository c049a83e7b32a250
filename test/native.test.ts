// native.test.ts — runs the native checks (test/native/*.cc: the SIMT
// emulator's self-tests, the CUDA kernels on the emulator against the CPU
// twins under every schedule, GEMM and CPU-op checks): a normal build at
// every SIMD level, and a build with AddressSanitizer + UBSan. Each native
// check is one test.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { cmakeBuild } from './helpers.native.ts';

function registerChecks(name: string, dir: string, defines: string[], env: Record<string, string> = {}) {
  const test = suite(name);
  const build = cmakeBuild(dir, 'grip_native_checks', ['GRIP_CUDA=OFF', 'GRIP_NATIVE_CHECKS=ON', ...defines]);
  if (!build.ok) {
    test('builds', () => assert.unreachable(`native checks did not build:\n${build.log.slice(-4000)}`));
    test.run();
    return;
  }
  const run = spawnSync(join(build.binaryDir, 'grip_native_checks'), {
    encoding: 'utf8', env: { ...process.env, ...env }, maxBuffer: 64 << 20,
  });
  const lines = run.stdout.split('\n');
  const results = lines.filter((l) => l.startsWith('ok ') || l.startsWith('FAIL '));
  test('ran to its summary line', () => {
    assert.ok(/^\d+ passed, \d+ failed/m.test(run.stdout), `no summary (exit ${run.status}, signal ${run.signal}):\n${run.stdout.slice(-2000)}\n${run.stderr.slice(-4000)}`);
    assert.is(run.stderr.includes('ERROR: AddressSanitizer') || run.stderr.includes('runtime error:'), false, `sanitizer report:\n${run.stderr.slice(-4000)}`);
  });
  for (const line of results) {
    const ok = line.startsWith('ok ');
    const label = ok ? line.slice(3) : line.slice(5).split(':')[0]!;
    test(label, () => assert.ok(ok, line));
  }
  test.run();
}

registerChecks('native checks', 'checks', []);
// The same binary with the run-time dispatch held to lower SIMD levels, so
// the AVX2 and scalar kernels a prebuilt binary may pick elsewhere are tested here too.
registerChecks('native checks (GRIP_SIMD=avx2)', 'checks', [], { GRIP_SIMD: 'avx2' });
registerChecks('native checks (GRIP_SIMD=scalar)', 'checks', [], { GRIP_SIMD: 'scalar' });
registerChecks('native checks (ASan+UBSan)', 'asan', ['GRIP_SANITIZE=ON', 'CMAKE_BUILD_TYPE=RelWithDebInfo'],
  { ASAN_OPTIONS: 'detect_leaks=1:abort_on_error=0', UBSAN_OPTIONS: 'print_stacktrace=1' });
