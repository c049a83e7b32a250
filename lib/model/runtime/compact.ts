// compact.ts — KV-cache compaction after an in-LLM prune: the caches of the
// layers below the prune point keep only the rows that survived it.
import { deviceOf, int32Tensor } from '../../moves.js';
import type { KVCache } from '../llama.js';
import type { Runtime } from './context.js';

/** Compacts the caches of layers [0, layers) in place to the given rows per batch row (ascending cache indices). */
export async function compactCaches(rt: Runtime, cache: KVCache, rows: readonly Int32Array[], layers: number, signal: AbortSignal | undefined): Promise<void> {
  const B = rows.length, S = Math.max(...rows.map((l) => l.length));
  const flat = new Int32Array(B * S).fill(-1);
  rows.forEach((l, b) => flat.set(l, b * S));
  const keep = int32Tensor(flat, [B, S], deviceOf(rt.backend));
  const o = { backend: rt.backend, signal };
  for (let l = 0; l < layers; l++) {
    cache.lengths[l] = await rt.k.compactKVInPlace(cache.keys[l]!, keep, o);
    await rt.k.compactKVInPlace(cache.values[l]!, keep, o);
  }
}
