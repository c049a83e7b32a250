// data.ts — what the trainers consume: examples (image, prompt, reference
// answer), keep-ratio sampling, and a small seeded RNG.
import type { ImageInput } from '../model/processor.js';
import type { Tensor } from '../tensor.js';
import { mulberry32, type SeededRandom } from '../random.js';
import { check } from '../validate.js';

export interface TrainExample {
  image?: ImageInput;
  /** [C, H, W] f32, already preprocessed (instead of image). */
  pixelValues?: Tensor;
  prompt: string;
  /** The reference answer (its tokens, without special tokens, are scored). */
  answer: string;
  /** Question kind, for per-kind reports. */
  kind?: string;
}

/** Keep ratios: a range sampled uniformly, or a list sampled uniformly by element. */
export type Budgets = { range: readonly [number, number] } | { list: readonly number[] };

export class BudgetSampler {
  private readonly random: SeededRandom;
  private readonly values: readonly number[];
  private readonly isRange: boolean;

  constructor(budgets: Budgets, seed: number) {
    this.isRange = typeof budgets === 'object' && budgets !== null && 'range' in budgets;
    const values = this.isRange ? (budgets as { range: readonly number[] }).range : (budgets as { list?: readonly number[] })?.list;
    const ok = Array.isArray(values) && values.length > 0 && values.every((b) => typeof b === 'number' && b > 0 && b <= 1)
      && (!this.isRange || (values.length === 2 && values[0]! <= values[1]!));
    if (!ok) check.fail('ERR_GRIP_RANGE', '{ range: [low, high] } or { list: [...] } of keep ratios in (0, 1]', 'budgets', JSON.stringify(budgets));
    this.values = values!;
    this.random = mulberry32(seed ^ 0x85ebca6b);
  }

  /** Where the draws stand (a uint32): a checkpoint saves it, a resume sets it. */
  get state(): number {
    return this.random.state;
  }
  set state(value: number) {
    this.random.state = value;
  }

  next(): number {
    const v = this.values;
    if (this.isRange) return v[0]! + (v[1]! - v[0]!) * this.random();
    return v[Math.floor(this.random() * v.length)]!;
  }
}

/** Parses "0.05:0.5" (a range) or "0.11,0.25,0.5" (a list). */
export function parseBudgets(text: string): Budgets {
  const range = text.includes(':');
  const values = (range ? text.split(':') : text.split(',')).map(Number);
  if (values.some((v) => !(v > 0 && v <= 1)) || (range && (values.length !== 2 || values[0]! > values[1]!))) {
    check.fail('ERR_GRIP_RANGE', 'low:high or a comma-separated list of keep ratios in (0, 1]', 'budgets', `"${text}"`);
  }
  return range ? { range: [values[0]!, values[1]!] } : { list: values };
}


/** [low, high] of the keep ratios: the range itself, or the list's extremes (a pruner's budgetRange). */
export function budgetRangeOf(budgets: Budgets): [number, number] {
  return 'range' in budgets ? [budgets.range[0], budgets.range[1]] : [Math.min(...budgets.list), Math.max(...budgets.list)];
}
