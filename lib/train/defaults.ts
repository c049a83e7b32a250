// defaults.ts — the one table of defaults of the GRIP pruner (GripPruner.init),
// the warm-up (warmup), GRPO (GRPOTrainer), `trainGrip` and `grip train`:
// the recipe of the shipped pruner, so that `grip train --out DIR` alone
// retrains it (test/train/defaults.test.ts holds the table against the
// shipped grip.json and the recipe command in docs/recipe.md). Every other
// module reads its defaults from here and writes no number of its own.
import type { AttentionSource, PrunePoint, QueryPooling } from '../prune/pruner.js';
import type { Budgets } from './data.js';

/** GRPO's rewards (see GRPOOptions.reward). */
export const REWARD_NAMES = ['loglik', 'match', 'fidelity'] as const;
export type RewardName = (typeof REWARD_NAMES)[number];

/** The warm-up's losses: listwise cross-entropy to the teacher distribution, or pairwise logistic on teacher-top-k vs the rest. */
export const WARMUP_LOSSES = ['listwise', 'pairwise'] as const;
export type WarmupLoss = (typeof WARMUP_LOSSES)[number];

export interface TrainDefaults {
  // The pruner (GripPruner.init).
  point: PrunePoint;
  hidden: number;
  rank: number;
  queryPooling: QueryPooling;
  redundancy: number;
  /** Keep ratios trained for; a range also gives the pruner's budgetRange. */
  budgets: Budgets;
  /** The scorer's initialisation seed and every trainer's seed. */
  seed: number;
  // The warm-up (warmup).
  teacher: AttentionSource;
  /** Pre-LLM scorers: the layer whose text-to-image attention teaches (the attention of layer - 1). */
  attentionLayer: number;
  warmupLoss: WarmupLoss;
  /** The teacher is attention^(1/T). */
  teacherTemperature: number;
  warmupSteps: number;
  warmupBatch: number;
  warmupLr: number;
  // GRPO (GRPOTrainer).
  steps: number;
  group: number;
  promptsPerStep: number;
  reward: RewardName;
  lr: number;
  beta: number;
  /** PPO clip ε. */
  clip: number;
  /** Inner epochs μ per sampled group. */
  innerEpochs: number;
  /** AdamW weight decay of both phases. */
  weightDecay: number;
  /** Both phases clip the global gradient norm to this. */
  maxGradNorm: number;
  // The run (trainGrip, grip train).
  checkpointEvery: number;
  /** Training questions of `grip train --data shapes` (the testbed's train split). */
  trainQuestions: number;
  /** CPU threads of `grip train` (one thread: the run reproduces byte for byte). */
  threads: number;
}

export const TRAIN_DEFAULTS: Readonly<TrainDefaults> = Object.freeze<TrainDefaults>({
  point: Object.freeze({ layer: 2 }),
  hidden: 128,
  rank: 32,
  queryPooling: 'last-token',
  redundancy: 10,
  budgets: Object.freeze({ range: Object.freeze([0.05, 0.5] as const) }),
  seed: 0,
  teacher: 'last-token',
  attentionLayer: 2,
  warmupLoss: 'listwise',
  teacherTemperature: 1,
  warmupSteps: 2000,
  warmupBatch: 8,
  warmupLr: 3e-3,
  steps: 2000,
  group: 8,
  promptsPerStep: 4,
  reward: 'loglik',
  lr: 1e-4,
  beta: 0.2,
  clip: 0.2,
  innerEpochs: 2,
  weightDecay: 0,
  maxGradNorm: 1,
  checkpointEvery: 50,
  trainQuestions: 4000,
  threads: 1,
});
