// evaluate.ts — accuracy and prefill cost of pruners across keep ratios on a
// question set: one greedy answer per question (as many tokens as the
// reference answer has), correct when the tokens equal the reference's.
import type { ImageInput } from '../model/processor.js';
import type { VLM } from '../model/vlm.js';
import type { Pruner } from '../prune/pruner.js';
import { check } from '../validate.js';
import { wilson } from './stats.js';

export interface EvalExample {
  image: ImageInput;
  prompt: string;
  answer: string;
  /** Question kind, for the per-kind columns. */
  kind: string;
}

export interface EvalRow {
  pruner: string;
  keepRatio: number;
  /** Kept visual tokens per image. */
  kept: number;
  n: number;
  correct: number;
  accuracy: number;
  /** The 95% Wilson score interval of `accuracy`. */
  interval: [number, number];
  /** 1 where question i was answered right, else 0 (in the order of the examples): the pairs of a paired test. */
  outcomes: number[];
  perKind: Record<string, { correct: number; total: number }>;
  /** Mean over questions, batch 1. */
  prefillMs: number;
  pruneMs: number;
  /** Mean time of the whole answer (preprocess, vision, prune, prefill, decode). */
  totalMs: number;
}

export interface EvalOptions {
  signal?: AbortSignal;
  /** Called after each (pruner, ratio) cell with the rows so far. */
  onProgress?: (done: number, total: number, row: EvalRow) => void;
}

const WARMUP_EXAMPLES = 8;

/**
 * Every (pruner, ratio) cell; ratio 1 is run once, unpruned, as the row
 * 'unpruned' (the reference every pruner is compared with).
 */
export async function evaluate(model: VLM, examples: readonly EvalExample[], pruners: readonly Pruner[], ratios: readonly number[], options: EvalOptions = {}): Promise<EvalRow[]> {
  if (!Array.isArray(examples) || examples.length === 0) check.fail('ERR_GRIP_SHAPE', 'a non-empty array of examples', 'examples', Array.isArray(examples) ? 'an empty array' : String(examples));
  ratios.forEach((r, i) => check.number(r, `ratios[${i}]`, (v) => v > 0 && v <= 1, 'a keep ratio in (0, 1]'));
  const answers = examples.map((ex) => model.tokenizer.encode(ex.answer, { addSpecialTokens: false }));
  const cells: { pruner?: Pruner; keepRatio: number }[] = [{ keepRatio: 1 }];
  for (const pruner of pruners) for (const r of ratios) if (r < 1) cells.push({ pruner, keepRatio: r });
  // Untimed warm-up: the first calls pay for lazy initialisation (JIT, allocator, thread pool), and
  // the unpruned cell, which every speed-up is divided by, runs first.
  for (const ex of examples.slice(0, WARMUP_EXAMPLES)) {
    options.signal?.throwIfAborted();
    await model.generate({ image: ex.image, prompt: ex.prompt, maxNewTokens: 1, stopAtEos: false, ...(options.signal ? { signal: options.signal } : {}) });
  }
  const rows: EvalRow[] = [];
  for (const cell of cells) {
    const row: EvalRow = { pruner: cell.pruner?.name ?? 'unpruned', keepRatio: cell.keepRatio, kept: 0, n: 0, correct: 0, accuracy: 0, interval: [0, 1], outcomes: [], perKind: {}, prefillMs: 0, pruneMs: 0, totalMs: 0 };
    for (let i = 0; i < examples.length; i++) {
      options.signal?.throwIfAborted();
      const ex = examples[i]!;
      const t0 = performance.now();
      const result = await model.generate({
        image: ex.image, prompt: ex.prompt, maxNewTokens: answers[i]!.length, stopAtEos: false,
        ...(cell.pruner ? { pruner: cell.pruner, keepRatio: cell.keepRatio } : {}),
        ...(options.signal ? { signal: options.signal } : {}),
      });
      const total = performance.now() - t0;
      const ok = result.tokenIds.length === answers[i]!.length && result.tokenIds.every((id, j) => id === answers[i]![j]);
      row.n++;
      row.correct += ok ? 1 : 0;
      row.outcomes.push(ok ? 1 : 0);
      row.kept = result.kept.indices.length;
      row.prefillMs += result.timings.prefillMs;
      row.pruneMs += result.timings.pruneMs;
      row.totalMs += total;
      const kind = (row.perKind[ex.kind] ??= { correct: 0, total: 0 });
      kind.total++;
      kind.correct += ok ? 1 : 0;
    }
    row.accuracy = row.correct / row.n;
    row.interval = wilson(row.correct, row.n);
    row.prefillMs /= row.n;
    row.pruneMs /= row.n;
    row.totalMs /= row.n;
    rows.push(row);
    options.onProgress?.(rows.length, cells.length, row);
  }
  return rows;
}
