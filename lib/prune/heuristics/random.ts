// random.ts — keeps a uniformly random subset of the visual tokens: the floor
// every pruner must beat. Seeded, so a run is reproducible.
import type { PruneContext, Pruner, PrunePoint } from '../pruner.js';
import { mulberry32 } from '../../random.js';
import { check } from '../../validate.js';

export class RandomPruner implements Pruner {
  readonly name = 'random';
  readonly point: PrunePoint;
  private readonly next: () => number;

  constructor(options: { point?: PrunePoint; seed?: number } = {}) {
    this.point = options.point ?? 'pre-llm';
    const seed = options.seed ?? 0;
    check.integer(seed, 'seed', 0, 0xffffffff);
    this.next = mulberry32(seed);
  }

  async select(ctx: PruneContext): Promise<Int32Array[]> {
    const N = ctx.grid.rows * ctx.grid.cols;
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
