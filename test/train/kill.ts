// kill.ts — the kill harness of crash-safe training (docs/hardening.md,
// "Crash-safe training"): runs `grip train` in a child process, SIGKILLs it at
// seeded moments (a drawn number of steps into the run plus a drawn delay, or
// right inside a checkpoint write or a log append through the test hook
// GRIP_TEST_CRASH_AT), checks after each kill that no file is corrupt, resumes
// with --resume until the run is done, then compares every output file byte for
// byte with an uninterrupted run of the same seed.
// As a command: node --import tsx test/train/kill.ts [--kills 20] [--seed 1] [--out DIR]
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { SafetensorsFile } from '../../lib/model/safetensors.ts';
import { GripPruner } from '../../lib/prune/grip.ts';
import { mulberry32 } from '../../lib/random.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** A short run on the embedded testbed model: a checkpoint after every step, so kills land in checkpoint writes too. */
export const SHORT_RUN = ['--data', 'shapes:8', '--warmup-steps', '6', '--steps', '6', '--group', '2', '--prompts-per-step', '1',
  '--hidden', '8', '--rank', '4', '--checkpoint-every', '1', '--seed', '7', '--threads', '1'];
/** Log lines (steps) of SHORT_RUN: 6 warm-up + 6 GRPO. */
export const SHORT_RUN_STEPS = 12;

/** Where a kill lands: a drawn number of new log lines plus a drawn delay (ms), or a test hook point ("checkpoint-files:2"). */
export type Kill = { afterLines: number; delayMs: number } | { hook: string };

export interface Launch {
  kill: Kill | null;
  /** How the child ended: "SIGKILL" or its exit code. */
  ended: string;
  /** Log lines when it ended. */
  lines: number;
  /** Whether train.jsonl ended in a torn line (a kill in the middle of an append). */
  tornLog: boolean;
  /** What a kill inside a checkpoint write leaves: temp files, a checkpoint directory state.json does not name (the resume removes them). */
  leftovers: string[];
  ms: number;
}

/** Runs `grip train --out out ...args` (with --resume when asked) and kills it as `kill` says; resolves when the child has ended. */
export function launch(out: string, args: readonly string[], resume: boolean, kill: Kill | null): Promise<Launch> {
  const started = performance.now();
  const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1' };
  delete env.GRIP_TEST_CRASH_AT;
  if (kill && 'hook' in kill) env.GRIP_TEST_CRASH_AT = kill.hook;
  const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'lib', 'cli.ts'), 'train', '--out', out, ...args, ...(resume ? ['--resume'] : [])],
    { cwd: root, env, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk) => { stderr += chunk; });
  let poll: NodeJS.Timeout | undefined;
  if (kill && 'afterLines' in kill) {
    const target = logLines(out) + kill.afterLines;
    poll = setInterval(() => {
      if (logLines(out) < target) return;
      clearInterval(poll);
      poll = undefined;
      setTimeout(() => child.kill('SIGKILL'), kill.delayMs);
    }, 2);
  }
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (poll) clearInterval(poll);
      const ended = signal ?? String(code);
      if (ended !== 'SIGKILL' && ended !== '0') reject(new Error(`grip train ended with ${ended}:\n${stderr.slice(-2000)}`));
      else resolve({ kill, ended, lines: logLines(out), tornLog: tornLog(out), leftovers: leftovers(out), ms: performance.now() - started });
    });
  });
}

/** Complete lines of out/train.jsonl (0 when there is none). */
export function logLines(out: string): number {
  const path = join(out, 'train.jsonl');
  if (!existsSync(path)) return 0;
  const text = readFileSync(path, 'utf8');
  let count = 0;
  for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) count++;
  return count;
}

function tornLog(out: string): boolean {
  const path = join(out, 'train.jsonl');
  const text = existsSync(path) ? readFileSync(path, 'utf8') : '';
  return text !== '' && !text.endsWith('\n');
}

function leftovers(out: string): string[] {
  if (!existsSync(out)) return [];
  const state = existsSync(join(out, 'state.json')) ? JSON.parse(readFileSync(join(out, 'state.json'), 'utf8')) : {};
  const checkpoints = existsSync(join(out, 'checkpoints')) ? readdirSync(join(out, 'checkpoints')) : [];
  return [
    ...filesUnder(out).filter((f) => f.endsWith('.tmp')),
    ...checkpoints.filter((name) => name !== state.checkpoint).map((name) => `checkpoints/${name} (not committed)`),
  ];
}

/** What is wrong with the files of a run directory after a kill (empty: nothing is corrupt). A torn last log line is what a kill mid-append leaves; the resume cuts it. */
export async function corruption(out: string): Promise<string[]> {
  const problems: string[] = [];
  const check = async (what: string, body: () => Promise<unknown>) => {
    try {
      await body();
    } catch (error) {
      problems.push(`${what}: ${(error as Error).message}`);
    }
  };
  const safetensors = async (path: string) => {
    const file = await SafetensorsFile.open(path);
    try {
      for (const name of file.names) await file.read(name);
    } finally {
      await file.close();
    }
  };
  const statePath = join(out, 'state.json');
  if (existsSync(statePath)) {
    await check('state.json', async () => {
      const state = JSON.parse(readFileSync(statePath, 'utf8'));
      if (state.checkpoint !== undefined) {
        const dir = join(out, 'checkpoints', state.checkpoint);
        const pruner = await GripPruner.load(dir);
        const [phase, step] = [state.checkpoint.split('-')[0], Number(state.checkpoint.split('-')[1])];
        const steps = phase === 'warmup' ? pruner.settings.training.warmupSteps : pruner.settings.training.grpoSteps;
        if (steps !== step) throw new Error(`checkpoint ${state.checkpoint} holds a pruner of step ${steps}`);
        await safetensors(join(dir, 'optimizer.safetensors'));
        if (logLines(out) < state.logLines) throw new Error(`train.jsonl has ${logLines(out)} complete lines, fewer than the checkpoint's ${state.logLines}`);
      }
    });
  }
  for (const dir of [out, join(out, 'warmup')]) {
    if (existsSync(join(dir, 'grip.json')) || existsSync(join(dir, 'pruner.safetensors'))) await check(relative(out, dir) || 'out', () => GripPruner.load(dir));
  }
  const logPath = join(out, 'train.jsonl');
  if (existsSync(logPath)) {
    const lines = readFileSync(logPath, 'utf8').split('\n').slice(0, -1);
    lines.forEach((line, i) => {
      try {
        JSON.parse(line);
      } catch {
        problems.push(`train.jsonl: line ${i + 1} is not JSON: ${line.slice(0, 60)}`);
      }
    });
  }
  return problems;
}

/** Every file under dir, relative, sorted. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? filesUnder(path).map((f) => join(name, f)) : [name];
  }).sort();
}

/** The bytes of a file with its wall-clock fields blanked (grip.json's training.wallSeconds, train.jsonl's ms): everything else must match byte for byte. */
function comparable(path: string): Buffer {
  const bytes = readFileSync(path);
  if (path.endsWith('grip.json')) return Buffer.from(bytes.toString('utf8').replace(/"wallSeconds": [0-9.e+-]+/g, '"wallSeconds": 0'));
  if (path.endsWith('train.jsonl')) return Buffer.from(bytes.toString('utf8').replace(/"ms":\{[^}]*\}/g, '"ms":{}'));
  return bytes;
}

/** How two run directories differ (empty: the same files, byte for byte but the wall-clock fields). */
export function differences(a: string, b: string): string[] {
  const fa = filesUnder(a), fb = filesUnder(b);
  const found: string[] = [];
  for (const f of fa) if (!fb.includes(f)) found.push(`${f} only in the first run`);
  for (const f of fb) if (!fa.includes(f)) found.push(`${f} only in the second run`);
  for (const f of fa) if (fb.includes(f) && !comparable(join(a, f)).equals(comparable(join(b, f)))) found.push(`${f} differs`);
  return found;
}

/** `count` kills drawn from `seed`: every fourth a hook point (checkpoint files, state.json's temp file, the published pruner, a log line, in turn), the rest 1-2 steps in plus a delay within a step. */
export function drawKills(count: number, seed: number, stepMs: number): Kill[] {
  const random = mulberry32(seed);
  const hooks = ['checkpoint-files', 'state-temp', 'publish', 'log'];
  return Array.from({ length: count }, (_, i) => (i % 4 === 3
    ? { hook: `${hooks[((i + 1) / 4 - 1) % hooks.length]}:${1 + Math.floor(random() * 2)}` }
    : { afterLines: 1 + Math.floor(random() * 2), delayMs: Math.floor(random() * stepMs) }));
}

export interface KillReport {
  launches: Launch[];
  kills: number;
  resumes: number;
  corrupt: string[];
  differences: string[];
  ms: number;
}

/** Runs `args` into `out` with the kills (a launch each, resumed after), checks the files after each kill, finishes the run, compares with `reference`. */
export async function killedRun(out: string, args: readonly string[], kills: readonly Kill[], reference: string): Promise<KillReport> {
  const started = performance.now();
  const launches: Launch[] = [];
  const corrupt: string[] = [];
  for (const kill of [...kills, null]) {
    const l = await launch(out, args, launches.length > 0, kill);
    launches.push(l);
    if (l.ended === 'SIGKILL') for (const p of await corruption(out)) corrupt.push(`after kill ${launches.length} (${JSON.stringify(kill)}): ${p}`);
    if (l.ended === '0') break;
  }
  return {
    launches, kills: launches.filter((l) => l.ended === 'SIGKILL').length, resumes: launches.length - 1,
    corrupt, differences: differences(reference, out), ms: performance.now() - started,
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { kills: { type: 'string' }, seed: { type: 'string' }, out: { type: 'string' } }, strict: true });
  const kills = Number(values.kills ?? 20), seed = Number(values.seed ?? 1);
  const work = values.out ?? mkdtempSync(join(tmpdir(), 'grip-kill-'));
  // A longer run than the test's, so 20 kills fit before it ends.
  const args = [...SHORT_RUN.slice(0, SHORT_RUN.indexOf('--warmup-steps')), '--warmup-steps', '24', '--steps', '24', ...SHORT_RUN.slice(SHORT_RUN.indexOf('--steps') + 2)];
  const reference = join(work, 'reference');
  rmSync(reference, { recursive: true, force: true });
  const plain = await launch(reference, args, false, null);
  const stepMs = plain.ms / 48;
  const plan = drawKills(kills, seed, stepMs);
  const out = join(work, 'killed');
  rmSync(out, { recursive: true, force: true });
  const report = await killedRun(out, args, plan, reference);
  for (const [i, l] of report.launches.entries()) {
    const left = l.leftovers.length > 0 ? `, inside a checkpoint write: left ${l.leftovers.join(', ')}` : '';
    console.log(`launch ${i + 1}: ${l.kill ? JSON.stringify(l.kill) : 'to the end'} -> ${l.ended} at ${l.lines} log lines${l.tornLog ? ', torn last line' : ''}${left} (${(l.ms / 1000).toFixed(1)} s)`);
  }
  const inWrites = report.launches.filter((l) => l.leftovers.length > 0 || l.tornLog).length;
  console.log(`kills that left a temp file, an uncommitted checkpoint or a torn log line: ${inWrites}`);
  console.log(`uninterrupted run: ${(plain.ms / 1000).toFixed(1)} s`);
  console.log(`kills: ${report.kills}, resumes: ${report.resumes}, corrupt files after a kill: ${report.corrupt.length}, byte-identical to the uninterrupted run: ${report.differences.length === 0 ? 'yes' : 'no'}, time: ${(report.ms / 1000).toFixed(1)} s`);
  for (const line of [...report.corrupt, ...report.differences]) console.log(`  ${line}`);
  if (!values.out) rmSync(work, { recursive: true, force: true });
  process.exitCode = report.corrupt.length === 0 && report.differences.length === 0 && report.kills === kills ? 0 : 1;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) await main();
