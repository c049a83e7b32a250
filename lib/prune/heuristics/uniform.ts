// uniform.ts — spatially uniform sampling: keep k tokens spread evenly over
// the rows x cols grid, whatever the image shows. No single paper introduced
// it: it is the content-blind baseline of visual token reduction (strided
// down-sampling of the patch grid), and with `random` the floor a
// content-aware pruner must clear.
//
// The rule (integer arithmetic after the choice of kr, so positions are exact):
//   kr = clamp(round(sqrt(k · rows / cols)), ceil(k / cols), min(rows, k))   rows of the lattice
//   lattice row i (0 <= i < kr) sits on grid row floor((2i + 1) · rows / (2 kr)),
//   and holds c_i = floor((i + 1) k / kr) - floor(i k / kr) tokens (counts differ by at most one,
//   the larger rows spread evenly), on the columns floor((2j + 1) · cols / (2 c_i)), 0 <= j < c_i.
// Each token is the centre of its cell when the grid is cut into kr bands
// and each band into c_i cells. When kr divides k this is a regular lattice:
// k = 16 on 8 x 8 keeps rows and columns {1, 3, 5, 7} (indices 9, 11, 13, 15,
// 25, ..., 63); k = 4 keeps {2, 6} x {2, 6}; k = 1 keeps the centre (4, 4).
// Picking evenly spaced indices in raster order instead would keep whole
// columns (k = 16 on 8 x 8: columns 2 and 6 of every row), so it is not used.
import type { PruneContext, Pruner, PrunePoint } from '../pruner.js';
import { checkOptions, checkPoint, contextShape } from '../common.js';

/** The k grid indices (raster order, ascending) of the uniform rule above; 1 <= k <= rows · cols. */
export function uniformGridIndices(rows: number, cols: number, k: number): Int32Array {
  const latticeRows = Math.min(rows, k, Math.max(Math.ceil(k / cols), Math.round(Math.sqrt((k * rows) / cols))));
  const out = new Int32Array(k);
  let n = 0;
  for (let i = 0; i < latticeRows; i++) {
    const row = Math.floor(((2 * i + 1) * rows) / (2 * latticeRows));
    const count = Math.floor(((i + 1) * k) / latticeRows) - Math.floor((i * k) / latticeRows);
    for (let j = 0; j < count; j++) out[n++] = row * cols + Math.floor(((2 * j + 1) * cols) / (2 * count));
  }
  return out;
}

export class UniformPruner implements Pruner {
  readonly name = 'uniform';
  readonly point: PrunePoint;

  /** point: 'pre-llm' (default) or { layer: K } — the choice depends only on the grid, so the point only moves where the tokens leave. */
  constructor(options?: { point?: PrunePoint }) {
    const o = checkOptions(options, 'uniform');
    this.point = checkPoint(o.point ?? 'pre-llm', 'options.point');
  }

  async select(ctx: PruneContext): Promise<Int32Array[]> {
    contextShape(ctx, this.name, false);
    const { rows, cols } = ctx.grid;
    return Array.from(ctx.numKeep, (k) => uniformGridIndices(rows, cols, k));
  }
}
