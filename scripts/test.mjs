// test.mjs — runs the uvu suites under test/ (TypeScript through tsx) and
// ends with the line CI reads: "N passed, N failed, N skipped".
// Usage: node scripts/test.mjs [pattern]   (pattern filters test file names)
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const uvu = require.resolve('uvu/bin.js');
const pattern = process.argv[2] ?? '\\.test\\.ts$';
const child = spawn(process.execPath, ['--import', 'tsx', uvu, 'test', pattern], {
  stdio: ['ignore', 'pipe', 'inherit'],
  env: { ...process.env, FORCE_COLOR: '0' },
});
let output = '';
child.stdout.on('data', (chunk) => {
  output += chunk;
  process.stdout.write(chunk);
});
child.on('close', (code, signal) => {
  const total = Number(/Total:\s+(\d+)/.exec(output)?.[1] ?? NaN);
  const passed = Number(/Passed:\s+(\d+)/.exec(output)?.[1] ?? NaN);
  const skipped = Number(/Skipped:\s+(\d+)/.exec(output)?.[1] ?? 0);
  if (Number.isNaN(total) || Number.isNaN(passed)) {
    console.log(`\ntest runner ended without a summary (exit ${code ?? signal})`);
    console.log('0 passed, 1 failed');
    process.exit(1);
  }
  const failed = total - passed;
  console.log(`\n${passed} passed, ${failed} failed, ${skipped} skipped`);
  process.exit(failed > 0 || code !== 0 ? 1 : 0);
});
