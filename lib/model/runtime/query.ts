// query.ts — text embeddings and the pooled text query a pruner is
// conditioned on (the question after the image: its mean, or its last token).
import { tensor, type Tensor } from '../../tensor.js';
import type { QueryPooling } from '../../prune/pruner.js';
import { deviceOf, gatherRagged, int32Tensor, zerosOn } from '../../moves.js';
import type { Runtime } from './context.js';
import type { Row } from './types.js';

/** Embeddings [B, maxLen, D] of ragged id lists (null when every list is empty). */
export async function embedIds(rt: Runtime, lists: readonly Int32Array[], signal: AbortSignal | undefined): Promise<Tensor | null> {
  const maxLen = Math.max(...lists.map((l) => l.length));
  if (maxLen === 0) return null;
  const ids = new Int32Array(lists.length * maxLen);
  lists.forEach((l, b) => ids.set(l, b * maxLen));
  return rt.k.embedding(rt.text.weights.embed, int32Tensor(ids, [lists.length, maxLen], deviceOf(rt.backend)), { backend: rt.backend, signal });
}

/** [B, D] the pre-LLM query: the embeddings of the text after the image, pooled (zeros when there is none). */
export async function textQuery(rt: Runtime, rows: readonly Row[], pooling: QueryPooling, signal: AbortSignal | undefined): Promise<Tensor> {
  const after = await embedIds(rt, rows.map((r) => r.after), signal);
  if (!after) return zerosOn([rows.length, rt.text.config.hiddenSize], deviceOf(rt.backend));
  return poolText(rt, after, new Int32Array(rows.length), rows.map((r) => r.after.length), pooling);
}

/** The text rows start[b] .. start[b] + count[b] - 1 of x [B, S, D], token by token: PruneContext.text. */
export async function textTokens(rt: Runtime, x: Tensor, start: ArrayLike<number>, count: ArrayLike<number>): Promise<{ states: Tensor; count: Int32Array }> {
  const lists = Array.from(count, (n, b) => Int32Array.from({ length: n }, (_, i) => start[b]! + i));
  const states = lists.some((l) => l.length > 0) ? await gatherRagged(rt.k, x, lists, rt.backend) : zerosOn([lists.length, 0, x.shape[2]!], x.device);
  return { states, count: Int32Array.from(count) };
}

/** [B, D] the text rows start[b] .. start[b] + count[b] - 1 of x pooled: their mean, or the last of them (zeros when count is 0). */
export function poolText(rt: Runtime, x: Tensor, start: ArrayLike<number>, count: ArrayLike<number>, pooling: QueryPooling): Promise<Tensor> {
  if (pooling === 'mean-text-after-image') return meanRows(rt, x, start, count);
  return meanRows(rt, x, Array.from(start, (s, b) => s + Math.max(0, count[b]! - 1)), Array.from(count, (n) => Math.min(n, 1)));
}

/** [B, D] mean of rows [start[b], start[b] + count[b]) of x [B, S, D] (zeros where count is 0). */
async function meanRows(rt: Runtime, x: Tensor, start: ArrayLike<number>, count: ArrayLike<number>): Promise<Tensor> {
  const B = x.shape[0]!, D = x.shape[2]!;
  const lists = Array.from({ length: B }, (_, b) => Int32Array.from({ length: count[b]! }, (_, i) => start[b]! + i));
  const rows = (await gatherRagged(rt.k, x, lists, rt.backend)).toHost().host as Float32Array;
  const maxLen = Math.max(0, ...lists.map((l) => l.length));
  const out = new Float32Array(B * D);
  for (let b = 0; b < B; b++) {
    const n = count[b]!;
    for (let i = 0; i < n; i++) {
      for (let d = 0; d < D; d++) out[b * D + d]! += rows[(b * maxLen + i) * D + d]! / n;
    }
  }
  const t = tensor(out, [B, D]);
  return rt.backend === 'cuda' ? t.toDevice() : t;
}
