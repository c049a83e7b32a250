// native_loader.test.ts — GRIP_ADDON names the addon file to load instead of
// node-gyp-build's pick (npm run test:asan points it at the sanitizer build).
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ROOT } from './helpers.native.ts';

/** Runs info() in a fresh node with GRIP_ADDON set; returns its output lines. */
function infoWith(addonPath: string): { status: number | null; out: string } {
  const script = "import { info } from './lib/index.ts'; try { console.log('simd ' + info().simd); } catch (e) { console.log(e.code + ': ' + e.message); }";
  const run = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: ROOT, encoding: 'utf8', env: { ...process.env, GRIP_ADDON: addonPath },
  });
  return { status: run.status, out: run.stdout.trim() + (run.stdout.trim() ? '' : run.stderr) };
}

test('GRIP_ADDON loads the named addon file', () => {
  const run = infoWith(join(ROOT, 'build', 'Release', 'grip.node'));
  assert.match(run.out, /^simd (avx512_bf16|avx512|avx2|scalar)$/, run.out);
});

test('GRIP_ADDON naming no addon is ERR_GRIP_IO with the resolved path', () => {
  const run = infoWith('no-such-dir/grip.node');
  const path = join(ROOT, 'no-such-dir', 'grip.node');
  assert.ok(run.out.startsWith(`ERR_GRIP_IO: expected a loadable native addon for GRIP_ADDON but received ${path}: Cannot find module`), run.out);
});

test.run();
