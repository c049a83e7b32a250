// random.ts — keeps a uniformly random subset of the visual tokens: the floor
// every pruner must beat. Seeded, so a run is reproducible.
import type { PruneContext, Pruner, PrunePoint } from '../pruner.js';
import { mulberry32 } from '../../random.js';
import { check } from '../../validate.js';
import { checkOptions, checkPoint, contextShape } from '../common.js';

export class RandomPruner implements Pruner {
  readonly name = 'random';
  readonly point: PrunePoint;
  private readonly next: () => number;

  /** point: 'pre-llm' (default) or { layer: K }; seed: an integer in [0, 2^32) (default 0). */
  constructor(options?: { point?: PrunePoint; seed?: number }) {
    const o = checkOptions(options, 'random');
    this.point = checkPoint(o.point ?? 'pre-llm', 'options.point');
    const seed = o.seed ?? 0;
    check.integer(seed, 'seed', 0, 0xffffffff);
    this.next = mulberry32(seed);
  }

  async select(ctx: PruneContext): Promise<Int32Array[]> {
    const { N } = contextShape(ctx, this.name, false);
    return Array.from(ctx.numKeep, (k) => {
      // Partial Fisher-Yates: the first k slots are a uniform k-subset.
      const order = Int32Array.from({ length: N }, (_, i) => i);
      for (let i = 0; i < k; i++) {
        const j = i + Math.floor(this.next() * (N - i));
        [order[i], order[j]] = [order[j]!, order[i]!];
      }
      return order.subarray(0, k).sort();
    });
  }
}
