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
// The contextual part keeps the target tokens' indices and does NOT merge
// the other leftovers into them: the Pruner contract returns indices, and
// the runtime gathers the kept rows unchanged, so a merged state has no way
// in without a contract change (an optional per-row merge output that the
// runtime would write over the kept rows' states). With
// `contextual: 0` (the default) this is the "cls" baseline: top-k of CLS
// attention. The selection does not read the states, so the point only
// decides where the tokens leave (VisionZip itself prunes before the LLM).
import { check } from '../../validate.js';
import type { PruneContext, Pruner, PrunePoint } from '../pruner.js';
import { attentionOf, checkOptions, checkPoint, contextShape, topkRows } from '../common.js';

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
  readonly name = 'cls';
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
    const { B, N } = contextShape(ctx, this.name, false);
    const attention = attentionOf(ctx, B, N, this.name, "'cls'");
    const numContextual = Int32Array.from(ctx.numKeep, (k) => contextualCount(this.contextual, k));
    const dominant = await topkRows(attention, B, N, { ...ctx, numKeep: ctx.numKeep.map((k, b) => k - numContextual[b]!) });
    return dominant.map((set, b) => {
      const count = numContextual[b]!;
      if (count === 0) return set;
      const taken = new Uint8Array(N);
      for (const i of set) taken[i] = 1;
      const leftover = new Int32Array(N - set.length);
      for (let i = 0, n = 0; i < N; i++) if (!taken[i]) leftover[n++] = i;
      const kept = new Int32Array(set.length + count);
      kept.set(set);
      kept.set(contextualTargets(leftover, count), set.length);
      return kept.sort();
    });
  }
}
