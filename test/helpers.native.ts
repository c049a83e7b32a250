// helpers.native.ts — builds and locates native artefacts for the tests that
// run programs (the C ABI example, the native checks under the emulator).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

/** Configures (once) and builds a CMake target into build/<dir>; returns the build log on failure. */
export function cmakeBuild(dir: string, target: string, defines: string[]): { ok: boolean; log: string; binaryDir: string } {
  const binaryDir = join(ROOT, 'build', dir);
  const run = (args: string[]) => spawnSync('cmake', args, { cwd: ROOT, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (!existsSync(join(binaryDir, 'CMakeCache.txt'))) {
    const configure = run(['-S', '.', '-B', binaryDir, ...defines.map((d) => `-D${d}`)]);
    if (configure.status !== 0) return { ok: false, log: configure.stdout + configure.stderr, binaryDir };
  }
  const build = run(['--build', binaryDir, '--target', target, '-j', '2']);
  return { ok: build.status === 0, log: build.stdout + build.stderr, binaryDir };
}

