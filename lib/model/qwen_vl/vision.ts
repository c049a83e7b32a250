// vision.ts — the Qwen2-VL / Qwen2.5-VL vision tower and 2x2 patch merger on the op layer:
// patch rows [N, 3*T*P*P] (processor.ts's order) -> visual tokens [N / M^2, D] in merged-grid
// row-major order. Qwen2-VL: LayerNorm + fc MLP blocks with full attention; Qwen2.5-VL:
// RMSNorm + gated MLP blocks, attention inside windows of window_size px except at
// fullatt_block_indexes. Written from transformers' modeling_qwen2_vl.py / _qwen2_5_vl.py.
//
// Two ways this differs from transformers' code but not from its arithmetic:
// - The 2D rotary gives the first quarter of each head's rotary pairs the patch row and the
//   second the column (VisionRotaryEmbedding(head_dim / 2), cat(freqs, freqs)). The q and k
//   rows of each head are permuted at load into two sub-heads of head_dim / 2 (row pairs,
//   then column pairs), so one rope op over [N*H*2, head_dim/2] with theta 10000 and the
//   row or the column as position rotates them; q.k is unchanged by the shared permutation.
// - transformers reorders the tokens window by window, attends over runs of cu_seqlens and
//   restores the order after the merger; here each window is one row of a ragged batch
//   (gathered, attended, gathered back), the tokens stay in order, and the merger sees the
//   same 2x2 groups.
import { GripError } from '../../errors.js';
import { Tensor, tensor } from '../../tensor.js';
import type { Checkpoint } from '../safetensors.js';
import type { RunOptions } from '../vision.js';
import { deviceOf, int32Tensor, view, zerosOn } from '../../moves.js';
import type { Linear } from '../weights.js';
import type { QwenVLConfig, QwenVisionConfig } from './config.js';

export interface QwenNorm {
  weight: Tensor;
  /** null for RMSNorm (Qwen2.5-VL). */
  bias: Tensor | null;
}

export interface QwenVisionBlock {
  norm1: QwenNorm;
  /** q and k with their rows permuted per head into (row pairs | column pairs), see the file comment. */
  q: Linear; k: Linear; v: Linear; proj: Linear;
  norm2: QwenNorm;
  /** Qwen2-VL: fc1, fc2. Qwen2.5-VL: gate, up, down (all with biases). */
  mlp: { fc1: Linear; fc2: Linear } | { gate: Linear; up: Linear; down: Linear };
}

export interface QwenVisionWeights {
  /** The Conv3d patch embedding as a Linear over flattened (channel, frame, y, x) patches, no bias. */
  patch: Tensor;
  blocks: QwenVisionBlock[];
  merger: { norm: QwenNorm; fc1: Linear; fc2: Linear };
}

const VISION_EPS = 1e-6; // every norm of the tower and the merger (transformers hard-codes it)
const VISION_THETA = 10000;

/** The permutation of one head's dims: row pairs (dims [0, d/4) and [d/2, 3d/4)), then column pairs. */
export function rotaryHeadOrder(headDim: number): Int32Array {
  const q = headDim / 4, order: number[] = [];
  for (const offset of [0, q]) {
    for (let i = 0; i < q; i++) order.push(offset + i);
    for (let i = 0; i < q; i++) order.push(2 * q + offset + i);
  }
  return Int32Array.from(order);
}

/** Reads the tower's tensors (HF names `visual.*`), each checked by name and shape. */
export async function loadQwenVision(checkpoint: Checkpoint, config: QwenVLConfig, where: string, options: { device: 'cpu' | 'cuda'; signal?: AbortSignal | undefined }): Promise<QwenVisionWeights> {
  const vc = config.vision;
  const E = vc.hiddenSize, H = vc.numHeads, hd = vc.headDim;
  const read = async (name: string, shape: readonly number[]): Promise<Tensor> => {
    if (!checkpoint.has(name)) throw new GripError('ERR_GRIP_FORMAT', `expected tensor "${name}" in ${where} but received none`);
    const info = checkpoint.info(name);
    if (info.shape.length !== shape.length || info.shape.some((d, i) => d !== shape[i])) {
      throw new GripError('ERR_GRIP_FORMAT', `expected shape [${shape.join(', ')}] for tensor "${name}" in ${where} but received [${info.shape.join(', ')}]`);
    }
    options.signal?.throwIfAborted();
    return checkpoint.read(name, { signal: options.signal });
  };
  const place = (t: Tensor) => (options.device === 'cuda' ? t.toDevice() : t);
  const f32 = (t: Tensor) => new Tensor('f32', t.shape, t.toFloat32(), 'cpu');
  // matrices keep their stored dtype (the GEMM widens), vectors become f32
  const linear = async (prefix: string, outDim: number, inDim: number): Promise<Linear> => ({
    weight: place(await read(`${prefix}.weight`, [outDim, inDim])),
    bias: place(f32(await read(`${prefix}.bias`, [outDim]))),
  });
  const norm = async (prefix: string): Promise<QwenNorm> => ({
    weight: place(f32(await read(`${prefix}.weight`, [E]))),
    bias: vc.norm === 'layernorm' ? place(f32(await read(`${prefix}.bias`, [E]))) : null,
  });
  // rows [from, from + E) of a [3E, ...] tensor, each head's rows in `order` when given
  const slice = (t: Tensor, from: number, inner: number, order: Int32Array | null): Tensor => {
    const src = t.toFloat32(), out = new Float32Array(E * inner);
    for (let h = 0; h < H; h++) {
      for (let d = 0; d < hd; d++) {
        const row = from + h * hd + (order ? order[d]! : d);
        out.set(src.subarray(row * inner, (row + 1) * inner), (h * hd + d) * inner);
      }
    }
    return place(t.dtype === 'f32' || inner === 1 ? tensor(out, inner === 1 ? [E] : [E, inner]) : tensor(out, [E, inner], t.dtype));
  };
  const order = rotaryHeadOrder(hd);
  const patchRow = 3 * vc.temporalPatchSize * vc.patchSize * vc.patchSize;
  const patch = await read('visual.patch_embed.proj.weight', [E, 3, vc.temporalPatchSize, vc.patchSize, vc.patchSize]);
  const blocks: QwenVisionBlock[] = [];
  for (let i = 0; i < vc.depth; i++) {
    const p = `visual.blocks.${i}`;
    const qkvW = await read(`${p}.attn.qkv.weight`, [3 * E, E]);
    const qkvB = await read(`${p}.attn.qkv.bias`, [3 * E]);
    const mlp = vc.mlp === 'fc'
      ? { fc1: await linear(`${p}.mlp.fc1`, vc.intermediateSize, E), fc2: await linear(`${p}.mlp.fc2`, E, vc.intermediateSize) }
      : {
          gate: await linear(`${p}.mlp.gate_proj`, vc.intermediateSize, E),
          up: await linear(`${p}.mlp.up_proj`, vc.intermediateSize, E),
          down: await linear(`${p}.mlp.down_proj`, E, vc.intermediateSize),
        };
    blocks.push({
      norm1: await norm(`${p}.norm1`),
      q: { weight: slice(qkvW, 0, E, order), bias: slice(qkvB, 0, 1, order) },
      k: { weight: slice(qkvW, E, E, order), bias: slice(qkvB, E, 1, order) },
      v: { weight: slice(qkvW, 2 * E, E, null), bias: slice(qkvB, 2 * E, 1, null) },
      proj: await linear(`${p}.attn.proj`, E, E),
      norm2: await norm(`${p}.norm2`),
      mlp,
    });
  }
  const unit = vc.spatialMergeSize * vc.spatialMergeSize;
  const merger = {
    norm: await norm('visual.merger.ln_q'),
    fc1: await linear('visual.merger.mlp.0', unit * E, unit * E),
    fc2: await linear('visual.merger.mlp.2', vc.outHiddenSize, unit * E),
  };
  return { patch: place(new Tensor(patch.dtype, [E, patchRow], patch.data, 'cpu')), blocks, merger };
}

/** Frees the tower's device memory (nothing to do on the CPU). */
export function disposeQwenVision(w: QwenVisionWeights): void {
  const linears = (b: QwenVisionBlock) => [b.q, b.k, b.v, b.proj, ...Object.values(b.mlp) as Linear[]];
  const all = [w.patch, w.merger.norm.weight, w.merger.norm.bias, w.merger.fc1.weight, w.merger.fc1.bias, w.merger.fc2.weight, w.merger.fc2.bias,
    ...w.blocks.flatMap((b) => [b.norm1.weight, b.norm1.bias, b.norm2.weight, b.norm2.bias, ...linears(b).flatMap((l) => [l.weight, l.bias])])];
  for (const t of all) t?.dispose();
}

/** Attention groups of one image: each a list of patch indices (processor order). */
export function attentionGroups(grid: readonly [number, number, number], vc: QwenVisionConfig, windowed: boolean): number[][] {
  const [t, h, w] = grid, M = vc.spatialMergeSize, unit = M * M;
  const rows = h / M, cols = w / M, n = t * h * w;
  if (!windowed) return [Array.from({ length: n }, (_, i) => i)];
  // get_window_index: windows of vm x vm merged cells, row-major, per frame
  const vm = vc.windowSize! / M / vc.patchSize;
  const nh = Math.ceil(rows / vm), nw = Math.ceil(cols / vm);
  const groups: number[][] = [];
  for (let f = 0; f < t; f++) {
    for (let wr = 0; wr < nh; wr++) {
      for (let wc = 0; wc < nw; wc++) {
        const members: number[] = [];
        for (let r = wr * vm; r < Math.min((wr + 1) * vm, rows); r++) {
          for (let c = wc * vm; c < Math.min((wc + 1) * vm, cols); c++) {
            const cell = (f * rows + r) * cols + c;
            for (let u = 0; u < unit; u++) members.push(cell * unit + u);
          }
        }
        groups.push(members);
      }
    }
  }
  return groups;
}

/** [N * H * 2] positions of the rotary sub-heads: the patch's row, then its column, per head. */
export function rotaryPositions(grid: readonly [number, number, number], vc: QwenVisionConfig): Int32Array {
  const [t, h, w] = grid, M = vc.spatialMergeSize, H = vc.numHeads, cols = w / M;
  const n = t * h * w, out = new Int32Array(n * H * 2);
  for (let i = 0; i < n; i++) {
    const cell = Math.floor(i / (M * M)) % ((h / M) * cols), u = i % (M * M);
    const row = Math.floor(cell / cols) * M + Math.floor(u / M), col = (cell % cols) * M + (u % M);
    for (let head = 0; head < H; head++) {
      out[(i * H + head) * 2] = row;
      out[(i * H + head) * 2 + 1] = col;
    }
  }
  return out;
}

/** Patch rows [N, 3*T*P*P] f32 (host) of one image with grid [t, h, w] -> visual tokens [N / M^2, D]. */
export async function runQwenVision(w: QwenVisionWeights, config: QwenVLConfig, pixelValues: Float32Array, grid: readonly [number, number, number], options: RunOptions): Promise<Tensor> {
  const vc = config.vision;
  const { k: ops } = options;
  const o = { backend: options.backend, signal: options.signal };
  const device = deviceOf(options.backend);
  const E = vc.hiddenSize, H = vc.numHeads, hd = vc.headDim;
  const n = grid[0] * grid[1] * grid[2];
  const patchRow = 3 * vc.temporalPatchSize * vc.patchSize * vc.patchSize;
  if (pixelValues.length !== n * patchRow) {
    throw new GripError('ERR_GRIP_SHAPE', `expected [${n}, ${patchRow}] (grid ${grid.join('x')}) for pixelValues but received ${pixelValues.length} values`);
  }
  let rows = new Tensor('f32', [n, patchRow], pixelValues, 'cpu');
  if (device === 'cuda') rows = rows.toDevice();
  const x = await ops.linear(rows, w.patch, null, o);
  const positions = int32Tensor(rotaryPositions(grid, vc), [1, n * H * 2], device);

  // one ragged batch per attention pattern: full (one row) and, for Qwen2.5-VL, windows
  const plan = (groups: number[][]) => {
    const L = Math.max(...groups.map((g) => g.length)), G = groups.length;
    const gather = new Int32Array(G * L), scatter = new Int32Array(n), lengths = new Int32Array(G);
    groups.forEach((g, i) => {
      lengths[i] = g.length;
      g.forEach((patch, j) => { gather[i * L + j] = patch; scatter[patch] = i * L + j; });
    });
    return { G, L, lengths, gather: int32Tensor(gather, [1, G * L], device), scatter: int32Tensor(scatter, [1, n], device) };
  };
  const full = plan(attentionGroups(grid, vc, false));
  const windows = vc.windowSize !== undefined ? plan(attentionGroups(grid, vc, true)) : full;
  const fullBlocks = new Set(vc.fullattBlockIndexes ?? []);
  const norm = (t: Tensor, nw: QwenNorm) => (nw.bias ? ops.layerNorm(t, nw.weight, nw.bias, VISION_EPS, o) : ops.rmsNorm(t, nw.weight, VISION_EPS, o));

  for (let i = 0; i < w.blocks.length; i++) {
    await ops.yield();
    const b = w.blocks[i]!;
    const groups = vc.windowSize === undefined || fullBlocks.has(i) ? full : windows;
    const h = await norm(x, b.norm1);
    const q = await ops.linear(h, b.q.weight, b.q.bias, o);
    const k = await ops.linear(h, b.k.weight, b.k.bias, o);
    const v = await ops.linear(h, b.v.weight, b.v.bias, o);
    for (const t of [q, k]) {
      const sub = view(t, [1, n * H * 2, 1, hd / 2]);
      await ops.rope(sub, positions, VISION_THETA, { ...o, out: sub });
    }
    const { G, L, lengths } = groups;
    const batched = async (t: Tensor) => view(await ops.gatherRows(view(t, [1, n, E]), groups.gather, o), [G, L, H, hd]);
    const kCache = zerosOn([G, H, L, hd], device), vCache = zerosOn([G, H, L, hd], device);
    const none = new Int32Array(G);
    await ops.cacheWrite(kCache, await batched(k), none, lengths, o);
    await ops.cacheWrite(vCache, await batched(v), none, lengths, o);
    const attn = await ops.attention(await batched(q), kCache, vCache, { ...o, causal: false, qLen: lengths, kvLen: lengths });
    const back = view(await ops.gatherRows(view(attn.out, [1, G * L, E]), groups.scatter, o), [n, E]);
    const projected = await ops.linear(back, b.proj.weight, b.proj.bias, o);
    await ops.add(x, projected, { ...o, out: x });
    const h2 = await norm(x, b.norm2);
    let down: Tensor;
    if ('fc1' in b.mlp) {
      const up = await ops.linear(h2, b.mlp.fc1.weight, b.mlp.fc1.bias, o);
      if (vc.hiddenAct === 'silu') throw new GripError('ERR_GRIP_UNSUPPORTED', 'expected "quick_gelu" or "gelu" for vision_config.hidden_act of an fc MLP but received "silu"');
      await ops.gelu(up, vc.hiddenAct === 'quick_gelu' ? 'quick' : 'erf', { ...o, out: up });
      down = await ops.linear(up, b.mlp.fc2.weight, b.mlp.fc2.bias, o);
    } else {
      if (vc.hiddenAct !== 'silu') throw new GripError('ERR_GRIP_UNSUPPORTED', `expected "silu" for vision_config.hidden_act of a gated MLP but received "${vc.hiddenAct}"`);
      const gate = await ops.linear(h2, b.mlp.gate.weight, b.mlp.gate.bias, o);
      const up = await ops.linear(h2, b.mlp.up.weight, b.mlp.up.bias, o);
      await ops.siluMul(gate, up, { ...o, out: gate });
      down = await ops.linear(gate, b.mlp.down.weight, b.mlp.down.bias, o);
    }
    await ops.add(x, down, { ...o, out: x });
  }
  // the merger: norm, then each M x M group of consecutive patches as one row
  const unit = vc.spatialMergeSize * vc.spatialMergeSize;
  const normed = await norm(x, w.merger.norm);
  const hidden = await ops.linear(view(normed, [n / unit, unit * E]), w.merger.fc1.weight, w.merger.fc1.bias, o);
  await ops.gelu(hidden, 'erf', { ...o, out: hidden });
  return ops.linear(hidden, w.merger.fc2.weight, w.merger.fc2.bias, o);
}
