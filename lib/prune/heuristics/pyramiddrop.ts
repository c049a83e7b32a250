// pyramiddrop.ts — PyramidDrop (Xing et al., "PyramidDrop: Accelerating Your
// Large Vision-Language Models via Pyramid Visual Redundancy Reduction",
// CVPR 2025, arXiv 2410.17247): the LLM is split into stages; at the end of
// each stage the visual tokens that reached it are ranked by the attention
// of the last instruction token (at the stage's last layer, averaged over
// heads) and the top λ of them go on. LLaVA-1.5-7B (32 layers) uses stage
// layers 8, 16, 24 and λ = 0.5.
//
// One budget ρ, two fair ways to compare it (both reported by `grip eval`):
// - 'flops' (default, the paper's rule for its comparisons): λ is set so that
//   the visual tokens summed over all L layers equal those of a single prune
//   at layer `reference` keeping ρ N (FastV's and the shipped GRIP's point,
//   2): (K1 + Σ_s (K_{s+1} - K_s) λ^s) / L = (ref + (L - ref) ρ) / L, with
//   K_{S+1} = L, solved by bisection. Same LLM cost as the pruners it stands
//   beside; it keeps more than ρ N early and fewer late.
// - 'final': λ = ρ^(1/S), so the last stage keeps about ρ N tokens (more
//   compute than a single prune at ρ: it is the kept-tokens match).
// Each stage keeps ceil(λ · N_stage) tokens, at least 1.
import { check } from '../../validate.js';
import type { PruneContext, Pruner, StagedPoint } from '../pruner.js';
import { attentionOf, checkOptions, topkRows } from '../common.js';

export interface PyramidDropOptions {
  /** The stage layers K1 < K2 < ... (each in [1, L)); default [1, 2, 3], the testbed's 4 layers in 4 stages (LLaVA-1.5-7B: [8, 16, 24]). */
  layers?: readonly number[];
  /** How ρ sets λ: 'flops' (default) or 'final' (see the file's header). */
  match?: 'flops' | 'final';
  /** 'flops': the layer of the single prune whose cost is matched (default 2). */
  reference?: number;
}

/** λ for keep ratio ρ, stage layers and L layers under a matching rule. */
export function pyramidLambda(rho: number, layers: readonly number[], L: number, match: 'flops' | 'final', reference: number): number {
  if (match === 'final') return rho ** (1 / layers.length);
  const target = (Math.min(reference, L) + (L - Math.min(reference, L)) * rho) / L;
  const tokens = (lambda: number) => (layers[0]! + layers.reduce((sum, K, s) => sum + ((layers[s + 1] ?? L) - K) * lambda ** (s + 1), 0)) / L;
  if (tokens(1) <= target) return 1;
  let lo = 0, hi = 1;
  for (let i = 0; i < 60; i++) {
    const mid = (lo + hi) / 2;
    if (tokens(mid) < target) lo = mid;
    else hi = mid;
  }
  return lo;
}

export class PyramidDropPruner implements Pruner {
  readonly name: string;
  readonly point: StagedPoint;
  readonly needs = { attention: 'last-token' as const };
  readonly match: 'flops' | 'final';
  readonly reference: number;

  constructor(options?: PyramidDropOptions) {
    const o = checkOptions(options, 'pyramiddrop');
    const layers = o.layers ?? [1, 2, 3];
    if (!Array.isArray(layers) || layers.length === 0 || layers.some((K, i) => !Number.isInteger(K) || K < 1 || (i > 0 && K <= layers[i - 1]!))) {
      check.fail('ERR_GRIP_RANGE', 'ascending integer layers >= 1', 'options.layers', JSON.stringify(layers));
    }
    this.point = { layers: [...layers] };
    this.match = o.match ?? 'flops';
    check.oneOf(this.match, 'options.match', ['flops', 'final']);
    this.reference = o.reference ?? 2;
    check.integer(this.reference, 'options.reference', 0, 0x7fffffff);
    this.name = this.match === 'flops' ? 'pyramiddrop' : 'pyramiddrop-final';
  }

  async select(ctx: PruneContext): Promise<Int32Array[]> {
    const B = ctx.numKeep.length, N = ctx.grid.rows * ctx.grid.cols;
    const attention = attentionOf(ctx, B, N, this.name, "'last-token'");
    const stage = ctx.stage ?? { index: 0, layers: this.point.layers, numLayers: this.point.layers.at(-1)! + 1 };
    const lambda = pyramidLambda(ctx.keepRatio[0]!, stage.layers, stage.numLayers, this.match, this.reference);
    const k = Math.max(1, Math.ceil(lambda * N - 1e-9));
    return topkRows(attention, B, N, { ...ctx, numKeep: new Int32Array(B).fill(k) });
  }
}
