// build-ts.mjs — compiles lib/ to ESM with declarations (tsc -> dist/esm) and
// bundles a CommonJS entry from it (esbuild -> dist/cjs/index.cjs).
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', 'tsconfig.json'], { stdio: 'inherit' });
const esbuild = require('esbuild');
mkdirSync('dist/cjs', { recursive: true });
esbuild.buildSync({
  entryPoints: ['dist/esm/index.js'],
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  outfile: 'dist/cjs/index.js',
  // Dependencies stay packages of their own (sharp loads its native binary by path).
  external: Object.keys(JSON.parse(readFileSync('package.json', 'utf8')).dependencies),
  // import.meta.url has no CommonJS twin; give it the bundle's own file URL.
  define: { 'import.meta.url': '__gripImportMetaUrl' },
  banner: { js: "const __gripImportMetaUrl = require('node:url').pathToFileURL(__filename).href;" },
  logLevel: 'warning',
});
writeFileSync('dist/cjs/package.json', '{ "type": "commonjs" }\n');
