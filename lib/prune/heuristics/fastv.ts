// fastv.ts — FastV (Chen et al., "An Image is Worth 1/2 Tokens After Layer 2",
// ECCV 2024): at decoder layer K, keep the visual tokens that received the
// most attention from the last prompt token at layer K-1, averaged over heads.
import type { PruneContext, Pruner, PrunePoint } from '../pruner.js';
import { check } from '../../validate.js';
import { attentionOf, checkOptions, contextShape, topkRows } from '../common.js';

/** The paper's K: prune at the input of decoder layer 2. */
export const FASTV_LAYER = 2;

export class FastVPruner implements Pruner {
  readonly name = 'fastv';
  readonly point: PrunePoint;
  readonly needs = { attention: 'last-token' as const };

  /** layer: K, an integer >= 1 (default FASTV_LAYER); FastV always prunes inside the LLM. */
  constructor(options?: { layer?: number }) {
    const o = checkOptions(options, 'fastv');
    const layer = o.layer ?? FASTV_LAYER;
    check.integer(layer, 'options.layer', 1, 0x7fffffff);
    this.point = { layer };
  }

  async select(ctx: PruneContext): Promise<Int32Array[]> {
    const { B, N } = contextShape(ctx, this.name, false);
    return topkRows(attentionOf(ctx, B, N, this.name, "'last-token'"), B, N, ctx);
  }
}
