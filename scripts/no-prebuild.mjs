// no-prebuild.mjs — the install fallback when neither a prebuilt binary nor a
// local build loads: build from source with cmake-js when it is installed (a
// source checkout), else explain what to do.
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
let cmakeJs;
try {
  cmakeJs = require.resolve('cmake-js/bin/cmake-js');
} catch {
  console.error('grip-vlm: no prebuilt binary for this platform and cmake-js is not installed; install cmake, a C++17 compiler and cmake-js, then run `npx cmake-js rebuild` in the package folder.');
  process.exit(1);
}
execFileSync(process.execPath, [cmakeJs, 'rebuild'], { stdio: 'inherit' });
