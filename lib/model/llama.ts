// llama.ts — the Llama decoder of LLaVA and its KV cache. One call runs a
// range of layers over a (ragged) batch of new tokens: each row has its own
// number of valid tokens and its own cache length per layer, so rows pruned
// to different sizes, and layers whose caches were compacted differently,
// share one batch.
import { Tensor, type Device } from '../tensor.js';
import type { TextConfig } from './config.js';
import { view, zerosOn } from '../moves.js';
import type { TextWeights } from './weights.js';
import type { RunOptions } from './vision.js';

/** K and V of every layer, [B, Hkv, capacity, Dh] f32, RoPE already applied to K. */
export class KVCache {
  readonly keys: Tensor[] = [];
  readonly values: Tensor[] = [];
  /** Valid cache entries per layer and row. */
  readonly lengths: Int32Array[] = [];

  /** Layers below `firstAllocated` get their tensors from the caller (copies of a shared prefix). */
  constructor(readonly rows: number, readonly capacity: number, config: TextConfig, device: Device, firstAllocated = 0) {
    const empty = new Tensor('f32', [0], new Float32Array(0), 'cpu');
    for (let l = 0; l < config.numLayers; l++) {
      const shape = [rows, config.numKvHeads, capacity, config.headDim];
      this.keys.push(l < firstAllocated ? empty : zerosOn(shape, device));
      this.values.push(l < firstAllocated ? empty : zerosOn(shape, device));
      this.lengths.push(new Int32Array(rows));
    }
  }

  dispose(): void {
    for (const t of [...this.keys, ...this.values]) t.dispose();
  }
}

export interface LayerRange {
  from: number;
  /** Exclusive. */
  to: number;
}

export interface AttentionProbeRequest {
  /** The layer whose attention probabilities are wanted. */
  layer: number;
  /** Query rows (indices into the T new tokens), shared by the batch. */
  rows: number[];
}

/**
 * Runs decoder layers [from, to) in place on x [B, T, D]: new tokens of row b
 * are x[b, 0..tokens[b]), at positions[b, i] (RoPE), appended to the cache of
 * every layer after its current length. Returns the requested attention
 * probabilities [B, Hq, rows, capacity] of one layer.
 */
export async function runDecoder(w: TextWeights, config: TextConfig, x: Tensor, positions: Tensor, tokens: Int32Array, cache: KVCache, range: LayerRange, options: RunOptions & { probe?: AttentionProbeRequest | undefined }): Promise<Tensor | undefined> {
  const [B, T, D] = x.shape as [number, number, number];
  const Hq = config.numHeads, Hkv = config.numKvHeads, Dh = config.headDim;
  const { k: ops } = options;
  const o = { backend: options.backend, signal: options.signal };
  const x2d = view(x, [B * T, D]);
  let probs: Tensor | undefined;
  for (let l = range.from; l < range.to; l++) {
    await ops.yield();
    const L = w.layers[l]!;
    const h = await ops.rmsNorm(x2d, L.inputNorm, config.rmsNormEps, o);
    const q = view(await ops.linear(h, L.q.weight, null, o), [B, T, Hq, Dh]);
    const k = view(await ops.linear(h, L.k.weight, null, o), [B, T, Hkv, Dh]);
    const v = view(await ops.linear(h, L.v.weight, null, o), [B, T, Hkv, Dh]);
    await ops.rope(q, positions, config.ropeTheta, { ...o, out: q });
    await ops.rope(k, positions, config.ropeTheta, { ...o, out: k });
    const start = cache.lengths[l]!;
    await ops.cacheWrite(cache.keys[l]!, k, start, tokens, o);
    await ops.cacheWrite(cache.values[l]!, v, start, tokens, o);
    const kvLen = start.map((s, b) => s + tokens[b]!);
    const probe = options.probe?.layer === l ? options.probe : undefined;
    const attn = await ops.attention(q, cache.keys[l]!, cache.values[l]!, { ...o, qLen: tokens, kvLen, ...(probe ? { probRows: probe.rows } : {}) });
    cache.lengths[l] = kvLen;
    if (probe) probs = attn.probs;
    const attended = await ops.linear(view(attn.out, [B * T, Hq * Dh]), L.o.weight, null, o);
    await ops.add(x2d, attended, { ...o, out: x2d });
    const h2 = await ops.rmsNorm(x2d, L.postNorm, config.rmsNormEps, o);
    const gate = await ops.linear(h2, L.gate.weight, null, o);
    const up = await ops.linear(h2, L.up.weight, null, o);
    await ops.siluMul(gate, up, { ...o, out: gate });
    const down = await ops.linear(gate, L.down.weight, null, o);
    await ops.add(x2d, down, { ...o, out: x2d });
  }
  return probs;
}

/** logits [R, V] of hidden rows h [R, D]: final RMSNorm, then the LM head. */
export async function lmHead(w: TextWeights, config: TextConfig, h: Tensor, options: RunOptions): Promise<Tensor> {
  const { k: ops } = options;
  const o = { backend: options.backend, signal: options.signal };
  const normed = await ops.rmsNorm(h, w.norm, config.rmsNormEps, o);
  return ops.linear(normed, w.lmHead, null, o);
}

/** Frees the decoder's device memory (nothing to do on the CPU). */
export function disposeText(w: TextWeights): void {
  for (const t of [w.embed, w.lmHead, w.norm, ...w.layers.flatMap((l) => [l.inputNorm, l.postNorm, ...[l.q, l.k, l.v, l.o, l.gate, l.up, l.down].map((x) => x.weight)])]) t.dispose();
}
