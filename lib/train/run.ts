// run.ts — a whole GRIP training run as `grip train` drives it: supervised
// warm-up, then GRPO against the frozen warm-up policy, with a progress line,
// a JSONL log, crash-safe checkpoints every N steps, resume, and a clean stop
// on abort (the last completed step is saved). A resume after a crash at any
// moment (SIGKILL included) ends with the same files as an uninterrupted run
// (docs/hardening.md, "Crash-safe training").
import { existsSync } from 'node:fs';
import { appendFile, mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { makeExamples, renderScene } from '../data/shapes/index.js';
import { GripError } from '../errors.js';
import { removeTempFiles, syncDirectory, syncFile, writeFileAtomic } from '../files.js';
import { JsonFields, readJsonFile } from '../json.js';
import type { VLM } from '../model/vlm.js';
import { SafetensorsFile, writeSafetensors } from '../model/safetensors.js';
import { SCORER_PARAM_NAMES } from '../ops.js';
import { GripPruner } from '../prune/grip.js';
import type { AttentionSource, PrunePoint, QueryPooling } from '../prune/pruner.js';
import { Tensor } from '../tensor.js';
import { budgetRangeOf, type Budgets, type TrainExample } from './data.js';
import { GRPOTrainer } from './grpo.js';
import type { OptimizerMoments } from './optimizer.js';
import { TRAIN_DEFAULTS, type RewardName, type WarmupLoss } from './defaults.js';
import { warmup, type WarmupState } from './warmup.js';

export interface TrainRunOptions {
  out: string;
  point?: PrunePoint;
  hidden?: number;
  rank?: number;
  /** How the scorer's query is pooled; a resumed run keeps its own. */
  queryPooling?: QueryPooling;
  /** λ of the redundancy penalty, in training and at inference (see GripSettings.redundancy); a resumed run keeps its own. */
  redundancy?: number;
  /** Keep ratios trained for. */
  budgets?: Budgets;
  warmupSteps?: number;
  warmupBatch?: number;
  warmupLr?: number;
  /** The warm-up's teacher attention (see WarmupOptions.teacher). Every option left out: TRAIN_DEFAULTS (defaults.ts). */
  teacher?: AttentionSource;
  /** Pre-LLM scorers: the layer whose text-to-image attention teaches (see WarmupOptions.attentionLayer). */
  attentionLayer?: number;
  /** The warm-up's loss (see WarmupOptions.loss). */
  warmupLoss?: WarmupLoss;
  /** Sharpens (< 1) or flattens (> 1) the warm-up's teacher (see WarmupOptions.temperature). */
  teacherTemperature?: number;
  steps?: number;
  group?: number;
  promptsPerStep?: number;
  reward?: RewardName;
  beta?: number;
  lr?: number;
  seed?: number;
  checkpointEvery?: number;
  resume?: boolean;
  signal?: AbortSignal;
  /** Progress lines (default: stderr, rewritten in place). */
  progress?: (line: string, done: boolean) => void;
}

/** The shapes testbed's training questions, rendered. */
export async function shapesTrainingSet(count: number): Promise<TrainExample[]> {
  const examples = makeExamples('train', count);
  return Promise.all(examples.map(async (ex) => ({ image: await renderScene(ex.scene), prompt: ex.question, answer: ex.answer, kind: ex.kind })));
}

/** The recipe of a run: its options with every one left out taken from TRAIN_DEFAULTS. */
export type TrainRecipe = Required<Omit<TrainRunOptions, 'out' | 'resume' | 'signal' | 'progress'>>;

/** The recipe a run with `given` trains (what `grip train` runs: the flags given, the defaults for the rest). */
export function resolveTrainOptions(given: Omit<TrainRunOptions, 'out'>): TrainRecipe {
  const d = TRAIN_DEFAULTS;
  const point = given.point ?? (d.point === 'pre-llm' ? d.point : { ...d.point });
  return {
    point, hidden: given.hidden ?? d.hidden, rank: given.rank ?? d.rank, queryPooling: given.queryPooling ?? d.queryPooling,
    redundancy: given.redundancy ?? d.redundancy, budgets: given.budgets ?? d.budgets, seed: given.seed ?? d.seed,
    teacher: given.teacher ?? d.teacher, attentionLayer: given.attentionLayer ?? d.attentionLayer, warmupLoss: given.warmupLoss ?? d.warmupLoss,
    teacherTemperature: given.teacherTemperature ?? d.teacherTemperature, warmupSteps: given.warmupSteps ?? d.warmupSteps,
    warmupBatch: given.warmupBatch ?? d.warmupBatch, warmupLr: given.warmupLr ?? d.warmupLr,
    steps: given.steps ?? d.steps, group: given.group ?? d.group, promptsPerStep: given.promptsPerStep ?? d.promptsPerStep,
    reward: given.reward ?? d.reward, lr: given.lr ?? d.lr, beta: given.beta ?? d.beta, checkpointEvery: given.checkpointEvery ?? d.checkpointEvery,
  };
}

const RUN_PHASES = ['warmup', 'grpo', 'done'] as const;

/**
 * state.json: where a run stands. It is written last in every checkpoint
 * (temp file, fsync, rename), so it is the commit point: the checkpoint it
 * names holds the policy, the optimiser moments and the draws of that step,
 * and train.jsonl is cut back to its logLines on resume.
 */
interface RunState {
  phase: (typeof RUN_PHASES)[number];
  warmupStep: number;
  grpoStep: number;
  optimizerStep: number;
  /** The directory under checkpoints/ ("warmup-3", "grpo-12"); absent in runs written before it (their one checkpoint lies in out itself). */
  checkpoint?: string;
  /** Complete lines of train.jsonl at this checkpoint. */
  logLines?: number;
}

const CHECKPOINT_NAME = /^(warmup|grpo)-(\d+)$/;

/** A run's state.json, every field checked (ERR_GRIP_FORMAT naming the field and the file). Exported for the parser fuzzer. */
export async function readRunState(path: string): Promise<RunState> {
  const fields = new JsonFields(await readJsonFile(path, 'state.json'), path);
  const state: RunState = {
    phase: fields.oneOf('phase', RUN_PHASES), warmupStep: fields.integer('warmupStep', 0),
    grpoStep: fields.integer('grpoStep', 0), optimizerStep: fields.integer('optimizerStep', 0),
  };
  if (fields.has('checkpoint')) {
    const name = fields.string('checkpoint');
    if (!CHECKPOINT_NAME.test(name)) fields.fail('checkpoint', 'a checkpoint name "warmup-N" or "grpo-N"', name);
    state.checkpoint = name;
    state.logLines = fields.integer('logLines', 0);
  }
  return state;
}

/** A completed step held in memory (copies), so a stop in the middle of the next step still saves a consistent checkpoint. */
interface Snapshot {
  phase: 'warmup' | 'grpo';
  step: number;
  pruner: GripPruner;
  moments: OptimizerMoments;
  /** The SeededRandom states of the phase's draws (examples or prompts; keep ratios). */
  random: { draws: number; budgets: number };
  logLines: number;
  training: Record<string, unknown>;
}

/** Trains (or resumes) a GRIP pruner for `model` on `examples`; returns the trained pruner (also saved in `out`). */
export async function trainGrip(model: VLM, examples: readonly TrainExample[], given: TrainRunOptions): Promise<GripPruner> {
  // Every option left out takes the shipped recipe's value (resolveTrainOptions); a resume checks the options given, not these.
  const r = resolveTrainOptions(given);
  const out = given.out;
  const progress = given.progress ?? defaultProgress;
  await mkdir(out, { recursive: true });
  const logFile = join(out, 'train.jsonl');
  const statePath = join(out, 'state.json');
  const checkpoints = join(out, 'checkpoints');
  let state: RunState = { phase: 'warmup', warmupStep: 0, grpoStep: 0, optimizerStep: 0 };
  let policy: GripPruner;
  /** What the checkpoint being resumed holds beyond the policy: the moments and draws of its phase (absent: a phase starting). */
  let resumed: { phase: string; moments: OptimizerMoments; random?: { draws: number; budgets: number } } | undefined;
  let logLines = 0;
  if (given.resume && existsSync(statePath)) {
    state = await readRunState(statePath);
    const dir = state.checkpoint ? join(checkpoints, state.checkpoint) : out;
    policy = await GripPruner.load(dir);
    if (given.queryPooling && given.queryPooling !== policy.settings.queryPooling) {
      throw new GripError('ERR_GRIP_RANGE', `expected the query pooling of the run being resumed ("${policy.settings.queryPooling}") for options.queryPooling but received "${given.queryPooling}"`);
    }
    if (given.redundancy !== undefined && given.redundancy !== policy.redundancy) {
      throw new GripError('ERR_GRIP_RANGE', `expected the redundancy of the run being resumed (${policy.redundancy}) for options.redundancy but received ${given.redundancy}`);
    }
    // The moments and draws of the checkpoint's phase, if the run goes on in it (runs written before checkpoints saved only GRPO's).
    const checkpointPhase = state.checkpoint ? CHECKPOINT_NAME.exec(state.checkpoint)![1]! : 'grpo';
    if (state.checkpoint ? checkpointPhase === 'grpo' || state.phase === 'warmup' : state.grpoStep > 0) {
      resumed = { phase: checkpointPhase, ...(await readMoments(join(dir, 'optimizer.safetensors'))) };
    }
    logLines = await cutLog(logFile, state.logLines);
    await repairAfterCrash(out, state.checkpoint);
    if (state.phase === 'done' && r.steps > state.grpoStep) state.phase = 'grpo'; // asked for more GRPO steps
    progress(`resuming ${out}: ${state.phase}, warm-up step ${state.warmupStep}, GRPO step ${state.grpoStep}`, true);
  } else {
    // A fresh run: what an earlier run left in out goes first, so a --resume after a crash before the first checkpoint starts afresh too.
    await rm(statePath, { force: true });
    await rm(checkpoints, { recursive: true, force: true });
    await writeFileAtomic(logFile, '');
    policy = GripPruner.init(model, {
      point: r.point, hidden: r.hidden, rank: r.rank, seed: r.seed, budgetRange: budgetRangeOf(r.budgets),
      queryPooling: r.queryPooling, redundancy: r.redundancy,
    });
  }
  policy.checkModel(model);
  const started = Date.now();
  /** training of grip.json: what it had, `extra`, the recipe. The options a user chose beyond the recipe's core are recorded only when given (older files lack them). */
  const training = (pruner: GripPruner, extra: Record<string, unknown>) => ({
    ...pruner.settings.training, ...extra, seed: r.seed, budgets: r.budgets, reward: r.reward,
    lr: r.lr, beta: r.beta, group: r.group, promptsPerStep: r.promptsPerStep, warmupLr: r.warmupLr, warmupBatch: r.warmupBatch,
    teacher: r.teacher, ...(given.attentionLayer ? { attentionLayer: given.attentionLayer } : {}),
    ...(given.warmupLoss ? { warmupLoss: given.warmupLoss } : {}),
    ...(given.teacherTemperature !== undefined ? { teacherTemperature: given.teacherTemperature } : {}),
  });
  const writeState = () => writeFileAtomic(statePath, `${JSON.stringify(state, null, 2)}\n`, () => crashPoint('state-temp'));
  const appendLog = async (entry: Record<string, unknown>) => {
    const line = `${JSON.stringify(entry)}\n`;
    if (crashDue('log')) {
      await appendFile(logFile, line.slice(0, line.length >> 1));
      selfKill();
    }
    await appendFile(logFile, line);
    logLines++;
  };
  const snapshot = (phase: Snapshot['phase'], step: number, moments: OptimizerMoments, random: Snapshot['random'], extra: Record<string, unknown>): Snapshot => {
    const pruner = policy.clone();
    return { phase, step, pruner, moments: copyMoments(moments), random, logLines, training: training(pruner, extra) };
  };
  // A checkpoint: its files in a new directory, the log synced, then state.json naming it (the commit),
  // then the policy published in out (what GripPruner.load(out) reads) and the older checkpoints removed.
  const commit = async (snap: Snapshot) => {
    const name = `${snap.phase}-${snap.step}`;
    if (name === state.checkpoint) return;
    const dir = join(checkpoints, name);
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { recursive: true });
    snap.pruner.settings.training = snap.training;
    await snap.pruner.save(dir);
    await writeMoments(join(dir, 'optimizer.safetensors'), snap.moments, snap.random);
    await syncDirectory(checkpoints);
    crashPoint('checkpoint-files');
    await syncFile(logFile);
    if (snap.phase === 'warmup') state.warmupStep = snap.step;
    else Object.assign(state, { grpoStep: snap.step, optimizerStep: snap.moments.step });
    Object.assign(state, { checkpoint: name, logLines: snap.logLines });
    await writeState();
    for (const file of ['pruner.safetensors', 'grip.json']) {
      await writeFileAtomic(join(out, file), await readFile(join(dir, file)));
      crashPoint('publish');
    }
    for (const other of await readdir(checkpoints)) if (other !== name) await rm(join(checkpoints, other), { recursive: true, force: true });
  };
  const every = r.checkpointEvery;
  let latest: Snapshot | undefined;
  const commitLatest = async () => {
    if (latest) await commit(latest);
  };

  // Phase 1: supervised warm-up.
  if (state.phase === 'warmup') {
    const first = state.warmupStep;
    if (r.warmupSteps > first) {
      const meter = new Meter('warm-up', r.warmupSteps - first);
      // Runs written before checkpoints kept the draws resume as they did: from the seed shifted by the steps done.
      const warm: WarmupState = { step: first, ...(resumed ? { optimizer: resumed.moments, ...(resumed.random ? { random: resumed.random.draws, budgets: resumed.random.budgets } : {}) } : {}) };
      try {
        for await (const s of warmup(model, policy, examples, {
          steps: r.warmupSteps, batch: r.warmupBatch, lr: r.warmupLr, budgets: r.budgets, seed: r.seed + (state.checkpoint || first === 0 ? 0 : first),
          teacher: r.teacher, attentionLayer: r.attentionLayer, loss: r.warmupLoss, temperature: r.teacherTemperature, state: warm,
          ...(given.signal ? { signal: given.signal } : {}),
        })) {
          await appendLog({ phase: 'warmup', step: s.step, loss: s.loss, overlap: s.overlap, gradNorm: s.gradNorm, ms: s.ms });
          progress(meter.line(s.step - first, `loss ${s.loss.toFixed(4)} top-k overlap ${s.overlap.toFixed(3)}`), false);
          latest = snapshot('warmup', s.step, warm.optimizer!, { draws: warm.random!, budgets: warm.budgets! }, { warmupSteps: s.step });
          if (s.step % every === 0) await commit(latest);
        }
      } finally {
        await commitLatest();
      }
      progress(meter.line(meter.total, 'done'), true);
    }
    // The frozen reference of GRPO (written again whole if a crash cut it).
    policy.settings.training = training(policy, { warmupSteps: state.warmupStep });
    await policy.save(join(out, 'warmup'));
    state.phase = 'grpo';
    await writeState();
  }

  // Phase 2: GRPO against the frozen warm-up policy.
  if (state.phase === 'grpo') {
    const reference = await GripPruner.load(join(out, 'warmup'));
    const trainer = new GRPOTrainer(model, policy, reference, examples, {
      steps: r.steps, group: r.group, promptsPerStep: r.promptsPerStep, budgets: r.budgets, reward: r.reward, beta: r.beta, lr: r.lr, seed: r.seed + 1,
    });
    trainer.step = state.grpoStep;
    if (resumed?.phase === 'grpo') {
      trainer.optimizer.restore({ ...resumed.moments, step: state.optimizerStep });
      if (resumed.random) trainer.randomState = { prompts: resumed.random.draws, budgets: resumed.random.budgets };
    }
    const meter = new Meter('GRPO', r.steps - state.grpoStep);
    try {
      for await (const s of trainer.run(given.signal)) {
        await appendLog({ phase: 'grpo', ...s });
        progress(meter.line(s.step - (r.steps - meter.total), `reward ${s.reward.toFixed(3)} KL ${s.kl.toFixed(4)} clip ${s.clipFraction.toFixed(2)} ρ ${s.keepRatio.toFixed(2)}`), false);
        const random = trainer.randomState;
        latest = snapshot('grpo', s.step, trainer.optimizer, { draws: random.prompts, budgets: random.budgets }, {
          warmupSteps: state.warmupStep, grpoSteps: s.step, wallSeconds: (Date.now() - started) / 1000,
        });
        if (s.step % every === 0) await commit(latest);
      }
    } finally {
      await commitLatest();
    }
    progress(meter.line(meter.total, 'done'), true);
    state.phase = 'done';
    await writeState();
  }
  return latest?.pruner ?? policy;
}

/** Copies of an optimizer's step count and moments. */
function copyMoments(moments: OptimizerMoments): OptimizerMoments {
  const copy = (from: Record<string, Tensor>) => Object.fromEntries(SCORER_PARAM_NAMES.map((name) => {
    const t = from[name]!.toHost();
    return [name, new Tensor('f32', t.shape, Float32Array.from(t.host as Float32Array), 'cpu')];
  }));
  return { step: moments.step, m: copy(moments.m), v: copy(moments.v) };
}

/** optimizer.safetensors: the moments as m.NAME / v.NAME, the step count and the draws' states in the metadata. */
async function writeMoments(path: string, moments: OptimizerMoments, random: Snapshot['random']): Promise<void> {
  const tensors: Record<string, Tensor> = {};
  for (const name of SCORER_PARAM_NAMES) {
    tensors[`m.${name}`] = moments.m[name]!;
    tensors[`v.${name}`] = moments.v[name]!;
  }
  await writeSafetensors(path, tensors, { step: String(moments.step), random: String(random.draws), budgets: String(random.budgets) });
}

async function readMoments(path: string): Promise<{ moments: OptimizerMoments; random?: Snapshot['random'] }> {
  const file = await SafetensorsFile.open(path);
  try {
    const m: Record<string, Tensor> = {}, v: Record<string, Tensor> = {};
    for (const name of SCORER_PARAM_NAMES) {
      m[name] = await file.read(`m.${name}`);
      v[name] = await file.read(`v.${name}`);
    }
    const meta = file.metadata;
    const draws = Number(meta.random), budgets = Number(meta.budgets);
    // Files written before the draws were saved lack them.
    const random = meta.random !== undefined && Number.isInteger(draws) && Number.isInteger(budgets) ? { draws, budgets } : undefined;
    return { moments: { step: Number(meta.step ?? 0), m, v }, ...(random ? { random } : {}) };
  } finally {
    await file.close();
  }
}

/** Cuts train.jsonl back to its first `lines` complete lines (all complete ones when not given: a torn last line goes); returns how many it keeps. */
async function cutLog(path: string, lines: number | undefined): Promise<number> {
  const text = await readFile(path, 'utf8').catch(() => '');
  const complete = text.slice(0, text.lastIndexOf('\n') + 1).split('\n').slice(0, -1);
  const kept = complete.slice(0, lines ?? complete.length);
  const cut = kept.map((line) => `${line}\n`).join('');
  if (cut !== text) await writeFileAtomic(path, cut);
  return kept.length;
}

/**
 * Undoes what a crash can leave behind: temp files of interrupted writes, checkpoint directories
 * state.json does not name, and a published policy (out/pruner.safetensors + grip.json) cut between its two files.
 */
async function repairAfterCrash(out: string, checkpoint: string | undefined): Promise<void> {
  await removeTempFiles(out);
  await removeTempFiles(join(out, 'warmup'));
  const checkpoints = join(out, 'checkpoints');
  for (const name of await readdir(checkpoints).catch(() => [] as string[])) {
    if (name !== checkpoint) await rm(join(checkpoints, name), { recursive: true, force: true });
  }
  if (!checkpoint) return;
  await removeTempFiles(join(checkpoints, checkpoint));
  for (const file of ['pruner.safetensors', 'grip.json']) {
    const saved = await readFile(join(checkpoints, checkpoint, file));
    const published = await readFile(join(out, file)).catch(() => undefined);
    if (!published?.equals(saved)) await writeFileAtomic(join(out, file), saved);
  }
}

/**
 * Test hook of the crash tests (docs/hardening.md): GRIP_TEST_CRASH_AT=POINT:N
 * makes the process SIGKILL itself the N-th time it reaches POINT, one of
 * "checkpoint-files" (a checkpoint's files written, state.json not yet),
 * "state-temp" (state.json's temp file written, not yet renamed), "publish"
 * (out/pruner.safetensors replaced, out/grip.json not yet; N counts both files)
 * and "log" (half a train.jsonl line appended).
 */
const crashCounts = new Map<string, number>();
function crashDue(point: string): boolean {
  const wanted = process.env.GRIP_TEST_CRASH_AT;
  if (!wanted) return false;
  const count = (crashCounts.get(point) ?? 0) + 1;
  crashCounts.set(point, count);
  return wanted === `${point}:${count}`;
}
function selfKill(): never {
  process.kill(process.pid, 'SIGKILL');
  throw new Error('unreachable: SIGKILL sent to self');
}
function crashPoint(point: string): void {
  if (crashDue(point)) selfKill();
}

/** steps done / total, a bar, rate and ETA. */
class Meter {
  private readonly start = performance.now();
  constructor(readonly name: string, readonly total: number) {}
  line(done: number, detail: string): string {
    const width = 24;
    const filled = Math.round((done / Math.max(1, this.total)) * width);
    const seconds = (performance.now() - this.start) / 1000;
    const rate = done / Math.max(seconds, 1e-9);
    const eta = rate > 0 ? (this.total - done) / rate : 0;
    return `${this.name} ${done}/${this.total} [${'='.repeat(filled)}${' '.repeat(width - filled)}] ${detail} ${rate.toFixed(2)} it/s ETA ${formatSeconds(eta)}`;
  }
}

function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return '?';
  const m = Math.floor(s / 60);
  return m > 0 ? `${m}m${String(Math.round(s % 60)).padStart(2, '0')}s` : `${s.toFixed(0)}s`;
}

let lastPrinted = 0;
/** A line rewritten in place on a terminal; elsewhere (logs, CI) one line every 5 s and at the end. */
function defaultProgress(line: string, done: boolean): void {
  if (process.stderr.isTTY) {
    process.stderr.write(`\r${line}\x1b[K${done ? '\n' : ''}`);
    return;
  }
  const now = Date.now();
  if (done || now - lastPrinted > 5000) {
    process.stderr.write(`${line}\n`);
    lastPrinted = now;
  }
}
