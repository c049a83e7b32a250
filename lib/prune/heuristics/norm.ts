// norm.ts — keeps the k visual tokens whose state at the prune point has the
// largest L2 norm. No single paper introduced it: it is the cheapest
// content-aware heuristic (no attention, no text), resting on the
// observation that a few high-norm tokens carry global image information
// (Darcet et al., "Vision Transformers Need Registers", ICLR 2024). Scoring:
// ||h_i||_2 over the D features of token i; selection: top-k (native topk,
// ties to the lower index), returned ascending.
//
// The norms are one pass over the states in TypeScript (float64 sums): the
// addon has no row-norm reduction, and the pass reads B·N·D values once,
// which is what any native version would do too. A CUDA tensor is copied to
// the host first (B·N·D floats).
import type { PruneContext, Pruner, PrunePoint } from '../pruner.js';
import { checkOptions, checkPoint, contextShape, topkRows } from '../common.js';

/** [B·N] the L2 norm of each D-wide row of states [B·N·D]. */
export function rowNorms(states: Float32Array, rows: number, D: number): Float32Array {
  const norms = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    let sum = 0;
    for (let d = r * D, end = d + D; d < end; d++) sum += states[d]! * states[d]!;
    norms[r] = Math.sqrt(sum);
  }
  return norms;
}

export class NormPruner implements Pruner {
  readonly name = 'norm';
  readonly point: PrunePoint;

  /** point: 'pre-llm' (default, the projected visual tokens) or { layer: K } (the hidden states entering layer K). */
  constructor(options?: { point?: PrunePoint }) {
    const o = checkOptions(options, 'norm');
    this.point = checkPoint(o.point ?? 'pre-llm', 'options.point');
  }

  async select(ctx: PruneContext): Promise<Int32Array[]> {
    const { B, N, D } = contextShape(ctx, this.name);
    const states = ctx.visual.toHost().host as Float32Array;
    return topkRows(rowNorms(states, B * N, D), B, N, ctx);
  }
}
