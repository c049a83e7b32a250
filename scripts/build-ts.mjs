// build-ts.mjs — compiles lib/ to ESM with declarations (tsc -> dist/esm) and
// the CommonJS twins of the package's entries (esbuild -> dist/cjs).
// The entries ('.', './train', './testbed') share one CommonJS bundle of
// everything, dist/cjs/grip.js, and each entry's file re-exports its names
// from it: one copy of each module, so a Tensor made by `require('grip-vlm')`
// is a Tensor to `require('grip-vlm/train')` too (instanceof holds).
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';

/** Entry subpath -> its ESM file and its CommonJS file (package.json "exports" lists the same). */
const ENTRIES = [
  { esm: 'dist/esm/index.js', cjs: 'dist/cjs/index.js' },
  { esm: 'dist/esm/train/index.js', cjs: 'dist/cjs/train.js' },
  { esm: 'dist/esm/testbed.js', cjs: 'dist/cjs/testbed.js' },
];

const require = createRequire(import.meta.url);
rmSync('dist', { recursive: true, force: true }); // no file of a module since moved or deleted ships
execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', 'tsconfig.json'], { stdio: 'inherit' });
const esbuild = require('esbuild');
// Dependencies stay packages of their own (sharp loads its native binary by path).
const external = Object.keys(JSON.parse(readFileSync('package.json', 'utf8')).dependencies);
mkdirSync('dist/cjs', { recursive: true });

// The names each entry exports (an ESM bundle's metafile lists them; nothing is written).
const exported = ENTRIES.map(({ esm }) => {
  const { metafile } = esbuild.buildSync({ entryPoints: [esm], bundle: true, platform: 'node', format: 'esm', external, write: false, outfile: 'out.js', metafile: true, logLevel: 'error' });
  return Object.values(metafile.outputs).find((o) => o.entryPoint !== undefined).exports;
});

// The shared bundle: every entry's exports, from one copy of lib/.
const all = ENTRIES.map(({ esm }) => `export * from ${JSON.stringify(`./${esm.slice('dist/esm/'.length)}`)};`).join('\n');
esbuild.buildSync({
  stdin: { contents: all, resolveDir: 'dist/esm', sourcefile: 'grip.js' },
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  outfile: 'dist/cjs/grip.js',
  external,
  // import.meta.url has no CommonJS twin; give it the bundle's own file URL.
  define: { 'import.meta.url': '__gripImportMetaUrl' },
  banner: { js: "const __gripImportMetaUrl = require('node:url').pathToFileURL(__filename).href;" },
  logLevel: 'warning',
});
ENTRIES.forEach(({ cjs }, e) => {
  const names = exported[e].map((name) => `  ${JSON.stringify(name)},`).join('\n');
  writeFileSync(cjs, `'use strict';
// ${cjs.slice('dist/cjs/'.length)} — a CommonJS entry of grip-vlm (scripts/build-ts.mjs): its names from the shared bundle.
const all = require('./grip.js');
for (const name of [
${names}
]) Object.defineProperty(exports, name, { enumerable: true, get: () => all[name] });
`);
});
writeFileSync('dist/cjs/package.json', '{ "type": "commonjs" }\n');
