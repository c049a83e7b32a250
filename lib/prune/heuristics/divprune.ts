// divprune.ts — DivPrune (Alvar, Singh, Akbari and Zhang, "DivPrune:
// Diversity-based Visual Token Pruning for Large Multimodal Models", CVPR
// 2025, arXiv 2503.02175): keep the k tokens that are most diverse.
//
// The paper's rule: pruning is a Max-Min Diversity Problem — choose k of the
// N tokens maximising the smallest pairwise distance among them, distance
// d(i, j) = 1 - cos(h_i, h_j) — solved greedily:
//   first: the token whose distance to its nearest other token is largest
//     (argmax_i min_{j != i} d(i, j); the paper's code takes the second-smallest
//     entry of each column of d, the smallest being the zero self-distance);
//   then, k - 1 times: the token whose minimum distance to the selected set is
//     largest (argmax_j min_{s in S} d(s, j)).
// Here, the same greedy on similarities (argmin of max cosine is argmax of
// min distance). Simplifications: ties go to the lower index; a selected
// token is never picked again (the paper's argmax could repeat one when every
// remaining distance is 0, e.g. duplicate tokens); a zero state has cosine 0
// with everything (the paper's division would give NaN). The kept set is
// returned ascending (the greedy order is what maxMinGreedy returns).
//
// The similarities come from cosineSimilarities (native rmsNorm + matmul);
// the greedy loop is O(kN) in TypeScript over that matrix.
import { cosineSimilarities } from '../similarity.js';
import type { PruneContext, Pruner, PrunePoint } from '../pruner.js';
import { checkOptions, checkPoint, contextShape } from '../common.js';

/**
 * The greedy max-min order of k of N tokens from their similarities
 * (row-major [N, N], larger = closer; only i != j entries are read).
 */
export function maxMinGreedy(similarity: Float32Array, N: number, k: number): Int32Array {
  const order = new Int32Array(k);
  const taken = new Uint8Array(N);
  // closest[j]: the largest similarity of j to the selected set (to any other token, for the first pick).
  const closest = new Float32Array(N).fill(-Infinity);
  for (let i = 0; i < N; i++) {
    const row = i * N;
    for (let j = 0; j < N; j++) if (j !== i && similarity[row + j]! > closest[i]!) closest[i] = similarity[row + j]!;
  }
  for (let n = 0; n < k; n++) {
    let best = -1, bestValue = Infinity;
    for (let j = 0; j < N; j++) {
      if (taken[j]) continue;
      if (best < 0 || closest[j]! < bestValue) {
        best = j;
        bestValue = closest[j]!;
      }
    }
    order[n] = best;
    taken[best] = 1;
    const row = best * N;
    if (n === 0) closest.fill(-Infinity);
    for (let j = 0; j < N; j++) if (similarity[row + j]! > closest[j]!) closest[j] = similarity[row + j]!;
  }
  return order;
}

export class DivPrunePruner implements Pruner {
  readonly name = 'divprune';
  readonly point: PrunePoint;

  /** point: 'pre-llm' (default, the projected visual tokens, as the paper) or { layer: K }. */
  constructor(options?: { point?: PrunePoint }) {
    const o = checkOptions(options, 'divprune');
    this.point = checkPoint(o.point ?? 'pre-llm', 'options.point');
  }

  async select(ctx: PruneContext): Promise<Int32Array[]> {
    const { N } = contextShape(ctx, this.name);
    const similarities = await cosineSimilarities(ctx.visual, ctx.backend, ctx.signal);
    return similarities.map((similarity, b) => maxMinGreedy(similarity, N, ctx.numKeep[b]!).sort());
  }
}
