// install.mjs — the install step: nothing to do when a prebuilt binary
// (prebuilds/<platform>-<arch>, in the published package) or a local build
// loads; otherwise build from source with cmake-js (a source checkout).
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const root = join(dirname(fileURLToPath(import.meta.url)), '..');
try {
  require('node-gyp-build')(root);
  process.exit(0);
} catch {
  // no usable binary: build one
}
let cmakeJs;
try {
  cmakeJs = require.resolve('cmake-js/bin/cmake-js');
} catch {
  console.error('grip-vlm: no prebuilt binary for this platform and cmake-js is not installed; install cmake, a C++17 compiler and cmake-js, then run `npx cmake-js rebuild` in the package folder.');
  process.exit(1);
}
execFileSync(process.execPath, [cmakeJs, 'rebuild'], { stdio: 'inherit', cwd: root });
