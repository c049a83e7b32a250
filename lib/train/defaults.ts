// defaults.ts — the one table of training defaults (`trainGrip` and
// `grip train`): the recipe of the shipped pruner, so that
// `grip train --out DIR` alone retrains it (test/train/defaults.test.ts
// holds the table against the shipped grip.json).
import type { AttentionSource, PrunePoint, QueryPooling } from '../prune/pruner.js';
import type { Budgets } from './data.js';
import type { RewardName } from './grpo.js';

export interface TrainDefaults {
  point: PrunePoint;
  teacher: AttentionSource;
  queryPooling: QueryPooling;
  hidden: number;
  rank: number;
  redundancy: number;
  budgets: Budgets;
  warmupSteps: number;
  warmupBatch: number;
  warmupLr: number;
  steps: number;
  group: number;
  promptsPerStep: number;
  reward: RewardName;
  lr: number;
  beta: number;
  seed: number;
  checkpointEvery: number;
  /** Training questions of `grip train --data shapes` (the testbed's train split). */
  trainQuestions: number;
  /** CPU threads of `grip train` (one thread: the run reproduces byte for byte). */
  threads: number;
}

export const TRAIN_DEFAULTS: Readonly<TrainDefaults> = Object.freeze<TrainDefaults>({
  point: { layer: 2 },
  teacher: 'last-token',
  queryPooling: 'last-token',
  hidden: 128,
  rank: 32,
  redundancy: 10,
  budgets: { range: [0.05, 0.5] },
  warmupSteps: 2000,
  warmupBatch: 8,
  warmupLr: 3e-3,
  steps: 2000,
  group: 8,
  promptsPerStep: 4,
  reward: 'loglik',
  lr: 1e-4,
  beta: 0.2,
  seed: 0,
  checkpointEvery: 50,
  trainQuestions: 4000,
  threads: 1,
});
