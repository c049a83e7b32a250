// test-asan.mjs — the op, runtime and pruner test files against an addon built
// with AddressSanitizer + UBSan (build-asan/, CPU only), loaded into the
// ordinary node with the sanitizer runtimes preloaded. Ends with the line
// "N passed, N failed, N skipped; sanitizer reports: R" (details: docs/hardening.md).
// Usage: node scripts/test-asan.mjs [pattern]   (npm run test:asan; pattern as scripts/test.mjs)
import { spawnSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const buildDir = join(root, 'build-asan');
const addon = join(buildDir, 'Release', 'grip.node');
const reports = join(buildDir, 'reports');
// The op, runtime and pruner files: everything that drives native code with
// tensors. Left out: native.test.ts (its own ASan build of the checks),
// package/imports (no native calls), c_abi (its libgrip.so is the plain build; the C ABI runs sanitized under the libFuzzer target), train/serve/eval/fuzz (long runs of the
// same ops, covered by the op files and `npm run fuzz`).
const defaultPattern =
  '^((ops|grad|gumbel|errors|matmul|gemv|transformer|transformer_errors|out|api)\\.test\\.ts|(model|prune)/[^/]+\\.test\\.ts)$';
const pattern = process.argv[2] ?? defaultPattern;

const started = Date.now();
console.log('== build the sanitizer addon (build-asan/, GRIP_SANITIZE_ADDON=ON, CPU only)');
const build = spawnSync('npx', ['--no-install', 'cmake-js', 'build', '-O', 'build-asan',
  '--CDGRIP_SANITIZE_ADDON=ON', '--CDGRIP_CUDA=OFF'], {
  cwd: root, encoding: 'utf8', env: { ...process.env, GRIP_CUDA: 'OFF' }, maxBuffer: 256 << 20,
});
if (build.status !== 0 || !existsSync(addon)) {
  console.log(`${build.stdout}\n${build.stderr}`.slice(-6000));
  console.log(`\nthe sanitizer build failed (exit ${build.status})\n0 passed, 1 failed`);
  process.exit(1);
}
const buildSeconds = (Date.now() - started) / 1000;

/** The path of a runtime library as the compiler that built the addon finds it. */
function runtime(name) {
  const found = spawnSync('g++', [`-print-file-name=${name}`], { encoding: 'utf8' }).stdout.trim();
  if (!found.startsWith('/')) {
    console.log(`expected g++ to know the path of ${name} but received ${JSON.stringify(found)}\n0 passed, 1 failed`);
    process.exit(1);
  }
  return found;
}

rmSync(reports, { recursive: true, force: true });
mkdirSync(reports, { recursive: true });
const env = {
  ...process.env,
  GRIP_ADDON: addon,
  // Preloaded: node itself is not instrumented, and the ASan runtime must come
  // first in the link order to intercept malloc before anything allocates.
  LD_PRELOAD: [runtime('libasan.so'), runtime('libubsan.so')].join(':'),
  // detect_leaks=0: node and V8 keep their heap, isolates and code space to
  // the end by design (no teardown at exit), so LeakSanitizer would report
  // thousands of "leaks" outside grip. Every other check stays on; reports go
  // to files (children such as the C ABI example report there too).
  ASAN_OPTIONS: `detect_leaks=0:halt_on_error=1:abort_on_error=0:log_path=${join(reports, 'asan')}`,
  UBSAN_OPTIONS: `print_stacktrace=1:halt_on_error=1:log_path=${join(reports, 'ubsan')}`,
};
console.log(`== the test files matching ${pattern}, under ASan + UBSan`);
const child = spawn(process.execPath, [join(root, 'scripts', 'test.mjs'), pattern], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
let output = '';
let errors = '';
child.stdout.on('data', (chunk) => {
  output += chunk;
  process.stdout.write(chunk);
});
// UBSan linked beside ASan (gcc) prints to stderr whatever log_path says: count those too.
child.stderr.on('data', (chunk) => {
  errors += chunk;
  process.stderr.write(chunk);
});
child.on('close', (code) => {
  const files = readdirSync(reports);
  const inStderr = (errors.match(/runtime error:|ERROR: AddressSanitizer/g) ?? []).length;
  for (const file of files) {
    console.log(`\n== sanitizer report ${file}\n${readFileSync(join(reports, file), 'utf8').slice(0, 8000)}`);
  }
  const summary = /(\d+) passed, (\d+) failed, (\d+) skipped/.exec(output);
  const testSeconds = (Date.now() - started) / 1000 - buildSeconds;
  console.log(`\nbuild ${buildSeconds.toFixed(0)} s, tests ${testSeconds.toFixed(0)} s`);
  const count = files.length + inStderr;
  console.log(`${summary ? summary[0] : '0 passed, 1 failed, 0 skipped'}; sanitizer reports: ${count}`);
  process.exit(code === 0 && count === 0 && summary !== null ? 0 : 1);
});
