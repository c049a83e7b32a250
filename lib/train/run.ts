// run.ts — a whole GRIP training run as `grip train` drives it: supervised
// warm-up, then GRPO against the frozen warm-up policy, with a progress line,
// a JSONL log, atomic checkpoints every N steps, resume, and a clean stop on
// abort (the last completed step is saved).
import { existsSync } from 'node:fs';
import { appendFile, mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeExamples, renderScene } from '../data/shapes/index.js';
import { GripError } from '../errors.js';
import { JsonFields, readJsonFile } from '../json.js';
import type { VLM } from '../model/vlm.js';
import { SafetensorsFile, writeSafetensors } from '../model/safetensors.js';
import { SCORER_PARAM_NAMES } from '../ops.js';
import { GripPruner } from '../prune/grip.js';
import type { AttentionSource, PrunePoint, QueryPooling } from '../prune/pruner.js';
import type { Tensor } from '../tensor.js';
import { budgetRangeOf, type Budgets, type TrainExample } from './data.js';
import { GRPOTrainer } from './grpo.js';
import { TRAIN_DEFAULTS, type RewardName, type WarmupLoss } from './defaults.js';
import { warmup } from './warmup.js';

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

/** state.json: where a run stands (written after every checkpoint). */
interface RunState {
  phase: (typeof RUN_PHASES)[number];
  warmupStep: number;
  grpoStep: number;
  optimizerStep: number;
}

/** A run's state.json, every field checked (ERR_GRIP_FORMAT naming the field and the file). Exported for the parser fuzzer. */
export async function readRunState(path: string): Promise<RunState> {
  const fields = new JsonFields(await readJsonFile(path, 'state.json'), path);
  return {
    phase: fields.oneOf('phase', RUN_PHASES), warmupStep: fields.integer('warmupStep', 0),
    grpoStep: fields.integer('grpoStep', 0), optimizerStep: fields.integer('optimizerStep', 0),
  };
}

/** Trains (or resumes) a GRIP pruner for `model` on `examples`; returns the trained pruner (also saved in `out`). */
export async function trainGrip(model: VLM, examples: readonly TrainExample[], given: TrainRunOptions): Promise<GripPruner> {
  // Every option left out takes the shipped recipe's value (resolveTrainOptions); a resume checks the options given, not these.
  const r = resolveTrainOptions(given);
  const out = given.out;
  const progress = given.progress ?? defaultProgress;
  await mkdir(out, { recursive: true });
  const logFile = join(out, 'train.jsonl');
  let state: RunState = { phase: 'warmup', warmupStep: 0, grpoStep: 0, optimizerStep: 0 };
  let policy: GripPruner;
  if (given.resume && existsSync(join(out, 'state.json'))) {
    state = await readRunState(join(out, 'state.json'));
    policy = await GripPruner.load(out);
    if (given.queryPooling && given.queryPooling !== policy.settings.queryPooling) {
      throw new GripError('ERR_GRIP_RANGE', `expected the query pooling of the run being resumed ("${policy.settings.queryPooling}") for options.queryPooling but received "${given.queryPooling}"`);
    }
    if (given.redundancy !== undefined && given.redundancy !== policy.redundancy) {
      throw new GripError('ERR_GRIP_RANGE', `expected the redundancy of the run being resumed (${policy.redundancy}) for options.redundancy but received ${given.redundancy}`);
    }
    if (state.phase === 'done' && r.steps > state.grpoStep) state.phase = 'grpo'; // asked for more GRPO steps
    progress(`resuming ${out}: ${state.phase}, warm-up step ${state.warmupStep}, GRPO step ${state.grpoStep}`, true);
  } else {
    policy = GripPruner.init(model, {
      point: r.point, hidden: r.hidden, rank: r.rank, seed: r.seed, budgetRange: budgetRangeOf(r.budgets),
      queryPooling: r.queryPooling, redundancy: r.redundancy,
    });
  }
  policy.checkModel(model);
  const started = Date.now();
  const save = async (pruner: GripPruner, dir: string, extra: Record<string, unknown>) => {
    // The options a user chose beyond the recipe's core are recorded only when given (older files lack them).
    pruner.settings.training = {
      ...pruner.settings.training, ...extra, seed: r.seed, budgets: r.budgets, reward: r.reward,
      lr: r.lr, beta: r.beta, group: r.group, promptsPerStep: r.promptsPerStep, warmupLr: r.warmupLr, warmupBatch: r.warmupBatch,
      teacher: r.teacher, ...(given.attentionLayer ? { attentionLayer: given.attentionLayer } : {}),
      ...(given.warmupLoss ? { warmupLoss: given.warmupLoss } : {}),
      ...(given.teacherTemperature !== undefined ? { teacherTemperature: given.teacherTemperature } : {}),
    };
    await pruner.save(dir);
  };
  const saveState = async () => {
    const temp = join(out, `state.json.${process.pid}.tmp`);
    await writeFile(temp, `${JSON.stringify(state, null, 2)}\n`);
    await rename(temp, join(out, 'state.json'));
  };
  const every = r.checkpointEvery;

  // Phase 1: supervised warm-up.
  if (state.phase === 'warmup') {
    const remaining = r.warmupSteps - state.warmupStep;
    if (remaining > 0) {
      const meter = new Meter('warm-up', remaining);
      try {
        for await (const s of warmup(model, policy, examples, {
          steps: remaining, batch: r.warmupBatch, lr: r.warmupLr, budgets: r.budgets, seed: r.seed + state.warmupStep,
          teacher: r.teacher, attentionLayer: r.attentionLayer, loss: r.warmupLoss, temperature: r.teacherTemperature,
          ...(given.signal ? { signal: given.signal } : {}),
        })) {
          state.warmupStep++;
          await appendFile(logFile, `${JSON.stringify({ phase: 'warmup', step: state.warmupStep, loss: s.loss, overlap: s.overlap, gradNorm: s.gradNorm, ms: s.ms })}\n`);
          progress(meter.line(s.step, `loss ${s.loss.toFixed(4)} top-k overlap ${s.overlap.toFixed(3)}`), false);
          if (state.warmupStep % every === 0) {
            await save(policy, out, { warmupSteps: state.warmupStep });
            await saveState();
          }
        }
      } finally {
        await save(policy, out, { warmupSteps: state.warmupStep });
        await saveState();
      }
      progress(meter.line(remaining, 'done'), true);
    }
    await save(policy, join(out, 'warmup'), { warmupSteps: state.warmupStep });
    state.phase = 'grpo';
    await saveState();
  }

  // Phase 2: GRPO against the frozen warm-up policy.
  if (state.phase === 'grpo') {
    const reference = await GripPruner.load(join(out, 'warmup'));
    const trainer = new GRPOTrainer(model, policy, reference, examples, {
      steps: r.steps, group: r.group, promptsPerStep: r.promptsPerStep, budgets: r.budgets, reward: r.reward, beta: r.beta, lr: r.lr, seed: r.seed + 1,
    });
    trainer.step = state.grpoStep;
    if (state.grpoStep > 0) await loadMoments(trainer, out, state.optimizerStep);
    const meter = new Meter('GRPO', r.steps - state.grpoStep);
    const saveAll = async () => {
      state.grpoStep = trainer.step;
      state.optimizerStep = trainer.optimizer.step;
      await save(policy, out, { warmupSteps: state.warmupStep, grpoSteps: trainer.step, wallSeconds: (Date.now() - started) / 1000 });
      await saveMoments(trainer, out);
      await saveState();
    };
    try {
      for await (const s of trainer.run(given.signal)) {
        await appendFile(logFile, `${JSON.stringify({ phase: 'grpo', ...s })}\n`);
        progress(meter.line(s.step - (r.steps - meter.total), `reward ${s.reward.toFixed(3)} KL ${s.kl.toFixed(4)} clip ${s.clipFraction.toFixed(2)} ρ ${s.keepRatio.toFixed(2)}`), false);
        if (s.step % every === 0) await saveAll();
      }
    } finally {
      await saveAll();
    }
    progress(meter.line(meter.total, 'done'), true);
    state.phase = 'done';
    await saveState();
  }
  return policy;
}

async function saveMoments(trainer: GRPOTrainer, out: string): Promise<void> {
  const tensors: Record<string, Tensor> = {};
  for (const name of SCORER_PARAM_NAMES) {
    tensors[`m.${name}`] = trainer.optimizer.m[name]!;
    tensors[`v.${name}`] = trainer.optimizer.v[name]!;
  }
  await writeSafetensors(join(out, 'optimizer.safetensors'), tensors, { step: String(trainer.optimizer.step) });
}

async function loadMoments(trainer: GRPOTrainer, out: string, step: number): Promise<void> {
  const file = await SafetensorsFile.open(join(out, 'optimizer.safetensors'));
  try {
    for (const name of SCORER_PARAM_NAMES) {
      (trainer.optimizer.m[name]!.host as Float32Array).set((await file.read(`m.${name}`)).host as Float32Array);
      (trainer.optimizer.v[name]!.host as Float32Array).set((await file.read(`v.${name}`)).host as Float32Array);
    }
  } finally {
    await file.close();
  }
  trainer.optimizer.step = step;
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
