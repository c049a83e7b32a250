// harness.ts — the benchmark table: each row times an op and its baseline in
// the same process (mitata's measure, median of many samples) and prints
// op | shape | time | throughput | baseline | ratio.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { measure } from 'mitata';
import { cpus } from 'node:os';

export interface Row {
  op: string;
  shape: string;
  /** What the op does per call, for the throughput column. */
  work: { flop?: number; bytes?: number };
  run: () => unknown;
  /** Timed here with `run`, or measured elsewhere (another process) as `ns` per call. */
  baseline: { name: string; run?: () => unknown; ns?: number };
}

const quick = process.argv.includes('--quick');

function fmtTime(ns: number): string {
  if (ns < 1e3) return `${ns.toFixed(0)} ns`;
  if (ns < 1e6) return `${(ns / 1e3).toFixed(2)} µs`;
  if (ns < 1e9) return `${(ns / 1e6).toFixed(2)} ms`;
  return `${(ns / 1e9).toFixed(2)} s`;
}

function fmtWork(work: Row['work'], ns: number): string {
  if (work.flop) return `${(work.flop / ns).toFixed(1)} GFLOP/s`;
  if (work.bytes) return `${(work.bytes / ns).toFixed(1)} GB/s`;
  return '';
}

async function median(fn: () => unknown): Promise<number> {
  const stats = await measure(fn, {
    min_cpu_time: (quick ? 50 : 400) * 1e6,
    min_samples: quick ? 3 : 8,
    max_samples: quick ? 50 : 400,
    warmup_samples: 2,
  });
  return stats.p50;
}

/** A row as measured, for bench/results/<bench>.json: medians in ns; ratio = baseline / ours. */
export interface MeasuredRow {
  table: string;
  op: string;
  shape: string;
  ns: number;
  baseline: string;
  baselineNs: number;
  ratio: number;
}

/** Runs the rows and prints a Markdown table; returns the measured rows. */
export async function runTable(title: string, rows: Row[]): Promise<MeasuredRow[]> {
  const measured: MeasuredRow[] = [];
  console.log(`\n### ${title}\n`);
  console.log('| op | shape | time | throughput | baseline | baseline time | speed-up |');
  console.log('|---|---|---|---|---|---|---|');
  for (const row of rows) {
    const ours = await median(row.run);
    const base = row.baseline.run ? await median(row.baseline.run) : row.baseline.ns!;
    console.log(`| ${row.op} | ${row.shape} | ${fmtTime(ours)} | ${fmtWork(row.work, ours)} | ${row.baseline.name} | ${fmtTime(base)} | ${(base / ours).toFixed(2)}x |`);
    measured.push({ table: title, op: row.op, shape: row.shape, ns: ours, baseline: row.baseline.name, baselineNs: base, ratio: base / ours });
  }
  return measured;
}

/** Writes bench/results/<name>.json (a quick run: <name>.quick.json) with the CPU it ran on. */
export function writeResults(name: string, rows: unknown[]): void {
  const dir = join(dirname(fileURLToPath(import.meta.url)), 'results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${name}${quick ? '.quick' : ''}.json`);
  writeFileSync(file, `${JSON.stringify({ cpu: cpus()[0]?.model ?? 'unknown', threads: cpus().length, date: new Date().toISOString(), rows }, null, 2)}\n`);
  console.log(`\nwritten: ${file}`);
}

/** Uniform floats in (-scale, scale) from a seeded LCG: the benches' inputs, the same on every run. */
export function seededFloats(seed: number): (n: number, scale?: number) => Float32Array {
  let state = seed;
  const random = () => ((state = (state * 1103515245 + 12345) % 2147483648) / 2147483648) * 2 - 1;
  return (n, scale = 1) => {
    const out = new Float32Array(n);
    for (let j = 0; j < n; j++) out[j] = random() * scale;
    return out;
  };
}
