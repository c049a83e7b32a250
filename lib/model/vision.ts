// vision.ts — the CLIP vision tower (pre-norm ViT) and LLaVA's projector.
// pixels [B,C,H,W] -> patch features [B,N,Dv] (hidden_states[feature layer],
// CLS dropped for the 'default' strategy) -> visual tokens [B,N,D].
import type { ResolvedBackend } from '../backend.js';
import { GripError } from '../errors.js';
import type { Kernels } from './kernels.js';
import { Tensor } from '../tensor.js';
import type { LlavaConfig } from './config.js';
import { deviceOf, view, zerosOn } from '../moves.js';
import type { ProjectorWeights, VisionWeights } from './weights.js';

export interface RunOptions {
  backend: ResolvedBackend;
  /** The ops, awaited off the event loop or on it (kernels.ts). */
  k: Kernels;
  signal?: AbortSignal | undefined;
  /** The decoder's layers as one native call ('fused', default) or one call per op (llama.ts runDecoder). */
  decoder?: 'fused' | 'ops' | undefined;
}

type GeluKind = 'erf' | 'tanh' | 'quick';

export function geluKind(act: string, what: string): GeluKind {
  if (act === 'gelu') return 'erf';
  if (act === 'quick_gelu') return 'quick';
  if (act === 'gelu_pytorch_tanh' || act === 'gelu_new') return 'tanh';
  throw new GripError('ERR_GRIP_UNSUPPORTED', `expected gelu, gelu_pytorch_tanh, gelu_new or quick_gelu for ${what} but received "${act}"`);
}

/**
 * Flattens each image into patch rows [B, 1+N, C·p·p] in (channel, y, x)
 * order — the layout of the patch convolution's weight — with an all-zero
 * row 0 where the CLS token goes (the convolution has no bias, so its row
 * stays zero and the class embedding is added with the position embedding).
 */
export function patchRows(pixels: Float32Array, B: number, C: number, size: number, patch: number): Float32Array {
  const side = size / patch, N = side * side, rowLen = C * patch * patch;
  const out = new Float32Array(B * (N + 1) * rowLen);
  for (let b = 0; b < B; b++) {
    const image = b * C * size * size;
    for (let py = 0; py < side; py++) {
      for (let px = 0; px < side; px++) {
        let o = (b * (N + 1) + 1 + py * side + px) * rowLen;
        for (let c = 0; c < C; c++) {
          for (let y = 0; y < patch; y++) {
            const from = image + (c * size + py * patch + y) * size + px * patch;
            out.set(pixels.subarray(from, from + patch), o);
            o += patch;
          }
        }
      }
    }
  }
  return out;
}

export interface VisionOutput {
  /** [B, N, Dv] (or [B, N+1, Dv] with the 'full' strategy). */
  features: Tensor;
  /** [B, N] CLS attention to the patches at the feature layer, averaged over heads, when asked for. */
  clsAttention?: Float32Array;
}

/** Runs the vision tower on pixels [B, C, H, W] (host f32). */
export async function runVision(w: VisionWeights, config: LlavaConfig, pixels: Float32Array, B: number, options: RunOptions & { clsAttention?: boolean }): Promise<VisionOutput> {
  const vc = config.vision;
  const { backend, signal, k: ops } = options;
  const o = { backend, signal };
  const device = deviceOf(backend);
  const side = vc.imageSize / vc.patchSize, N = side * side, T = N + 1;
  const Dv = vc.hiddenSize, H = vc.numHeads, Dh = Dv / H;
  const act = geluKind(vc.hiddenAct, 'vision_config.hidden_act');
  let rows = new Tensor('f32', [B * T, vc.numChannels * vc.patchSize * vc.patchSize], patchRows(pixels, B, vc.numChannels, vc.imageSize, vc.patchSize), 'cpu');
  if (device === 'cuda') rows = rows.toDevice();
  const embedded = await ops.linear(rows, w.patch.weight, null, o);
  const x = await ops.add(view(embedded, [B, T, Dv]), w.tokenBias, { ...o, out: view(embedded, [B, T, Dv]) });
  const x2d = view(await ops.layerNorm(view(x, [B * T, Dv]), w.preNorm.weight, w.preNorm.bias, vc.layerNormEps, o), [B * T, Dv]);
  let clsAttention: Float32Array | undefined;
  const kCache = zerosOn([B, H, T, Dh], device), vCache = zerosOn([B, H, T, Dh], device);
  const all = new Int32Array(B).fill(T), none = new Int32Array(B);
  for (let l = 0; l < w.layers.length; l++) {
    await ops.yield();
    const L = w.layers[l]!;
    const h = await ops.layerNorm(x2d, L.norm1.weight, L.norm1.bias, vc.layerNormEps, o);
    const q = await ops.linear(h, L.q.weight, L.q.bias, o);
    const k = await ops.linear(h, L.k.weight, L.k.bias, o);
    const v = await ops.linear(h, L.v.weight, L.v.bias, o);
    await ops.cacheWrite(kCache, view(k, [B, T, H, Dh]), none, all, o);
    await ops.cacheWrite(vCache, view(v, [B, T, H, Dh]), none, all, o);
    const wantProbs = options.clsAttention === true && l === w.layers.length - 1;
    const attn = await ops.attention(view(q, [B, T, H, Dh]), kCache, vCache, { ...o, causal: false, ...(wantProbs ? { probRows: [0] } : {}) });
    if (wantProbs) clsAttention = meanOverHeads(attn.probs!, B, H, T, 1);
    const projected = await ops.linear(view(attn.out, [B * T, Dv]), L.o.weight, L.o.bias, o);
    await ops.add(x2d, projected, { ...o, out: x2d });
    const h2 = await ops.layerNorm(x2d, L.norm2.weight, L.norm2.bias, vc.layerNormEps, o);
    const up = await ops.linear(h2, L.fc1.weight, L.fc1.bias, o);
    await ops.gelu(up, act, { ...o, out: up });
    const down = await ops.linear(up, L.fc2.weight, L.fc2.bias, o);
    await ops.add(x2d, down, { ...o, out: x2d });
  }
  const hidden = view(x2d, [B, T, Dv]);
  if (config.visionFeatureSelectStrategy === 'full') return { features: hidden, ...(clsAttention ? { clsAttention } : {}) };
  const patchIndex = new Int32Array(B * N).map((_, i) => 1 + (i % N));
  let indexTensor = new Tensor('i32', [B, N], patchIndex, 'cpu');
  if (device === 'cuda') indexTensor = indexTensor.toDevice();
  const features = await ops.gatherRows(hidden, indexTensor, o);
  return { features, ...(clsAttention ? { clsAttention } : {}) };
}

/** probs [B, H, 1, T] of one query row -> [B, T-1] mean over heads of the columns 1..T-1 (the patches). */
function meanOverHeads(probs: Tensor, B: number, H: number, T: number, skip: number): Float32Array {
  const host = probs.toHost().host as Float32Array;
  const N = T - skip;
  const out = new Float32Array(B * N);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const row = (b * H + h) * T + skip;
      for (let n = 0; n < N; n++) out[b * N + n]! += host[row + n]! / H;
    }
  }
  return out;
}

/** Linear-GELU-Linear: features [B, N, Dv] -> visual tokens [B, N, D]. */
export async function runProjector(w: ProjectorWeights, config: LlavaConfig, features: Tensor, options: RunOptions): Promise<Tensor> {
  const [B, N, Dv] = features.shape as [number, number, number];
  const { k: ops } = options;
  const o = { backend: options.backend, signal: options.signal };
  const hidden = await ops.linear(view(features, [B * N, Dv]), w.linear1.weight, w.linear1.bias, o);
  await ops.gelu(hidden, geluKind(config.projectorHiddenAct, 'projector_hidden_act'), { ...o, out: hidden });
  const out = await ops.linear(hidden, w.linear2.weight, w.linear2.bias, o);
  return view(out, [B, N, config.text.hiddenSize]);
}
