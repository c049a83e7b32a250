// llama.ts — the Llama decoder of LLaVA and its KV cache. One call runs a
// range of layers over a (ragged) batch of new tokens: each row has its own
// number of valid tokens and its own cache length per layer, so rows pruned
// to different sizes, and layers whose caches were compacted differently,
// share one batch. Qwen2 is the same decoder with q/k/v biases (the Linear's
// bias, null for Llama) and, in Qwen2-VL, M-RoPE (`MRope` below).
import { Tensor, type Device } from '../tensor.js';
import type { TextConfig } from './config.js';
import { gatherRagged, int32Tensor, view, writeRows, zerosOn } from '../moves.js';
import type { TextWeights } from './weights.js';
import type { RunOptions } from './vision.js';
import { DecoderPlan } from './fused_decoder.js';
import { releaseMemorySoon } from '../backend.js';

/** K and V of every layer, [B, Hkv, capacity, Dh] f32, RoPE already applied to K. */
export class KVCache {
  readonly keys: Tensor[] = [];
  readonly values: Tensor[] = [];
  /** Valid cache entries per layer and row. */
  readonly lengths: Int32Array[] = [];
  /** M-RoPE: the 3D ids of this batch's rows (set by the stage that builds the batch; runDecoder reads it). */
  mrope: MRope | undefined = undefined;
  /** The fused decoder's native plan over this cache (made at its first fused call, freed by dispose). */
  plan: DecoderPlan | undefined = undefined;

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
    this.plan?.free();
    this.plan = undefined;
    for (const t of [...this.keys, ...this.values]) t.dispose();
    // The end of a request: what it freed goes back to the system (rate-limited).
    releaseMemorySoon();
  }
}

export interface LayerRange {
  from: number;
  /** Exclusive. */
  to: number;
}

/**
 * M-RoPE (Qwen2-VL): the decoder's positions stay the tokens' original
 * sequence indices, and each index maps to 3D ids (temporal, height, width):
 * row b's prompt indices through `ids[b]`, later ones (new tokens) to
 * index + delta[b] on every axis. Pair j of each head's rotary pairs turns by
 * the id of the axis whose `section` holds j (transformers'
 * apply_multimodal_rotary_pos_emb).
 */
export interface MRope {
  /** Rotary pairs per axis, [temporal, height, width]; they sum to headDim / 2. */
  section: readonly [number, number, number];
  /** Per row: [3, P] row-major ids of its P prompt indices. */
  ids: readonly Int32Array[];
  /** Per row: the first id after the prompt minus P (get_rope_index's rope delta). */
  delta: ArrayLike<number>;
}

export interface AttentionProbeRequest {
  /** The layer whose attention probabilities are wanted. */
  layer: number;
  /** Query rows (indices into the T new tokens), shared by the batch. */
  rows: number[];
}

/** Which rows leave a layer range's last layer with its output: every row, or each batch row's last new token. */
export type DecoderOutputs = 'all' | 'last';

/**
 * Runs decoder layers [from, to) in place on x [B, T, D]: new tokens of row b
 * are x[b, 0..tokens[b]), at positions[b, i] (RoPE), appended to the cache of
 * every layer after its current length. Returns the requested attention
 * probabilities [B, Hq, rows, capacity] of one layer.
 *
 * On the CPU (and the emulator) the layers run as one native call per range
 * (fused_decoder.ts), bit for bit the ops below; the ops run one by one where
 * the fused call has no twin: CUDA, an attention probe, M-RoPE rows whose
 * three ids differ (an image's prompt rows), or `decoder: 'ops'`.
 *
 * `outputs: 'last'`: only each row's last new token, x[b, tokens[b] - 1],
 * leaves the range's last layer with that layer's output (the other rows of
 * x keep its input; every layer's K and V are written for all rows). That
 * layer then computes q, attention, o and the MLP for one row per batch row:
 * the end of a prefill whose next step reads only the last rows (llama.cpp
 * skips the same work). The selected rows match `outputs: 'all'` to rounding
 * (their products take the GEMV instead of the GEMM).
 */
export async function runDecoder(w: TextWeights, config: TextConfig, x: Tensor, positions: Tensor, tokens: Int32Array, cache: KVCache, range: LayerRange, options: RunOptions & { probe?: AttentionProbeRequest | undefined; mrope?: MRope | undefined; outputs?: DecoderOutputs | undefined }): Promise<Tensor | undefined> {
  const [B, T, D] = x.shape as [number, number, number];
  // The last layer's rows selected: only where it changes anything and no probe or M-RoPE turn needs every row.
  const lastOnly = options.outputs === 'last' && T > 1 && range.to > range.from && tokens.every((n) => n >= 1) &&
    options.probe?.layer !== range.to - 1 && !(options.mrope ?? cache.mrope);
  if (lastOnly) {
    const probs = range.to - 1 > range.from ? await runDecoder(w, config, x, positions, tokens, cache, { from: range.from, to: range.to - 1 }, { ...options, outputs: 'all' }) : undefined;
    await lastLayerLastRows(w, config, x, positions, tokens, cache, range.to - 1, options);
    return probs;
  }
  const Hq = config.numHeads, Hkv = config.numKvHeads, Dh = config.headDim;
  const { k: ops } = options;
  const o = { backend: options.backend, signal: options.signal };
  const x2d = view(x, [B * T, D]);
  let probs: Tensor | undefined;
  const mrope = options.mrope ?? cache.mrope;
  const rotation = mrope ? mropeRotation(mrope, positions, [B, T, Hq, Hkv, Dh], config.ropeTheta, options) : null;
  const ropePositions = rotation === null ? positions : 'plain' in rotation ? rotation.plain : null;
  const fused = options.decoder !== 'ops' && options.probe === undefined && ropePositions !== null &&
    (options.backend === 'cpu' || options.backend === 'emu') && x.device === 'cpu';
  if (fused) {
    if (!cache.plan?.matches(w, cache, options.backend)) {
      cache.plan?.free();
      cache.plan = new DecoderPlan(w, cache, options.backend, config);
    }
    await cache.plan.run(x, ropePositions, tokens, cache, range.from, range.to, ops, options.signal);
    return undefined;
  }
  const rotate = rotation === null ? null : 'plain' in rotation ? null : rotation.rotate;
  const { buffer, dispose } = scratchBuffers(x.device);
  const BT = B * T;
  try {
    for (let l = range.from; l < range.to; l++) {
      await ops.yield();
      const L = w.layers[l]!;
      const h = await ops.rmsNorm(x2d, L.inputNorm, config.rmsNormEps, { ...o, out: buffer('norm', [BT, D]) });
      const q = view(await ops.linear(h, L.q.weight, L.q.bias, { ...o, out: buffer('q', [BT, Hq * Dh]) }), [B, T, Hq, Dh]);
      const k = view(await ops.linear(h, L.k.weight, L.k.bias, { ...o, out: buffer('k', [BT, Hkv * Dh]) }), [B, T, Hkv, Dh]);
      const v = view(await ops.linear(h, L.v.weight, L.v.bias, { ...o, out: buffer('v', [BT, Hkv * Dh]) }), [B, T, Hkv, Dh]);
      if (rotate) {
        await rotate(q, Hq);
        await rotate(k, Hkv);
      } else {
        await ops.rope(q, ropePositions!, config.ropeTheta, { ...o, out: q });
        await ops.rope(k, ropePositions!, config.ropeTheta, { ...o, out: k });
      }
      const start = cache.lengths[l]!;
      await ops.cacheWrite(cache.keys[l]!, k, start, tokens, o);
      await ops.cacheWrite(cache.values[l]!, v, start, tokens, o);
      const kvLen = start.map((s, b) => s + tokens[b]!);
      const probe = options.probe?.layer === l ? options.probe : undefined;
      const attn = await ops.attention(q, cache.keys[l]!, cache.values[l]!, { ...o, qLen: tokens, kvLen, out: buffer('attention', [B, T, Hq, Dh]), ...(probe ? { probRows: probe.rows } : {}) });
      cache.lengths[l] = kvLen;
      if (probe) probs = attn.probs;
      await layerOutput(L, config, x2d, view(attn.out, [BT, Hq * Dh]), options, buffer);
    }
  } finally {
    dispose();
  }
  return probs;
}

/**
 * Buffers made once per runDecoder call, by name: a fresh output per op and
 * layer costs a first touch of its pages (a page fault per 4 KiB; 10 ms per
 * 48 MiB here), more than some of the ops themselves.
 */
function scratchBuffers(device: Device): { buffer: (name: string, shape: number[]) => Tensor; dispose: () => void } {
  const scratch = new Map<string, Tensor>();
  return {
    buffer: (name, shape) => {
      let t = scratch.get(name);
      if (!t) scratch.set(name, (t = zerosOn(shape, device)));
      return t;
    },
    dispose: () => { for (const t of scratch.values()) t.dispose(); },
  };
}

/** The rest of a layer, in place on its rows x [R, D]: x += o-proj(attention), then x += MLP(post-norm(x)). */
async function layerOutput(L: TextWeights['layers'][number], config: TextConfig, x: Tensor, attention: Tensor, options: RunOptions, buffer: (name: string, shape: number[]) => Tensor): Promise<void> {
  const { k: ops } = options;
  const o = { backend: options.backend, signal: options.signal };
  const [R, D] = x.shape as [number, number];
  const F = config.intermediateSize;
  await ops.add(x, await ops.linear(attention, L.o.weight, null, { ...o, out: buffer('residual', [R, D]) }), { ...o, out: x });
  const h = await ops.rmsNorm(x, L.postNorm, config.rmsNormEps, { ...o, out: buffer('norm', [R, D]) });
  const gate = await ops.linear(h, L.gate.weight, null, { ...o, out: buffer('gate', [R, F]) });
  await ops.siluMul(gate, await ops.linear(h, L.up.weight, null, { ...o, out: buffer('up', [R, F]) }), { ...o, out: gate });
  await ops.add(x, await ops.linear(gate, L.down.weight, null, { ...o, out: buffer('residual', [R, D]) }), { ...o, out: x });
}

/** runDecoder's `outputs: 'last'` layer: K and V of every new row, the rest for row tokens[b] - 1 of each batch row. */
async function lastLayerLastRows(w: TextWeights, config: TextConfig, x: Tensor, positions: Tensor, tokens: Int32Array, cache: KVCache, l: number, options: RunOptions): Promise<void> {
  const [B, T, D] = x.shape as [number, number, number];
  const Hq = config.numHeads, Hkv = config.numKvHeads, Dh = config.headDim;
  const { k: ops } = options;
  const o = { backend: options.backend, signal: options.signal };
  const L = w.layers[l]!, BT = B * T;
  const { buffer, dispose } = scratchBuffers(x.device);
  const made: Tensor[] = [];  // the gathers' outputs, freed with the buffers (device memory on CUDA)
  const gather = async (t: Tensor, rows: number[][]) => {
    const g = await gatherRagged(ops, t, rows, options.backend);
    made.push(g);
    return g;
  };
  await ops.yield();
  try {
    const h = await ops.rmsNorm(view(x, [BT, D]), L.inputNorm, config.rmsNormEps, { ...o, out: buffer('norm', [BT, D]) });
    const k = view(await ops.linear(h, L.k.weight, L.k.bias, { ...o, out: buffer('k', [BT, Hkv * Dh]) }), [B, T, Hkv, Dh]);
    const v = view(await ops.linear(h, L.v.weight, L.v.bias, { ...o, out: buffer('v', [BT, Hkv * Dh]) }), [B, T, Hkv, Dh]);
    await ops.rope(k, positions, config.ropeTheta, { ...o, out: k });
    const start = cache.lengths[l]!;
    await ops.cacheWrite(cache.keys[l]!, k, start, tokens, o);
    await ops.cacheWrite(cache.values[l]!, v, start, tokens, o);
    const kvLen = start.map((s, b) => s + tokens[b]!);
    cache.lengths[l] = kvLen;
    const last = Array.from(tokens, (n) => [n - 1]);
    const hLast = view(await gather(view(h, [B, T, D]), last), [B, D]);
    const q = view(await ops.linear(hLast, L.q.weight, L.q.bias, { ...o, out: buffer('q', [B, Hq * Dh]) }), [B, 1, Hq, Dh]);
    const allPositions = positions.toHost().host as Int32Array;
    const lastPositions = int32Tensor(Int32Array.from(tokens, (n, b) => allPositions[b * T + n - 1]!), [B, 1], positions.device);
    made.push(lastPositions);
    await ops.rope(q, lastPositions, config.ropeTheta, { ...o, out: q });
    const attn = await ops.attention(q, cache.keys[l]!, cache.values[l]!, { ...o, qLen: new Int32Array(B).fill(1), kvLen, out: buffer('attention', [B, 1, Hq, Dh]) });
    const xLast = view(await gather(x, last), [B, D]);
    // Its buffers are [B, ...], not the [BT, ...] ones of the same names above.
    await layerOutput(L, config, xLast, view(attn.out, [B, Hq * Dh]), options, (name, shape) => buffer(`last ${name}`, shape));
    await writeRows(ops, x, view(xLast, [B, 1, D]), Int32Array.from(tokens, (n) => n - 1), new Int32Array(B).fill(1), options.backend);
  } finally {
    dispose();
    for (const t of made) t.dispose();
  }
}

/**
 * M-RoPE on the existing ops: the rows are stacked three times (one copy per
 * axis), each copy turned by plain RoPE at that axis' ids, and every element
 * then taken from the copy of its pair's axis (a gather of 1-element rows).
 * Where the three ids agree on every row (text, new tokens) it is plain RoPE
 * at those ids (`plain`).
 */
function mropeRotation(m: MRope, positions: Tensor, dims: [number, number, number, number, number], theta: number, options: RunOptions): { plain: Tensor } | { rotate: (t: Tensor, heads: number) => Promise<void> } {
  const [B, T, Hq, Hkv, Dh] = dims;
  const { k: ops } = options;
  const o = { backend: options.backend, signal: options.signal };
  const device = positions.device;
  const index = positions.toHost().host as Int32Array;
  const ids = new Int32Array(3 * B * T);
  let flat = true;
  for (let b = 0; b < B; b++) {
    const table = m.ids[b]!, P = table.length / 3;
    for (let t = 0; t < T; t++) {
      const i = index[b * T + t]!;
      for (let a = 0; a < 3; a++) ids[(a * B + b) * T + t] = i < P ? table[a * P + i]! : i + Number(m.delta[b]);
      flat &&= ids[b * T + t] === ids[(B + b) * T + t] && ids[b * T + t] === ids[(2 * B + b) * T + t];
    }
  }
  const onDevice = (values: Int32Array, shape: number[]) => {
    const t = new Tensor('i32', shape, values, 'cpu');
    return device === 'cuda' ? t.toDevice() : t;
  };
  if (flat) return { plain: onDevice(ids.slice(0, B * T), [B, T]) };
  const BT = B * T, half = Dh / 2;
  const axisOf = new Int32Array(Dh);
  for (let j = 0, a = 0, end = m.section[0]; j < half; j++) {
    while (j >= end) end += m.section[++a]!;
    axisOf[j] = axisOf[j + half] = a;
  }
  const stack = onDevice(Int32Array.from({ length: 3 * BT }, (_, r) => r % BT), [1, 3 * BT]);
  const stackedIds = onDevice(ids, [1, 3 * BT]);
  const pick = new Map<number, Tensor>();
  for (const heads of new Set([Hq, Hkv])) {
    const n = BT * heads * Dh, idx = new Int32Array(n);
    for (let e = 0; e < n; e++) idx[e] = axisOf[e % Dh]! * n + e;
    pick.set(heads, onDevice(idx, [1, n]));
  }
  return { rotate: async (t, heads) => {
    const n = BT * heads * Dh;
    const copies = view(await ops.gatherRows(view(t, [1, BT, heads * Dh]), stack, o), [1, 3 * BT, heads, Dh]);
    await ops.rope(copies, stackedIds, theta, { ...o, out: copies });
    await ops.gatherRows(view(copies, [1, 3 * n, 1]), pick.get(heads)!, { ...o, out: view(t, [1, n, 1]) });
  } };
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
  for (const t of [w.embed, w.lmHead, w.norm, ...w.layers.flatMap((l) => [l.inputNorm, l.postNorm, ...[l.q, l.k, l.v, l.o, l.gate, l.up, l.down].flatMap((x) => (x.bias ? [x.weight, x.bias] : [x.weight]))])]) t.dispose();
}
