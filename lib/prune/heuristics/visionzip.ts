// visionzip.ts — VisionZip (Yang et al., "VisionZip: Longer is Better but Not
// Necessary in Vision Language Models", CVPR 2025, arXiv 2412.04467), token
// selection only.
//
// The paper's rule, on the vision tower's layer -2 (LLaVA's feature layer):
//   dominant tokens: the top-k_d patches by the attention the CLS token pays
//     them, summed over heads (VisionZip keeps CLS too; here it is dropped at
//     the feature layer, as LLaVA does, so only patches compete);
//   contextual tokens: of the R patches left, k_c "targets" taken uniformly
//     (every step-th in raster order, step = max(1, floor(R / k_c)), the first
//     k_c of them); every other leftover patch is assigned to its most similar
//     target (cosine of the layer's attention keys) and the target becomes the
//     target plus the mean of its assigned patches.
//   LLaVA-1.5 at 64 tokens uses k_d = 54, k_c = 10 (a contextual fraction 10/64).
//
// Here the dominant part is exact: the runtime's 'cls' attention is the CLS
// row at the feature layer averaged over heads (the same order as the sum).
// Two pruners:
// - "cls" (VisionZipPruner): selection only. The contextual targets, if any,
//   keep their own states; with `contextual: 0` (the default) this is top-k
//   of CLS attention.
// - "visionzip" (VisionZipMergePruner): the full method. It selects as above
//   with the paper's contextual share (10 of 64) and, through the Pruner's
//   `merge`, hands the runtime each target's merged state: target + mean of
//   the leftovers assigned to it. Two differences from the paper, both
//   because the pruner sees the states at its point and not the vision
//   tower's internals: the assignment uses the cosine of those states (the
//   paper: of the layer's attention keys), and the merge happens where the
//   pruner runs (pre-LLM: after the projector; the paper: before it).
// The selection does not read the states, so the point only decides where
// the tokens leave (VisionZip itself prunes before the LLM).
import { check } from '../../validate.js';
import type { PruneContext, Pruner, PrunePoint } from '../pruner.js';
import { attentionOf, checkOptions, checkPoint, contextShape, topkRows } from '../common.js';

/** VisionZip's split for LLaVA-1.5 at 64 tokens: 54 dominant + 10 contextual. */
export const VISIONZIP_CONTEXTUAL = 10 / 64;

export interface VisionZipOptions {
  /** 'pre-llm' (default) or { layer: K }. */
  point?: PrunePoint;
  /**
   * Share of the budget for contextual tokens: a fraction in [0, 1) of numKeep
   * (rounded), or a whole number >= 1 of tokens; at least one dominant token is
   * always kept. Default 0 (dominant tokens only).
   */
  contextual?: number;
}

/** Contextual tokens out of a budget of k: round(fraction · k) or the count, at most k - 1. */
export function contextualCount(contextual: number, k: number): number {
  const wanted = contextual < 1 ? Math.round(contextual * k) : contextual;
  return Math.max(0, Math.min(wanted, k - 1));
}

/**
 * VisionZip's contextual targets: of the ascending leftover indices (R of
 * them), every step-th from the first, step = max(1, floor(R / count)), the
 * first `count` of them.
 */
export function contextualTargets(leftover: Int32Array, count: number): Int32Array {
  const step = Math.max(1, Math.floor(leftover.length / count));
  return Int32Array.from({ length: count }, (_, i) => leftover[i * step]!);
}

export class VisionZipPruner implements Pruner {
  readonly name: string = 'cls';
  readonly point: PrunePoint;
  readonly needs = { attention: 'cls' as const };
  readonly contextual: number;

  constructor(options?: VisionZipOptions) {
    const o = checkOptions(options, 'cls');
    this.point = checkPoint(o.point ?? 'pre-llm', 'options.point');
    const contextual = o.contextual ?? 0;
    check.number(contextual, 'options.contextual', (v) => v >= 0 && (v < 1 || Number.isSafeInteger(v)), 'a fraction in [0, 1) or a whole number of tokens');
    this.contextual = contextual;
  }

  async select(ctx: PruneContext): Promise<Int32Array[]> {
    return (await this.split(ctx)).map(({ dominant, targets }) => {
      if (targets.length === 0) return dominant;
      const kept = new Int32Array(dominant.length + targets.length);
      kept.set(dominant);
      kept.set(targets, dominant.length);
      return kept.sort();
    });
  }

  /** Per row: the dominant tokens (ascending), the contextual targets, and the leftovers that are neither. */
  protected async split(ctx: PruneContext): Promise<{ dominant: Int32Array; targets: Int32Array; rest: Int32Array }[]> {
    const { B, N } = contextShape(ctx, this.name, false);
    const attention = attentionOf(ctx, B, N, this.name, "'cls'");
    const numContextual = Int32Array.from(ctx.numKeep, (k) => contextualCount(this.contextual, k));
    const dominant = await topkRows(attention, B, N, { ...ctx, numKeep: ctx.numKeep.map((k, b) => k - numContextual[b]!) });
    return dominant.map((set, b) => {
      const count = numContextual[b]!;
      const taken = new Uint8Array(N);
      for (const i of set) taken[i] = 1;
      const leftover = new Int32Array(N - set.length);
      for (let i = 0, n = 0; i < N; i++) if (!taken[i]) leftover[n++] = i;
      const targets = count === 0 ? new Int32Array(0) : contextualTargets(leftover, count);
      for (const t of targets) taken[t] = 1;
      return { dominant: set, targets, rest: leftover.filter((i) => !taken[i]) };
    });
  }
}

/**
 * The full VisionZip: dominant tokens by CLS attention plus contextual tokens
 * that carry the merged leftovers (see the file's header for the rule and
 * where it differs from the paper). `contextual` defaults to 10/64.
 */
export class VisionZipMergePruner extends VisionZipPruner {
  override readonly name: string = 'visionzip';

  constructor(options?: VisionZipOptions) {
    const o = checkOptions(options, 'visionzip');
    super({ ...o, contextual: o.contextual ?? VISIONZIP_CONTEXTUAL });
  }

  async merge(ctx: PruneContext, kept: readonly Int32Array[]): Promise<(Float32Array | null)[]> {
    const { N, D } = contextShape(ctx, this.name);
    const visual = ctx.visual.device === 'cuda' ? ctx.visual.toHost() : ctx.visual;
    const x = visual.host as Float32Array;
    const parts = await this.split(ctx);
    const out = parts.map(({ targets, rest }, b) => {
      if (targets.length === 0) return null;
      const row = (i: number) => x.subarray((b * N + i) * D, (b * N + i + 1) * D);
      // Unit target vectors; a leftover's own norm does not change which target is nearest.
      const units = new Float64Array(targets.length * D);
      targets.forEach((t, j) => {
        const v = row(t);
        let ss = 0;
        for (let d = 0; d < D; d++) ss += v[d]! * v[d]!;
        const inv = 1 / Math.sqrt(ss);
        for (let d = 0; d < D; d++) units[j * D + d] = v[d]! * inv;
      });
      const sums = Array.from(targets, () => new Float64Array(D));
      const counts = new Int32Array(targets.length);
      for (const m of rest) {
        // The most similar target; a tie goes to the first (torch's argmax).
        const v = row(m);
        let best = 0, bestSim = -Infinity;
        for (let j = 0; j < targets.length; j++) {
          let sim = 0;
          for (let d = 0, o = j * D; d < D; d++) sim += v[d]! * units[o + d]!;
          if (sim > bestSim) { bestSim = sim; best = j; }
        }
        const acc = sums[best]!;
        for (let d = 0; d < D; d++) acc[d]! += v[d]!;
        counts[best]!++;
      }
      const states = new Float32Array(kept[b]!.length * D);
      const targetOf = new Map(Array.from(targets, (t, j) => [t, j]));
      kept[b]!.forEach((i, slot) => {
        const v = row(i), j = targetOf.get(i);
        const dst = states.subarray(slot * D, (slot + 1) * D);
        if (j === undefined) dst.set(v);
        else for (let d = 0; d < D; d++) dst[d] = v[d]! + sums[j]![d]! / Math.max(1, counts[j]!);
      });
      return states;
    });
    if (visual !== ctx.visual) visual.dispose();
    return out;
  }
}
