// cdpruner.ts — CDPruner (Zhang et al., "Beyond Attention or Similarity:
// Maximizing Conditional Diversity for Token Pruning in MLLMs", NeurIPS 2025,
// arXiv 2506.10967): keep the k tokens that are most diverse given the
// instruction, by MAP inference of a conditional determinantal point process.
//
// The paper's rule (and its code's):
//   S_ij = cos(h_i, h_j)                        the visual tokens' similarity;
//   q_i  = mean_j -cos(h_i, t_j)                relevance to the instruction's
//          tokens t_j (the code negates: in LLaVA's projector space the cosine
//          to the text runs the wrong way), min-max normalised per row to
//          [0, 1] ((q - min) / (max - min + 1e-6));
//   r_i  = exp(alpha q_i), alpha = theta / (2 (1 - theta)), theta = 0.5 by
//          default (theta = 1: r = q, as the code does);
//   L    = diag(r) S diag(r)                     the conditional kernel;
//   keep the greedy MAP of det(L_S) over |S| = k: each step adds the token
//   with the largest marginal gain, by the incremental-Cholesky greedy of
//   Chen, Zhang and Zhou (NeurIPS 2018) that the authors' code uses
//   (d_j^2 = L_jj, then per pick j: e = (L_j - c_j^T C) / d_j, C += e, d^2 -= e^2).
// The text tokens are PruneContext.text (the pruner declares needs.text): the
// text after the image, pre-LLM its embeddings, as the paper's code does with
// the instruction's embeddings; a context without them (one made by hand)
// uses ctx.query as the one text token, and a row with no text has q = 0.
// Simplifications: ties go to the lower index; once the kernel's rank is spent (every
// remaining gain d_j^2 <= 1e-5 · max L_jj, e.g. duplicate tokens, where the
// code would divide by zero) the rest are taken by descending r, lower index
// first; a zero state or zero query has cosine 0. The greedy runs in float64.
// The kept set is returned ascending (cdppGreedy returns the greedy order).
//
// Cost: the N x N cosines (native matmul), then O(N k^2) for the greedy in
// TypeScript.
import { cosineSimilarities } from '../similarity.js';
import type { PruneContext, Pruner, PrunePoint } from '../pruner.js';
import { check } from '../../validate.js';
import { describe } from '../../tensor.js';
import { checkOptions, checkPoint, contextShape } from '../common.js';

export interface CDPrunerOptions {
  /** 'pre-llm' (default, the projected visual tokens and the text embeddings, as the paper) or { layer: K }. */
  point?: PrunePoint;
  /** The relevance weight theta in [0, 1] (default 0.5, the paper's): 0 ignores the instruction (a plain DPP). */
  theta?: number;
}

/**
 * The greedy MAP order of k of N tokens under the kernel L = diag(r) S diag(r)
 * (S row-major [N, N], symmetric; r > 0 or >= 0 per token).
 */
export function cdppGreedy(similarity: Float32Array, r: Float64Array, N: number, k: number): Int32Array {
  const order = new Int32Array(k);
  const taken = new Uint8Array(N);
  const d2 = new Float64Array(N);
  let maxDiag = 0;
  for (let i = 0; i < N; i++) {
    d2[i] = r[i]! * r[i]! * similarity[i * N + i]!;
    if (d2[i]! > maxDiag) maxDiag = d2[i]!;
  }
  // Above float32 round-off in S (~1e-7 relative), so that noise is never picked as diversity.
  const floor = 1e-5 * maxDiag;
  // c[n * N + j]: the n-th Cholesky coordinate of token j against the picks so far.
  const c = new Float64Array(k * N);
  let n = 0;
  for (; n < k; n++) {
    let best = -1;
    for (let j = 0; j < N; j++) if (!taken[j] && (best < 0 || d2[j]! > d2[best]!)) best = j;
    if (!(d2[best]! > floor)) break;
    order[n] = best;
    taken[best] = 1;
    const dj = Math.sqrt(d2[best]!);
    const row = best * N, out = n * N;
    for (let j = 0; j < N; j++) {
      if (taken[j]) continue;
      let dot = 0;
      for (let m = 0; m < n; m++) dot += c[m * N + best]! * c[m * N + j]!;
      const e = (r[best]! * similarity[row + j]! * r[j]! - dot) / dj;
      c[out + j] = e;
      d2[j] = d2[j]! - e * e;
    }
    c[out + best] = dj;
  }
  // Rank spent: the rest by descending relevance weight, lower index first.
  for (; n < k; n++) {
    let best = -1;
    for (let j = 0; j < N; j++) if (!taken[j] && (best < 0 || r[j]! > r[best]!)) best = j;
    order[n] = best;
    taken[best] = 1;
  }
  return order;
}

/**
 * r_i of one row: exp(alpha q_i) of q, the min-max normalised mean over the
 * T text tokens (text [T, D]) of the negated cosine (theta = 1: q itself).
 */
export function relevanceWeights(states: Float32Array, text: Float32Array, T: number, N: number, D: number, theta: number): Float64Array {
  const tn = Float64Array.from({ length: T }, (_, j) => {
    let s = 0;
    for (let d = 0; d < D; d++) s += text[j * D + d]! * text[j * D + d]!;
    return Math.sqrt(s);
  });
  const q = new Float64Array(N);
  let lo = Infinity, hi = -Infinity;
  for (let i = 0; i < N; i++) {
    let hn = 0;
    for (let d = 0; d < D; d++) hn += states[i * D + d]! * states[i * D + d]!;
    hn = Math.sqrt(hn);
    let sum = 0;
    for (let j = 0; j < T; j++) {
      let dot = 0;
      for (let d = 0; d < D; d++) dot += states[i * D + d]! * text[j * D + d]!;
      const norm = hn * tn[j]!;
      sum += norm > 0 ? -dot / norm : 0;
    }
    q[i] = T > 0 ? sum / T : 0;
    if (q[i]! < lo) lo = q[i]!;
    if (q[i]! > hi) hi = q[i]!;
  }
  const alpha = theta / (2 * (1 - theta));
  for (let i = 0; i < N; i++) {
    const normalised = (q[i]! - lo) / (hi - lo + 1e-6);
    q[i] = theta === 1 ? normalised : Math.exp(alpha * normalised);
  }
  return q;
}

export class CDPrunerPruner implements Pruner {
  readonly name = 'cdpruner';
  readonly point: PrunePoint;
  readonly needs = { text: true };
  readonly theta: number;

  constructor(options?: CDPrunerOptions) {
    const o = checkOptions(options, 'cdpruner');
    this.point = checkPoint(o.point ?? 'pre-llm', 'options.point');
    const theta = o.theta ?? 0.5;
    if (typeof theta !== 'number' || !(theta >= 0 && theta <= 1)) check.fail('ERR_GRIP_RANGE', 'a number in [0, 1]', 'options.theta', describe(theta));
    this.theta = theta;
  }

  async select(ctx: PruneContext): Promise<Int32Array[]> {
    const { B, N, D } = contextShape(ctx, this.name);
    check.tensor(ctx.query, 'ctx.query', '[B,D]', ['f32'], [B, D]);
    const similarities = await cosineSimilarities(ctx.visual, ctx.backend, ctx.signal);
    const visual = ctx.visual.device === 'cuda' ? ctx.visual.toHost() : ctx.visual;
    const query = ctx.query.device === 'cuda' ? ctx.query.toHost() : ctx.query;
    const states = visual.host as Float32Array;
    // The text tokens per row: ctx.text when the runtime handed them, else the pooled query as one token.
    const tokens = ctx.text ? (ctx.text.states.device === 'cuda' ? ctx.text.states.toHost() : ctx.text.states) : query;
    if (ctx.text) {
      check.tensor(ctx.text.states, 'ctx.text.states', '[B,T,D]', ['f32'], [B, ctx.text.states.shape[1]!, D]);
      const maxT = ctx.text.states.shape[1]!;
      if (!(ctx.text.count instanceof Int32Array) || ctx.text.count.length !== B) check.fail('ERR_GRIP_SHAPE', `an Int32Array of ${B} counts`, 'ctx.text.count', describe(ctx.text.count));
      ctx.text.count.forEach((n, b) => check.integer(n, `ctx.text.count[${b}]`, 0, maxT));
    }
    const T = ctx.text ? tokens.shape[1]! : 1, text = tokens.host as Float32Array;
    const sets = similarities.map((similarity, b) => {
      // cos(h, h) is exactly 1 (0 for a zero state): the matmul's round-off must not break the first pick's ties.
      for (let i = 0; i < N; i++) similarity[i * N + i] = similarity[i * N + i]! > 0 ? 1 : 0;
      const count = ctx.text ? ctx.text.count[b]! : 1;
      const r = relevanceWeights(states.subarray(b * N * D, (b + 1) * N * D), text.subarray(b * T * D, (b * T + count) * D), count, N, D, this.theta);
      return cdppGreedy(similarity, r, N, ctx.numKeep[b]!).sort();
    });
    if (visual !== ctx.visual) visual.dispose();
    if (query !== ctx.query) query.dispose();
    if (ctx.text && tokens !== ctx.text.states) tokens.dispose();
    return sets;
  }
}
