// package.test.ts — the published shape: prebuildify puts the addon in
// prebuilds/linux-x64, `npm pack` makes the tarball, and that tarball
// installs with install scripts disabled (npm 11's default for dependencies)
// and loads from both ESM and CommonJS.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ROOT } from './helpers.native.ts';

const test = suite('package');

function sh(command: string, args: string[], cwd: string, env: Record<string, string> = {}) {
  const r = spawnSync(command, args, { cwd, encoding: 'utf8', env: { ...process.env, ...env }, maxBuffer: 64 << 20 });
  return { ok: r.status === 0, out: `${r.stdout}${r.stderr}`, stdout: r.stdout };
}

test('the packed tarball installs without scripts and loads from ESM and CommonJS', () => {
  const prebuild = sh('npx', ['--no-install', 'prebuildify', '--napi', '--strip', '--node-gyp', join(ROOT, 'scripts/prebuild-shim.sh')], ROOT,
    { GRIP_PREBUILD_INCREMENTAL: '1' });
  assert.ok(prebuild.ok, `prebuildify failed:\n${prebuild.out.slice(-3000)}`);
  const prebuilt = readdirSync(join(ROOT, 'prebuilds', `${process.platform}-${process.arch}`));
  assert.ok(prebuilt.some((f) => f.endsWith('.node')), `no .node in prebuilds: ${prebuilt.join(', ')}`);

  const work = mkdtempSync(join(tmpdir(), 'grip-pack-'));
  try {
    const pack = sh('npm', ['pack', '--pack-destination', work, '--silent'], ROOT);
    assert.ok(pack.ok, `npm pack failed:\n${pack.out.slice(-3000)}`);
    const tarball = readdirSync(work).find((f) => f.endsWith('.tgz'));
    assert.ok(tarball, 'npm pack wrote no tarball');
    writeFileSync(join(work, 'package.json'), '{ "name": "consumer", "version": "1.0.0", "private": true }\n');
    const install = sh('npm', ['install', '--ignore-scripts', '--prefer-offline', '--no-audit', '--no-fund', join(work, tarball!)], work);
    assert.ok(install.ok, `npm install of the tarball failed:\n${install.out.slice(-3000)}`);
    assert.not.ok(existsSync(join(work, 'node_modules/grip-vlm/build')), 'the tarball must not carry a build folder');

    const esm = sh(process.execPath, ['--input-type=module', '-e',
      "import { info, ops, tensor } from 'grip-vlm'; const r = ops.topkSync(tensor([3, 1, 2], [1, 3]), 2); console.log(info().version, Array.from(r.indices.host).join(','));"], work);
    assert.ok(esm.ok, `ESM import failed:\n${esm.out}`);
    assert.is(esm.stdout.trim(), '0.1.0 0,2');
    const cjs = sh(process.execPath, ['-e',
      "const { info, ops, tensor, GripError } = require('grip-vlm'); const r = ops.topkSync(tensor([3, 1, 2], [1, 3]), 1); let code; try { ops.topkSync(tensor([1], [1, 1]), 2); } catch (e) { code = e instanceof GripError && e.code; } console.log(info().version, Array.from(r.indices.host).join(','), code);"], work);
    assert.ok(cjs.ok, `CommonJS require failed:\n${cjs.out}`);
    assert.is(cjs.stdout.trim(), '0.1.0 0 ERR_GRIP_RANGE');
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});

test.run();
