// test.mjs — runs the uvu suites under test/ (TypeScript through tsx) and
// ends with the line CI reads: "N passed, N failed, N skipped".
// Usage: node scripts/test.mjs [pattern]   (pattern filters test file names)
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const require = createRequire(import.meta.url);
// uvu does not export its bin: find it beside its main entry (dist/index.js).
const uvu = join(dirname(require.resolve('uvu')), '..', 'bin.js');
const pattern = process.argv[2] ?? '\\.test\\.ts$';
const env = { ...process.env, NO_COLOR: '1' };
delete env.FORCE_COLOR; // it would override NO_COLOR (and Node warns about the pair)
const child = spawn(process.execPath, ['--import', 'tsx', uvu, 'test', pattern], {
  stdio: ['ignore', 'pipe', 'inherit'],
  env,
});
let output = '';
child.stdout.on('data', (chunk) => {
  output += chunk;
  process.stdout.write(chunk);
});
child.on('close', (code, signal) => {
  output = output.replace(/\x1b\[[0-9;]*m/g, '');
  const total = Number(/Total:\s+(\d+)/.exec(output)?.[1] ?? NaN);
  const passed = Number(/Passed:\s+(\d+)/.exec(output)?.[1] ?? NaN);
  const skipped = Number(/Skipped:\s+(\d+)/.exec(output)?.[1] ?? 0);
  if (Number.isNaN(total) || Number.isNaN(passed)) {
    console.log(`\ntest runner ended without a summary (exit ${code ?? signal})`);
    console.log('0 passed, 1 failed');
    process.exit(1);
  }
  const failed = total - passed;
  if (code !== 0 && failed === 0) console.log(`\nthe test process exited with ${code ?? signal} after its summary`);
  console.log(`\n${passed} passed, ${failed} failed, ${skipped} skipped`);
  process.exit(failed > 0 || code !== 0 ? 1 : 0);
});
