// index.ts — the entry `grip-vlm/train`: the GRIP trainers (supervised
// warm-up, GRPO, a whole run with checkpoints and resume) and the one table
// of their defaults. The pruner they train, GripPruner, is in the root entry.
export { warmup, type WarmupOptions, type WarmupState, type WarmupStepStats } from './warmup.js';
export { GRPOTrainer, grpoObjective, type GRPOOptions, type GRPOStepStats } from './grpo.js';
export { trainGrip, resolveTrainOptions, shapesTrainingSet, type TrainRecipe, type TrainRunOptions } from './run.js';
export { TRAIN_DEFAULTS, REWARD_NAMES, WARMUP_LOSSES, type RewardName, type TrainDefaults, type WarmupLoss } from './defaults.js';
export { parseBudgets, type Budgets, type TrainExample } from './data.js';
