// main.ts — `npm run soak -- [--ops N] [--generations N] [--requests N] [--json FILE]`:
// the long memory soak (defaults: 10000 calls of each op, 500 generations,
// 2000 served requests) on the CPU backend, then, where a GPU is visible, the
// same op calls on device tensors and the generations on a CUDA model; one
// line per phase; exits 1 when a native counter does not return to its
// baseline, RSS or the GPU's memory in use grows by 5% or more, or the device
// refuses a call.
// The npm script fixes V8's own heap sizing for the run (young generation at
// 16 MiB semi-spaces from the start, no memory reducer): left to itself, V8
// grows its young generation from 16 to 32 MiB once at some point of a long
// op phase and releases old pages on a timer, which moved RSS by -14% to +13%
// with the addon's memory flat (docs/hardening.md, "Soak"). Run main.ts with
// plain `node --expose-gc --import tsx` to see V8's default behaviour.
import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { deviceMemory, info } from '../../lib/index.ts';
import { embeddedModelDir } from '../../lib/demo.ts';
import { loadVLM } from '../../lib/model/vlm.ts';
import { describeReport, soakDeviceOps, soakGenerations, soakOps, soakServe, type PhaseReport } from './soak.ts';

const { values } = parseArgs({ options: { ops: { type: 'string', default: '10000' }, generations: { type: 'string', default: '500' }, requests: { type: 'string', default: '2000' }, json: { type: 'string' } } });
const MAX_RSS_GROWTH = 0.05;
console.log(`memory soak · ${cpus()[0]?.model.trim() ?? 'unknown CPU'}, ${cpus().length} cores · node ${process.version} ${process.execArgv.filter((a) => !a.startsWith('--import') && a !== 'tsx').join(' ')} · addon ${info().simd}, ${info().threads} threads`);
const reports: PhaseReport[] = [];
const report = (r: PhaseReport) => { reports.push(r); console.log(describeReport(r)); };
if (Number(values.ops) > 0) report(await soakOps(Number(values.ops)));
const model = await loadVLM(embeddedModelDir(), { backend: 'cpu' });
if (Number(values.generations) > 0) report(await soakGenerations(model, Number(values.generations)));
if (Number(values.requests) > 0) report(await soakServe(model, Number(values.requests)));
model.dispose();
const gpu = deviceMemory();
if (gpu === null) {
  console.log(`device phases: skipped (${info().cuda.compiled ? 'no visible GPU' : 'a build without CUDA'})`);
} else {
  console.log(`device phases: GPU ${(gpu.totalBytes / 2 ** 30).toFixed(1)} GiB, ${(gpu.usedBytes / 2 ** 20).toFixed(0)} MiB in use`);
  if (Number(values.ops) > 0) report(await soakDeviceOps(Number(values.ops)));
  const cudaModel = await loadVLM(embeddedModelDir(), { backend: 'cuda' });
  if (Number(values.generations) > 0) report(await soakGenerations(cudaModel, Number(values.generations)));
  cudaModel.dispose();
}
if (values.json) writeFileSync(values.json, `${JSON.stringify({ date: new Date().toISOString(), cpu: cpus()[0]?.model.trim(), node: process.version, reports }, null, 2)}\n`);
const failures = reports.flatMap((r) => [
  ...(['deviceBytes', 'deviceBuffers', 'pendingOps', 'decoderPlans', 'decoderWorkspaceBytes'] as const).filter((k) => r.after[k] !== r.before[k]).map((k) => `${r.phase}: ${k} ${r.before[k]} -> ${r.after[k]}`),
  ...(r.rssGrowth >= MAX_RSS_GROWTH ? [`${r.phase}: RSS grew ${(100 * r.rssGrowth).toFixed(2)}% (limit ${100 * MAX_RSS_GROWTH}%)`] : []),
  ...(r.deviceGrowth !== null && r.deviceGrowth >= MAX_RSS_GROWTH ? [`${r.phase}: GPU memory in use grew ${(100 * r.deviceGrowth).toFixed(2)}% (limit ${100 * MAX_RSS_GROWTH}%)`] : []),
  ...Object.entries(r.refused ?? {}).map(([what, calls]) => `${r.phase}: the device refused ${calls} calls of ${what}`),
]);
for (const f of failures) console.log(`FAIL ${f}`);
process.exit(failures.length > 0 ? 1 : 0);
