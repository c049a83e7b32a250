// package.test.ts — the published shape: the tarball carries the embedded
// model and its pruner but no training artefacts; prebuildify puts the addon
// in prebuilds/linux-x64, `npm pack` makes the tarball, and that tarball
// installs with install scripts disabled (npm 11's default for dependencies)
// and loads every entry ('grip-vlm', 'grip-vlm/train', 'grip-vlm/testbed')
// from both ESM and CommonJS, sharing one copy of the modules.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ROOT } from './helpers.native.ts';

const test = suite('package');

function sh(command: string, args: string[], cwd: string, env: Record<string, string> = {}) {
  const r = spawnSync(command, args, { cwd, encoding: 'utf8', env: { ...process.env, ...env }, maxBuffer: 64 << 20 });
  return { ok: r.status === 0, out: `${r.stdout}${r.stderr}`, stdout: r.stdout };
}

// The release runs in a copy of the source tree: prebuildify strips the
// addon it builds in place, which must not be the one this process has loaded.
function sourceCopy(): string {
  const dir = mkdtempSync(join(tmpdir(), 'grip-src-'));
  const files = spawnSync('git', ['ls-files', '--cached', '--others', '--exclude-standard'], { cwd: ROOT, encoding: 'utf8' });
  assert.is(files.status, 0, `git ls-files failed: ${files.stderr}`);
  for (const file of files.stdout.split('\n').filter(Boolean)) {
    if (!existsSync(join(ROOT, file))) continue; // deleted in the work tree
    mkdirSync(dirname(join(dir, file)), { recursive: true });
    copyFileSync(join(ROOT, file), join(dir, file));
  }
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  return dir;
}

/** The paths `npm pack` would put in the tarball of `dir` (no scripts run: dist/ is as built). */
function packedFiles(dir: string): string[] {
  const pack = sh('npm', ['pack', '--dry-run', '--json', '--ignore-scripts', '--silent'], dir);
  assert.ok(pack.ok, `npm pack --dry-run failed:\n${pack.out.slice(-3000)}`);
  return (JSON.parse(pack.stdout) as { files: { path: string }[] }[])[0]!.files.map((f) => f.path);
}

const MODEL = 'models/shapes-llava-tiny';

test('the tarball ships the embedded model and its pruners, and none of the training artefacts', () => {
  const files = packedFiles(ROOT);
  for (const shipped of ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json', 'preprocessor_config.json', 'grip/grip.json', 'grip/pruner.safetensors', 'grip/warmup/grip.json', 'grip/warmup/pruner.safetensors']) {
    assert.ok(files.includes(`${MODEL}/${shipped}`), `${MODEL}/${shipped} is in the tarball`);
  }
  // Training artefacts: the log, the optimiser moments and the resume state (they are on disk: the patterns, not their absence, keep them out).
  for (const artefact of ['grip/train.jsonl', 'grip/optimizer.safetensors', 'grip/state.json']) {
    assert.ok(existsSync(join(ROOT, MODEL, artefact)), `${MODEL}/${artefact} is in the repository`);
    assert.not.ok(files.includes(`${MODEL}/${artefact}`), `${MODEL}/${artefact} is left out of the tarball`);
  }
});

test('the packed tarball installs without scripts and loads from ESM and CommonJS', () => {
  const source = sourceCopy();
  // A CPU-only prebuild keeps this test quick; the CUDA variant is built (and gated) by .ci/run.
  const prebuild = sh('npm', ['run', 'prebuild', '--silent'], source, { GRIP_CUDA: 'OFF' });
  assert.ok(prebuild.ok, `npm run prebuild failed:\n${prebuild.out.slice(-3000)}`);
  const prebuilt = readdirSync(join(source, 'prebuilds', `${process.platform}-${process.arch}`));
  assert.ok(prebuilt.some((f) => f.endsWith('.node')), `no .node in prebuilds: ${prebuilt.join(', ')}`);

  const work = mkdtempSync(join(tmpdir(), 'grip-pack-'));
  try {
    const pack = sh('npm', ['pack', '--pack-destination', work, '--silent'], source);
    assert.ok(pack.ok, `npm pack failed:\n${pack.out.slice(-3000)}`);
    const tarball = readdirSync(work).find((f) => f.endsWith('.tgz'));
    assert.ok(tarball, 'npm pack wrote no tarball');
    writeFileSync(join(work, 'package.json'), '{ "name": "consumer", "version": "1.0.0", "private": true }\n');
    const install = sh('npm', ['install', '--ignore-scripts', '--prefer-offline', '--no-audit', '--no-fund', join(work, tarball!)], work);
    assert.ok(install.ok, `npm install of the tarball failed:\n${install.out.slice(-3000)}`);
    assert.not.ok(existsSync(join(work, 'node_modules/grip-vlm/build')), 'the tarball must not carry a build folder');
    // Where install scripts do run, the package's own finds its prebuilt binary and builds nothing.
    const installScript = sh(process.execPath, [join(work, 'node_modules/grip-vlm/scripts/install.mjs')], work);
    assert.ok(installScript.ok, `the install script failed with the prebuilt binary present:\n${installScript.out}`);
    assert.not.ok(existsSync(join(work, 'node_modules/grip-vlm/build')), 'the install script built from source although a prebuilt binary was there');

    const esm = sh(process.execPath, ['--input-type=module', '-e',
      "import { info, ops, tensor } from 'grip-vlm'; const r = ops.topkSync(tensor([3, 1, 2], [1, 3]), 2); console.log(info().version, Array.from(r.indices.host).join(','));"], work);
    assert.ok(esm.ok, `ESM import failed:\n${esm.out}`);
    assert.is(esm.stdout.trim(), '0.1.0 0,2');
    const cjs = sh(process.execPath, ['-e',
      "const { info, ops, tensor, GripError } = require('grip-vlm'); const r = ops.topkSync(tensor([3, 1, 2], [1, 3]), 1); let code; try { ops.topkSync(tensor([1], [1, 1]), 2); } catch (e) { code = e instanceof GripError && e.code; } console.log(info().version, Array.from(r.indices.host).join(','), code);"], work);
    assert.ok(cjs.ok, `CommonJS require failed:\n${cjs.out}`);
    assert.is(cjs.stdout.trim(), '0.1.0 0 ERR_GRIP_RANGE');

    // Every file "exports" names is in the tarball.
    const files = packedFiles(source);
    const exportsMap = JSON.parse(readFileSync(join(source, 'package.json'), 'utf8')).exports as Record<string, string | Record<string, string>>;
    for (const [subpath, target] of Object.entries(exportsMap)) {
      for (const file of typeof target === 'string' ? [target] : Object.values(target)) assert.ok(files.includes(file.replace(/^\.\//, '')), `${subpath}: ${file} is in the tarball`);
    }
    // The subpaths: the trainers and the testbed, from ESM and CommonJS, on the same modules as the root entry.
    const subpaths = "const root = IMPORT('grip-vlm'), train = IMPORT('grip-vlm/train'), testbed = IMPORT('grip-vlm/testbed');" +
      " let same; try { train.parseBudgets('0.5:0.1'); } catch (e) { same = e instanceof root.GripError; }" +
      ' console.log([train.TRAIN_DEFAULTS.hidden, typeof train.trainGrip, typeof testbed.shapes.makeExamples, typeof testbed.evaluate,' +
      " same, typeof root.trainGrip, typeof root.shapes].join(' '));";
    const esmSubpaths = sh(process.execPath, ['--input-type=module', '-e', subpaths.replace(/IMPORT\(('[^']+')\)/g, 'await import($1)')], work);
    assert.ok(esmSubpaths.ok, `ESM import of the subpaths failed:\n${esmSubpaths.out}`);
    assert.is(esmSubpaths.stdout.trim(), '128 function function function true undefined undefined');
    const cjsSubpaths = sh(process.execPath, ['-e', subpaths.replace(/IMPORT\(/g, 'require(')], work);
    assert.ok(cjsSubpaths.ok, `CommonJS require of the subpaths failed:\n${cjsSubpaths.out}`);
    assert.is(cjsSubpaths.stdout.trim(), '128 function function function true undefined undefined');
  } finally {
    rmSync(work, { recursive: true, force: true });
    rmSync(source, { recursive: true, force: true });
  }
});

test.run();
