// grpo.ts — GRPO for the GRIP scorer (Shao et al., DeepSeekMath 2024, as the
// GRIP-VLM paper applies it to pruning). For each prompt: sample a keep
// ratio ρ, draw G keep-sets of k = ceil(ρN) tokens from the Plackett-Luce
// policy softmax(scores) (Gumbel-top-k), reward each with one batched
// answerLogProb call (the image encoding and the unpruned prefix are
// shared), normalise the rewards within the group, A = (r - mean)/(std + eps),
// and ascend the clipped-ratio objective minus β·KL to the frozen warm-up
// policy (k3 estimator), for μ inner epochs against the log-probs recorded
// at sampling. Gradient: plackettLuceBackward -> scoreTokensBackward -> adamw.
// A pruner with a redundancy penalty λ > 0 samples, scores and
// differentiates its sequential policy instead (prune/sequential.ts).
import type { PreparedPrompt, VLM } from '../model/vlm.js';
import { GripError } from '../errors.js';
import { ops } from '../ops.js';
import type { GripPruner } from '../prune/grip.js';
import { numKeepFor } from '../prune/pruner.js';
import { keepLogProb, sampleKeep } from '../prune/sequential.js';
import { cosineSimilarities } from '../prune/similarity.js';
import { tensor, type Tensor } from '../tensor.js';
import { check } from '../validate.js';
import { mulberry32, type SeededRandom } from '../random.js';
import { BudgetSampler, type Budgets, type TrainExample } from './data.js';
import { REWARD_NAMES, TRAIN_DEFAULTS, type RewardName } from './defaults.js';
import { ScorerOptimizer, accumulate } from './optimizer.js';
import { exampleInput, hostParams, zeroGrads } from './warmup.js';

/** Every option left out takes the shipped recipe's value (TRAIN_DEFAULTS, defaults.ts), except where said. */
export interface GRPOOptions {
  steps: number;
  /** Keep-sets per prompt, G. */
  group?: number;
  /** Prompts per optimiser step. */
  promptsPerStep?: number;
  /** Keep ratios to sample from (default: the policy's budget range). */
  budgets?: Budgets;
  /**
   * 'loglik': log p(reference answer | kept tokens); 'match': 1 when greedy
   * decoding gives the reference answer, else 0; 'fidelity': -KL(unpruned ||
   * pruned) of the first answer distribution (needs no labels).
   */
  reward?: RewardName;
  /** PPO clip ε. */
  clip?: number;
  /** Inner epochs μ per sampled group. */
  innerEpochs?: number;
  /** KL weight β. */
  beta?: number;
  lr?: number;
  weightDecay?: number;
  seed?: number;
  signal?: AbortSignal;
}

export interface GRPOStepStats {
  step: number;
  steps: number;
  /** Mean reward of the sampled keep-sets. */
  reward: number;
  /** k3 estimate of KL(policy || reference), mean over samples. */
  kl: number;
  /** Fraction of samples whose ratio was clipped, and the KL, in the last inner epoch. */
  clipFraction: number;
  keepRatio: number;
  gradNorm: number;
  ms: { sampling: number; forwards: number; backward: number; optimizer: number };
}

export class GRPOTrainer {
  readonly options: Required<Omit<GRPOOptions, 'signal' | 'budgets'>> & { budgets: Budgets };
  readonly optimizer: ScorerOptimizer;
  step = 0;
  private readonly budgets: BudgetSampler;
  private readonly random: SeededRandom;
  private readonly prepared = new Map<number, PreparedPrompt>();
  private readonly similarities = new Map<number, Float32Array>();

  constructor(readonly model: VLM, readonly policy: GripPruner, readonly reference: GripPruner, readonly examples: readonly TrainExample[], options: GRPOOptions) {
    check.integer(options.steps, 'options.steps', 1, 1e9);
    if (!Array.isArray(examples) || examples.length === 0) check.fail('ERR_GRIP_SHAPE', 'a non-empty array of examples', 'examples', String(examples));
    policy.checkModel(model);
    reference.checkModel(model);
    if (policy.redundancy !== reference.redundancy) {
      // The KL term compares the two policies over the same keep-sets: they must be the same kind of policy.
      throw new GripError('ERR_GRIP_RANGE', `expected the policy's redundancy (${policy.redundancy}) for reference.redundancy but received ${reference.redundancy}`);
    }
    const d = TRAIN_DEFAULTS;
    this.options = {
      steps: options.steps, group: options.group ?? d.group, promptsPerStep: options.promptsPerStep ?? d.promptsPerStep,
      budgets: options.budgets ?? { range: policy.settings.budgetRange }, reward: options.reward ?? d.reward,
      clip: options.clip ?? d.clip, innerEpochs: options.innerEpochs ?? d.innerEpochs, beta: options.beta ?? d.beta,
      lr: options.lr ?? d.lr, weightDecay: options.weightDecay ?? d.weightDecay, seed: options.seed ?? d.seed,
    };
    const o = this.options;
    check.integer(o.group, 'options.group', 2, 4096);
    check.integer(o.promptsPerStep, 'options.promptsPerStep', 1, 4096);
    check.oneOf(o.reward, 'options.reward', REWARD_NAMES);
    check.number(o.clip, 'options.clip', (v) => v > 0 && v < 1, 'a number in (0, 1)');
    check.integer(o.innerEpochs, 'options.innerEpochs', 1, 100);
    check.number(o.beta, 'options.beta', (v) => v >= 0 && Number.isFinite(v), 'a finite number >= 0');
    this.budgets = new BudgetSampler(o.budgets, o.seed);
    this.random = mulberry32(o.seed ^ 0x27d4eb2f);
    this.optimizer = new ScorerOptimizer(policy.params, { lr: o.lr, weightDecay: o.weightDecay, maxGradNorm: TRAIN_DEFAULTS.maxGradNorm });
  }

  /** Where the trainer's draws stand (prompts and sample seeds, keep ratios): a checkpoint saves it, a resume sets it back. */
  get randomState(): { prompts: number; budgets: number } {
    return { prompts: this.random.state, budgets: this.budgets.state };
  }
  set randomState(saved: { prompts: number; budgets: number }) {
    this.random.state = saved.prompts;
    this.budgets.state = saved.budgets;
  }

  /** Runs the remaining steps, yielding stats after each. */
  async *run(signal?: AbortSignal): AsyncGenerator<GRPOStepStats> {
    while (this.step < this.options.steps) {
      signal?.throwIfAborted();
      yield await this.trainStep(signal);
    }
  }

  /**
   * One GRPO step: sample and reward a group of keep-sets for each of
   * promptsPerStep prompts, then μ optimiser steps on the clipped objective
   * (ratios against the log-probs recorded at sampling).
   */
  async trainStep(signal?: AbortSignal): Promise<GRPOStepStats> {
    const o = this.options;
    const N = this.model.numImageTokens;
    const backend = this.model.backend;
    const ms = { sampling: 0, forwards: 0, backward: 0, optimizer: 0 };
    this.step++;
    interface Group { visual: Tensor; query: Tensor; keepRatio: number; indices: Tensor; keep: KeepPolicy; old: Float32Array; ref: Float32Array; advantages: Float64Array; logits: Tensor }
    const groups: Group[] = [];
    let rewardSum = 0, ratioSum = 0;
    for (let p = 0; p < o.promptsPerStep; p++) {
      const index = Math.floor(this.random() * this.examples.length);
      const example = this.examples[index]!;
      let t = performance.now();
      const prepared = await this.prepare(index, example, signal);
      ms.forwards += performance.now() - t;
      const keepRatio = this.budgets.next();
      ratioSum += keepRatio;
      const k = numKeepFor(keepRatio, N);
      t = performance.now();
      const { visual, query } = prepared;
      const logits = await this.policy.scores(visual, query, keepRatio, this.model.backend, signal);
      const seed = Math.floor(this.random() * 2 ** 32);
      const keep = await this.keepPolicy(index, prepared, signal);
      const { indices, logProb } = await keep.sample(logits, k, o.group, seed);
      const refLogits = await this.reference.scores(visual, query, keepRatio, this.model.backend, signal);
      const ref = await keep.logProb(refLogits, indices);
      const drawn = indices.toHost().host as Int32Array;
      const keepSets = Array.from({ length: o.group }, (_, g) => drawn.slice(g * k, (g + 1) * k).sort());
      ms.sampling += performance.now() - t;
      t = performance.now();
      const rewards = await this.rewards(prepared, example, keepSets, signal);
      ms.forwards += performance.now() - t;
      rewardSum += rewards.reduce((a, b) => a + b, 0) / o.group;
      groups.push({ visual, query, keepRatio, indices, keep, old: logProb, ref, advantages: normalise(rewards), logits });
    }
    let clipped = 0, kl = 0, gradNorm = 0;
    for (let epoch = 0; epoch < o.innerEpochs; epoch++) {
      let t = performance.now();
      const grads = zeroGrads(this.policy.params);
      clipped = 0;
      kl = 0;
      for (const group of groups) {
        // Epoch 0 runs at the sampling parameters: the recorded logits and log-probs are current.
        const logits = epoch === 0 ? group.logits : await this.policy.scores(group.visual, group.query, group.keepRatio, this.model.backend, signal);
        const logProb = epoch === 0 ? group.old : await group.keep.logProb(logits, group.indices);
        const part = grpoObjective(logProb, group.old, group.ref, group.advantages, o.clip, o.beta);
        clipped += part.clipped / groups.length;
        kl += part.kl / groups.length;
        const dLogProb = part.dLogProb.map((d) => d / groups.length);
        const dLogits = await group.keep.backward(logits, group.indices, dLogProb);
        const g = await ops.scoreTokensBackward(group.visual, group.query, group.keepRatio, this.policy.params, dLogits, { backend });
        accumulate(grads, hostParams(g));
      }
      ms.backward += performance.now() - t;
      t = performance.now();
      gradNorm = await this.optimizer.apply(this.policy.params, grads, this.learningRate());
      ms.optimizer += performance.now() - t;
    }
    const n = o.promptsPerStep;
    return { step: this.step, steps: o.steps, reward: rewardSum / n, kl, clipFraction: clipped, keepRatio: ratioSum / n, gradNorm, ms };
  }

  /** Linear warm-up over the first 5% of steps, then constant. */
  private learningRate(): number {
    const warm = Math.max(1, Math.floor(this.options.steps * 0.05));
    return this.options.lr * Math.min(1, this.step / warm);
  }

  /** The keep-set policy for a prompt: native Plackett-Luce when λ = 0, the sequential policy (cosines cached per prompt) otherwise. */
  private async keepPolicy(index: number, prepared: PreparedPrompt, signal: AbortSignal | undefined): Promise<KeepPolicy> {
    const backend = this.model.backend;
    const redundancy = this.policy.redundancy;
    if (redundancy === 0) return plackettLuce(backend);
    let similarity = this.similarities.get(index);
    if (!similarity) {
      similarity = (await cosineSimilarities(prepared.visual, this.model.backend, signal))[0]!;
      // N x N floats per prompt: bounded like the prepared prompts they belong to.
      if (this.similarities.size < 512) this.similarities.set(index, similarity);
    }
    return sequential(similarity, redundancy);
  }

  private async prepare(index: number, example: TrainExample, signal: AbortSignal | undefined): Promise<PreparedPrompt> {
    const cached = this.prepared.get(index);
    if (cached) return cached;
    const prepared = await this.model.prepare({ ...exampleInput(example), point: this.policy.point, query: this.policy.settings.queryPooling, ...(signal ? { signal } : {}) });
    // Prepared prompts hold caches for in-LLM points; keep a bounded number.
    if (this.prepared.size < 512) this.prepared.set(index, prepared);
    return prepared;
  }

  /** The reward of each keep-set. */
  async rewards(prepared: PreparedPrompt, example: TrainExample, keepSets: Int32Array[], signal?: AbortSignal): Promise<Float64Array> {
    const reward = this.options.reward;
    const fidelity = reward === 'fidelity';
    const r = await this.model.answerLogProb({
      prepared, answer: example.answer, keepSets: fidelity ? [...keepSets, null] : keepSets,
      returnFirstLogProbs: fidelity, ...(signal ? { signal } : {}),
    });
    const G = keepSets.length;
    if (reward === 'loglik') return r.logProb.slice(0, G);
    if (reward === 'match') return Float64Array.from(r.greedyMatch.subarray(0, G));
    const V = this.model.config.text.vocabSize;
    const lp = r.firstLogProbs!;
    const full = lp.subarray(G * V, (G + 1) * V);
    return Float64Array.from({ length: G }, (_, g) => {
      let kl = 0;
      for (let v = 0; v < V; v++) kl += Math.exp(full[v]!) * (full[v]! - lp[g * V + v]!);
      return -kl;
    });
  }
}

/** What GRPO does with a keep-set policy: sample G ordered keep-sets of k, their log-probs, and d(Σ dLogProb·logProb)/d logits. Logits [1, N]; indices [1, G, k]. */
interface KeepPolicy {
  sample(logits: Tensor, k: number, G: number, seed: number): Promise<{ indices: Tensor; logProb: Float32Array }>;
  logProb(logits: Tensor, indices: Tensor): Promise<Float32Array>;
  backward(logits: Tensor, indices: Tensor, dLogProb: Float32Array): Promise<Tensor>;
}

/** λ = 0: Plackett-Luce over independent scores, on the native ops. */
function plackettLuce(backend: 'cpu' | 'emu' | 'cuda'): KeepPolicy {
  return {
    async sample(logits, k, G, seed) {
      const { indices, logProb } = await ops.gumbelTopk(logits, k, { samples: G, seed, backend });
      return { indices, logProb: logProb.toHost().host as Float32Array };
    },
    async logProb(logits, indices) {
      return (await ops.plackettLuceLogProb(logits, indices, { backend })).toHost().host as Float32Array;
    },
    async backward(logits, indices, dLogProb) {
      return ops.plackettLuceBackward(logits, indices, tensor(dLogProb, [1, dLogProb.length]), { backend });
    },
  };
}

/** λ > 0: the sequential policy with the redundancy penalty (sequential.ts), on the host. */
function sequential(similarity: Float32Array, redundancy: number): KeepPolicy {
  const policy = (logits: Tensor) => ({ scores: logits.toHost().host as Float32Array, similarity, redundancy });
  const orders = (indices: Tensor) => {
    const [, G, k] = indices.shape as [number, number, number];
    const host = indices.toHost().host as Int32Array;
    return Array.from({ length: G }, (_, g) => host.subarray(g * k, (g + 1) * k));
  };
  return {
    async sample(logits, k, G, seed) {
      const random = mulberry32(seed);
      const p = policy(logits);
      const indices = new Int32Array(G * k), logProb = new Float32Array(G);
      for (let g = 0; g < G; g++) {
        const drawn = sampleKeep(p, k, random);
        indices.set(drawn.order, g * k);
        logProb[g] = drawn.logProb;
      }
      return { indices: tensor(indices, [1, G, k]), logProb };
    },
    async logProb(logits, indices) {
      const p = policy(logits);
      return Float32Array.from(orders(indices), (order) => keepLogProb(p, order).logProb);
    },
    async backward(logits, indices, dLogProb) {
      const p = policy(logits);
      const dLogits = new Float32Array(p.scores.length);
      orders(indices).forEach((order, g) => {
        const { dScores } = keepLogProb(p, order, dLogProb[g]!);
        for (let n = 0; n < dLogits.length; n++) dLogits[n] = dLogits[n]! + dScores[n]!;
      });
      const t = tensor(dLogits, [1, dLogits.length]);
      return logits.device === 'cuda' ? t.toDevice() : t; // beside the scorer's inputs
    },
  };
}

/**
 * The GRPO loss of one group and its gradient w.r.t. each sample's
 * log-probability: loss = -(1/G) Σ_g [min(ρ_g A_g, clip(ρ_g, 1±ε) A_g) - β k3_g],
 * ρ_g = exp(logProb - oldLogProb), k3_g = exp(ref - logProb) - (ref - logProb) - 1.
 */
export function grpoObjective(logProb: ArrayLike<number>, oldLogProb: ArrayLike<number>, refLogProb: ArrayLike<number>, advantages: ArrayLike<number>, clip: number, beta: number): { loss: number; dLogProb: Float32Array; clipped: number; kl: number } {
  const G = advantages.length;
  const dLogProb = new Float32Array(G);
  let loss = 0, clipped = 0, kl = 0;
  for (let g = 0; g < G; g++) {
    const ratio = Math.exp(logProb[g]! - oldLogProb[g]!);
    const a = advantages[g]!;
    const isClipped = (a > 0 && ratio > 1 + clip) || (a < 0 && ratio < 1 - clip);
    if (isClipped) clipped++;
    const surrogate = Math.min(ratio * a, Math.min(Math.max(ratio, 1 - clip), 1 + clip) * a);
    const toRef = refLogProb[g]! - logProb[g]!;
    const k3 = Math.exp(toRef) - toRef - 1;
    kl += k3 / G;
    loss -= (surrogate - beta * k3) / G;
    // d surrogate / d logProb = ratio·A where the unclipped term is the min; d k3 / d logProb = 1 - exp(ref - logProb).
    dLogProb[g] = -((isClipped ? 0 : ratio * a) - beta * (1 - Math.exp(toRef))) / G;
  }
  return { loss, dLogProb, clipped: clipped / G, kl };
}

/** (r - mean) / (std + 1e-6) within the group; all zero when the rewards are equal. */
export function normalise(rewards: Float64Array): Float64Array {
  const n = rewards.length;
  const mean = rewards.reduce((a, b) => a + b, 0) / n;
  const std = Math.sqrt(rewards.reduce((a, b) => a + (b - mean) ** 2, 0) / n);
  return rewards.map((r) => (std < 1e-12 ? 0 : (r - mean) / (std + 1e-6)));
}
