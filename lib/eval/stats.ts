// stats.ts — error bars for `grip eval`: the Wilson score interval of an
// accuracy (Wilson 1927; Newcombe 1998, method 3: no continuity correction),
// and the exact (binomial) McNemar test of two pruners on the same questions.
import { check } from '../validate.js';

/** The 0.975 quantile of the standard normal: a two-sided 95% interval. */
export const Z95 = 1.959963984540054;

/** The 95% Wilson score interval [lo, hi] of `correct` successes in `n` trials. */
export function wilson(correct: number, n: number, z = Z95): [number, number] {
  check.integer(n, 'n', 1, Number.MAX_SAFE_INTEGER);
  check.integer(correct, 'correct', 0, n);
  const p = correct / n, z2 = z * z;
  const centre = (p + z2 / (2 * n)) / (1 + z2 / n);
  const half = (z / (1 + z2 / n)) * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n));
  // At p = 0 or 1 the bound is exactly 0 or 1; the formula gives it up to round-off.
  return [correct === 0 ? 0 : centre - half, correct === n ? 1 : centre + half];
}

/**
 * The two-sided exact McNemar p-value from the discordant pairs: b questions
 * only the first pruner answers right, c only the second. Under the null
 * each discordant pair goes either way with probability 1/2, so
 * p = min(1, 2 P[X <= min(b, c)]), X ~ Binomial(b + c, 1/2).
 */
export function mcnemarExact(b: number, c: number): number {
  check.integer(b, 'b', 0, Number.MAX_SAFE_INTEGER);
  check.integer(c, 'c', 0, Number.MAX_SAFE_INTEGER);
  const n = b + c, m = Math.min(b, c);
  if (n === 0) return 1;
  // The pmf in log space (n can be in the thousands): log C(n, i) built term by term.
  let logC = 0, tail = 0;
  for (let i = 0; i <= m; i++) {
    if (i > 0) logC += Math.log((n - i + 1) / i);
    tail += Math.exp(logC - n * Math.LN2);
  }
  return Math.min(1, 2 * tail);
}

/** What a paired comparison needs of an evaluation row (EvalRow has it). */
export interface OutcomeRow {
  pruner: string;
  keepRatio: number;
  accuracy: number;
  /** 1 where question i was answered right, else 0; the same questions in the same order in every row. */
  outcomes: readonly number[];
}

/** The subject against the best baseline at one keep ratio, on the same questions. */
export interface PairedComparison {
  keepRatio: number;
  subject: string;
  subjectAccuracy: number;
  /** The baseline with the highest accuracy at this ratio (the first listed on a tie). */
  baseline: string;
  baselineAccuracy: number;
  /** subjectAccuracy - baselineAccuracy. */
  difference: number;
  /** Questions only the subject answered right (McNemar's b). */
  onlySubject: number;
  /** Questions only the baseline answered right (McNemar's c). */
  onlyBaseline: number;
  /** Two-sided exact McNemar p-value of b against c. */
  pValue: number;
}

/**
 * At each keep ratio where `subject` has a row, the subject against the most
 * accurate of `baselines` at that ratio, paired question by question (the
 * exact McNemar test): is the difference more than the luck of the questions?
 */
export function pairedComparisons(rows: readonly OutcomeRow[], subject: string, baselines: readonly string[]): PairedComparison[] {
  const comparisons: PairedComparison[] = [];
  for (const s of rows.filter((r) => r.pruner === subject)) {
    const rivals = baselines.map((name) => rows.find((r) => r.pruner === name && r.keepRatio === s.keepRatio)).filter((r): r is OutcomeRow => r !== undefined);
    if (rivals.length === 0) continue;
    const best = rivals.reduce((a, b) => (b.accuracy > a.accuracy ? b : a));
    if (best.outcomes.length !== s.outcomes.length) {
      check.fail('ERR_GRIP_SHAPE', `${s.outcomes.length} outcomes (the questions of ${subject})`, `the outcomes of ${best.pruner} at keep ratio ${s.keepRatio}`, String(best.outcomes.length));
    }
    let onlySubject = 0, onlyBaseline = 0;
    s.outcomes.forEach((o, i) => {
      if (o && !best.outcomes[i]) onlySubject++;
      else if (!o && best.outcomes[i]) onlyBaseline++;
    });
    comparisons.push({
      keepRatio: s.keepRatio, subject, subjectAccuracy: s.accuracy, baseline: best.pruner, baselineAccuracy: best.accuracy,
      difference: s.accuracy - best.accuracy, onlySubject, onlyBaseline, pValue: mcnemarExact(onlySubject, onlyBaseline),
    });
  }
  return comparisons;
}
