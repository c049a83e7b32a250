// warmup.ts — the supervised warm-up of the GRIP scorer: imitate the
// unpruned model's own idea of which visual tokens matter, the attention
// from the prompt's text tokens to the image at the prune layer (averaged
// over heads and text tokens), so that GRPO starts from a sensible policy.
// Loss: listwise (cross-entropy between the teacher distribution and
// softmax(scores)) or pairwise (logistic loss on teacher-top-k vs the rest
// at the sampled budget); ρ is sampled per example, gradients go through
// the native scoreTokensBackward and steps through the native adamw.
import type { VLM, PreparedPrompt } from '../model/vlm.js';
import { ops, SCORER_PARAM_NAMES, type ScorerParams } from '../ops.js';
import type { GripPruner } from '../prune/grip.js';
import { numKeepFor, type AttentionSource } from '../prune/pruner.js';
import { tensor } from '../tensor.js';
import { check } from '../validate.js';
import { accumulate, ScorerOptimizer, type OptimizerMoments } from './optimizer.js';
import { mulberry32 } from '../random.js';
import { BudgetSampler, type Budgets, type TrainExample } from './data.js';
import { TRAIN_DEFAULTS, WARMUP_LOSSES, type WarmupLoss } from './defaults.js';

/** Every option left out takes the shipped recipe's value (TRAIN_DEFAULTS, defaults.ts), except where said. */
export interface WarmupOptions {
  steps: number;
  /** Prompts per step (TRAIN_DEFAULTS.warmupBatch). */
  batch?: number;
  /** TRAIN_DEFAULTS.warmupLr. */
  lr?: number;
  weightDecay?: number;
  /** Keep ratios to sample from (default: the pruner's budget range). */
  budgets?: Budgets;
  /** TRAIN_DEFAULTS.warmupLoss. */
  loss?: WarmupLoss;
  /** Teacher attention. */
  teacher?: AttentionSource;
  /** Pre-LLM scorers: the layer whose text-to-image attention teaches (attention of layer - 1). */
  attentionLayer?: number;
  /** Sharpens (< 1) or flattens (> 1) the teacher: p ∝ attention^(1/T) (TRAIN_DEFAULTS.teacherTemperature). */
  temperature?: number;
  seed?: number;
  signal?: AbortSignal;
  /** Where a resumed warm-up stands (see WarmupState); kept current after every step, so a checkpoint can save it. */
  state?: WarmupState;
}

/**
 * A warm-up's resumable state. Given with step 0 and nothing else, the warm-up
 * starts from the seed; given as a checkpoint saved it, the warm-up goes on
 * with step state.step + 1 exactly as an uninterrupted one would.
 */
export interface WarmupState {
  /** Steps done (the warm-up runs the steps after it, up to options.steps). */
  step: number;
  /** SeededRandom states of the example and pair draws and of the keep-ratio draws (absent: from the seed). */
  random?: number;
  budgets?: number;
  /** The AdamW moments (absent: zeros); set to the warm-up's own optimizer at the start. */
  optimizer?: OptimizerMoments;
}

export interface WarmupStepStats {
  step: number;
  steps: number;
  loss: number;
  gradNorm: number;
  /** Fraction of the teacher's top-k the scorer's top-k recovers, at the sampled budgets. */
  overlap: number;
  /** forward: the model up to the prune point (first visit of an example; then cached) and the scorer. */
  ms: { forward: number; backward: number; optimizer: number };
}

interface Cached {
  prepared: PreparedPrompt;
  teacher: Float64Array;
}

/** Runs the warm-up, yielding stats after every step; the pruner's params change in place. */
export async function* warmup(model: VLM, pruner: GripPruner, examples: readonly TrainExample[], options: WarmupOptions): AsyncGenerator<WarmupStepStats> {
  const d = TRAIN_DEFAULTS;
  check.integer(options.steps, 'options.steps', 1, 1e9);
  const batch = options.batch ?? d.warmupBatch;
  check.integer(batch, 'options.batch', 1, 4096);
  if (!Array.isArray(examples) || examples.length === 0) check.fail('ERR_GRIP_SHAPE', 'a non-empty array of examples', 'examples', String(examples));
  pruner.checkModel(model);
  const loss = options.loss ?? d.warmupLoss;
  check.oneOf(loss, 'options.loss', WARMUP_LOSSES);
  const temperature = options.temperature ?? d.teacherTemperature;
  check.number(temperature, 'options.temperature', (v) => v > 0 && Number.isFinite(v), 'a finite number > 0');
  const teacher = options.teacher ?? d.teacher;
  const attentionLayer = options.attentionLayer ?? d.attentionLayer;
  const seed = options.seed ?? d.seed;
  const budgets = new BudgetSampler(options.budgets ?? { range: pruner.settings.budgetRange }, seed);
  const random = mulberry32(seed ^ 0x9e3779b9);
  const optimizer = new ScorerOptimizer(pruner.params, { lr: options.lr ?? d.warmupLr, weightDecay: options.weightDecay ?? d.weightDecay, maxGradNorm: d.maxGradNorm });
  const state = options.state;
  if (state) {
    check.integer(state.step, 'options.state.step', 0, 1e9);
    if (state.random !== undefined) random.state = state.random;
    if (state.budgets !== undefined) budgets.state = state.budgets;
    if (state.optimizer) optimizer.restore(state.optimizer);
    state.optimizer = optimizer;
  }
  const N = model.numImageTokens;
  const cache = new Map<number, Cached>();
  const signal = options.signal;
  for (let step = (state?.step ?? 0) + 1; step <= options.steps; step++) {
    signal?.throwIfAborted();
    let forwardMs = 0, backwardMs = 0;
    const grads = zeroGrads(pruner.params);
    let lossSum = 0, overlapSum = 0;
    for (let i = 0; i < batch; i++) {
      const index = Math.floor(random() * examples.length);
      const t1 = performance.now();
      let entry = cache.get(index);
      if (!entry) {
        const ex = examples[index]!;
        const prepared = await model.prepare({ ...exampleInput(ex), point: pruner.point, query: pruner.settings.queryPooling, attention: teacher, attentionLayer, ...(signal ? { signal } : {}) });
        entry = { prepared, teacher: teacherDistribution(prepared.attention!, temperature) };
        if (cache.size < 4096) cache.set(index, entry);
      }
      const keepRatio = budgets.next();
      const scores = await pruner.scores(entry.prepared.visual, entry.prepared.query, keepRatio, model.backend, signal);
      const s = scores.toHost().host as Float32Array;
      forwardMs += performance.now() - t1;
      const k = numKeepFor(keepRatio, N);
      const { value, dScores } = loss === 'listwise' ? listwise(s, entry.teacher) : pairwise(s, entry.teacher, k, random);
      lossSum += value;
      overlapSum += topkOverlap(s, entry.teacher, k);
      for (let n = 0; n < N; n++) dScores[n] = dScores[n]! / batch;
      const t2 = performance.now();
      const g = await ops.scoreTokensBackward(entry.prepared.visual, entry.prepared.query, keepRatio, pruner.params, tensor(dScores, [1, N]), { backend: model.backend });
      accumulate(grads, hostParams(g));
      backwardMs += performance.now() - t2;
    }
    const t3 = performance.now();
    const gradNorm = await optimizer.apply(pruner.params, grads);
    const optimizerMs = performance.now() - t3;
    if (state) Object.assign(state, { step, random: random.state, budgets: budgets.state });
    yield { step, steps: options.steps, loss: lossSum / batch, gradNorm, overlap: overlapSum / batch, ms: { forward: forwardMs, backward: backwardMs, optimizer: optimizerMs } };
  }
}

/** What prepare() needs from an example. */
export function exampleInput(ex: TrainExample) {
  return ex.pixelValues !== undefined ? { pixelValues: ex.pixelValues, prompt: ex.prompt } : { image: ex.image!, prompt: ex.prompt };
}

/** p ∝ attention^(1/T), a distribution over the N visual tokens. */
export function teacherDistribution(attention: Float32Array, temperature: number): Float64Array {
  const p = Float64Array.from(attention, (a) => Math.pow(Math.max(a, 1e-12), 1 / temperature));
  const sum = p.reduce((a, b) => a + b, 0);
  return p.map((v) => v / sum);
}

/** -sum p log softmax(s) and its gradient softmax(s) - p. */
export function listwise(s: Float32Array, p: Float64Array): { value: number; dScores: Float32Array } {
  const max = s.reduce((m, v) => Math.max(m, v), -Infinity);
  let z = 0;
  for (const v of s) z += Math.exp(v - max);
  const logZ = max + Math.log(z);
  let value = 0;
  const dScores = new Float32Array(s.length);
  for (let n = 0; n < s.length; n++) {
    value -= p[n]! * (s[n]! - logZ);
    dScores[n] = Math.exp(s[n]! - logZ) - p[n]!;
  }
  return { value, dScores };
}

/** Logistic loss on 64 sampled pairs (teacher top-k token above a token outside it). */
export function pairwise(s: Float32Array, p: Float64Array, k: number, random: () => number): { value: number; dScores: Float32Array } {
  const order = Array.from(p.keys()).sort((a, b) => p[b]! - p[a]! || a - b);
  const top = order.slice(0, k), rest = order.slice(k);
  const dScores = new Float32Array(s.length);
  if (rest.length === 0) return { value: 0, dScores };
  const pairs = 64;
  let value = 0;
  for (let q = 0; q < pairs; q++) {
    const i = top[Math.floor(random() * top.length)]!, j = rest[Math.floor(random() * rest.length)]!;
    const margin = s[i]! - s[j]!;
    value += Math.log1p(Math.exp(-margin)) / pairs;
    const g = -1 / (1 + Math.exp(margin)) / pairs;
    dScores[i] = dScores[i]! + g;
    dScores[j] = dScores[j]! - g;
  }
  return { value, dScores };
}

/** |top-k(s) ∩ top-k(p)| / k. */
export function topkOverlap(s: Float32Array, p: Float64Array, k: number): number {
  const top = (values: ArrayLike<number>) => new Set(Array.from({ length: values.length }, (_, i) => i).sort((a, b) => values[b]! - values[a]! || a - b).slice(0, k));
  const a = top(s), b = top(p);
  let both = 0;
  for (const i of a) if (b.has(i)) both++;
  return both / k;
}

/** Zero gradients shaped like params (host, f32). */
export function zeroGrads(params: ScorerParams): ScorerParams {
  const out = {} as Record<string, ReturnType<typeof tensor>>;
  for (const name of SCORER_PARAM_NAMES) out[name] = tensor(new Float32Array(params[name].size), params[name].shape);
  return out as unknown as ScorerParams;
}

/** The same params, copied to the host where needed. */
export function hostParams(p: ScorerParams): ScorerParams {
  const out = {} as Record<string, ReturnType<typeof tensor>>;
  for (const name of SCORER_PARAM_NAMES) out[name] = p[name].toHost();
  return out as unknown as ScorerParams;
}
