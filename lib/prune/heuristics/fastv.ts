// fastv.ts — FastV (Chen et al., "An Image is Worth 1/2 Tokens After Layer 2",
// ECCV 2024): at decoder layer K, keep the visual tokens that received the
// most attention from the last prompt token at layer K-1, averaged over heads.
import { ops } from '../../ops.js';
import { tensor } from '../../tensor.js';
import type { PruneContext, Pruner, PrunePoint } from '../pruner.js';
import { GripError } from '../../errors.js';

export class FastVPruner implements Pruner {
  readonly name = 'fastv';
  readonly point: PrunePoint;
  readonly needs = { attention: 'last-token' as const };

  /** layer: K (FastV's default is 2). */
  constructor(options: { layer?: number } = {}) {
    this.point = { layer: options.layer ?? 2 };
  }

  async select(ctx: PruneContext): Promise<Int32Array[]> {
    if (!ctx.attention) throw new GripError('ERR_GRIP_INTERNAL', 'expected attention for the fastv pruner but received none');
    const B = ctx.numKeep.length, N = ctx.grid.rows * ctx.grid.cols;
    const { indices } = await ops.topk(tensor(ctx.attention, [B, N]), ctx.numKeep, { backend: ctx.backend === 'emu' ? 'emu' : 'cpu', signal: ctx.signal });
    const maxK = indices.shape[1]!;
    const host = indices.host as Int32Array;
    return Array.from(ctx.numKeep, (k, b) => host.slice(b * maxK, b * maxK + k));
  }
}
