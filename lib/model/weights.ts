// weights.ts — reads a LLaVA checkpoint's tensors into the structures the
// runtime computes with, checking each name and shape against the config.
// Matrices stay in their stored dtype (f32/f16/bf16; the GEMM widens on the
// fly); vectors (norms, biases, embeddings added elementwise) become f32.
import { GripError } from '../errors.js';
import { ops } from '../ops.js';
import { Tensor, tensor, type Device } from '../tensor.js';
import type { LlavaConfig } from './config.js';
import { resolveTensorNames } from './config.js';
import type { Checkpoint } from './safetensors.js';

export interface Linear {
  /** [out, in], f32|f16|bf16, or q8_0 (the decoder's, with weights 'int8'). */
  weight: Tensor;
  /** [out] f32, or null. */
  bias: Tensor | null;
}

export interface LayerNormWeights {
  weight: Tensor;
  bias: Tensor;
}

export interface VisionLayerWeights {
  norm1: LayerNormWeights;
  q: Linear; k: Linear; v: Linear; o: Linear;
  norm2: LayerNormWeights;
  fc1: Linear; fc2: Linear;
}

export interface VisionWeights {
  /** The patch convolution as a Linear over flattened (channel, y, x) patches: [Dv, C·p·p]. */
  patch: Linear;
  /** [N+1, Dv] f32: the position embedding, plus the class embedding on row 0 (the CLS token's patch row is zero). */
  tokenBias: Tensor;
  preNorm: LayerNormWeights;
  /** Only the layers up to the feature layer (LLaVA reads layer -2; the rest never run). */
  layers: VisionLayerWeights[];
}

export interface ProjectorWeights {
  linear1: Linear;
  linear2: Linear;
}

export interface TextLayerWeights {
  inputNorm: Tensor;
  q: Linear; k: Linear; v: Linear; o: Linear;
  postNorm: Tensor;
  gate: Linear; up: Linear; down: Linear;
}

export interface TextWeights {
  /** [V, D]. */
  embed: Tensor;
  layers: TextLayerWeights[];
  norm: Tensor;
  /** [V, D] (the embedding itself when tied). */
  lmHead: Tensor;
}

export interface LlavaWeights {
  vision: VisionWeights;
  projector: ProjectorWeights;
  text: TextWeights;
}

export type WeightDType = 'auto' | 'f32' | 'f16' | 'bf16';
/** How the decoder's Linear weights are stored: as dtype says ('float'), or 8-bit ('int8', q8_0). */
export type WeightFormat = 'float' | 'int8';

const DECODER_LINEARS = ['q', 'k', 'v', 'o', 'gate', 'up', 'down'] as const;

/**
 * weights 'int8': the decoder's Linear weights and the LM head become q8_0
 * (ggml's Q8_0, native/cpu/q8_0.h: blocks of 32 along each row with an f16
 * scale, quantised in native code as quantize_row_q8_0_ref does), in place.
 * Embeddings, norms and biases stay f32/as loaded; a tied LM head gets its
 * own q8_0 copy (the embedding rows are gathered in float). Every
 * in-features count must be a multiple of 32: a layer that is not is
 * refused (ERR_GRIP_SHAPE), not silently kept in float. CPU only.
 */
export async function quantizeDecoder(w: TextWeights, signal?: AbortSignal): Promise<void> {
  const q8 = async (t: Tensor, what: string): Promise<Tensor> => {
    const K = t.shape[1]!;
    if (K % 32 !== 0) {
      throw new GripError('ERR_GRIP_SHAPE', `expected in-features that are a multiple of 32 (q8_0 blocks) for the decoder's ${what} weight [${t.shape.join(', ')}] with weights 'int8' but received ${K}`);
    }
    signal?.throwIfAborted();
    return ops.quantizeQ8_0(asF32(t), { backend: 'cpu' });
  };
  for (const [i, layer] of w.layers.entries()) {
    for (const name of DECODER_LINEARS) layer[name].weight = await q8(layer[name].weight, `layers.${i}.${name}`);
  }
  w.lmHead = await q8(w.lmHead, 'lm_head');
}

/** How many vision layers run to produce hidden_states[visionFeatureLayer]. */
export function visionLayersNeeded(config: LlavaConfig): number {
  const f = config.visionFeatureLayer;
  return f < 0 ? config.vision.numLayers + 1 + f : f;
}

/** A tensor of the checkpoint with its shape checked (ERR_GRIP_FORMAT naming it): the one read every family's weights go through. */
export async function readTensor(checkpoint: Checkpoint, name: string, shape: readonly number[], where: string, signal: AbortSignal | undefined): Promise<Tensor> {
  if (!checkpoint.has(name)) throw new GripError('ERR_GRIP_FORMAT', `expected tensor "${name}" in ${where} but received none`);
  const info = checkpoint.info(name);
  if (info.shape.length !== shape.length || info.shape.some((d, i) => d !== shape[i])) {
    throw new GripError('ERR_GRIP_FORMAT', `expected shape [${shape.join(', ')}] for tensor "${name}" in ${where} but received [${info.shape.join(', ')}]`);
  }
  signal?.throwIfAborted();
  return checkpoint.read(name, { signal });
}

export async function loadWeights(checkpoint: Checkpoint, config: LlavaConfig, where: string, options: { dtype: WeightDType; device: Device; signal?: AbortSignal | undefined }): Promise<LlavaWeights> {
  const names = resolveTensorNames(checkpoint.names);
  const { vision: vc, text: tc } = config;
  const read = async (name: string, shape: readonly number[], kind: 'matrix' | 'vector', device = options.device): Promise<Tensor> => {
    let t = await readTensor(checkpoint, name, shape, where, options.signal);
    if (kind === 'vector') t = asF32(t);
    else if (options.dtype !== 'auto' && t.dtype !== options.dtype) t = convert(t, options.dtype);
    return device === 'cuda' ? t.toDevice() : t;
  };
  const linear = async (prefix: string, outDim: number, inDim: number, bias: boolean): Promise<Linear> => ({
    weight: await read(`${prefix}.weight`, [outDim, inDim], 'matrix'),
    bias: bias ? await read(`${prefix}.bias`, [outDim], 'vector') : null,
  });
  const layerNorm = async (prefix: string, dim: number): Promise<LayerNormWeights> => ({
    weight: await read(`${prefix}.weight`, [dim], 'vector'),
    bias: await read(`${prefix}.bias`, [dim], 'vector'),
  });

  // Vision tower (CLIP).
  const v = names.vision;
  const Dv = vc.hiddenSize, p = vc.patchSize, C = vc.numChannels;
  const gridSide = vc.imageSize / p;
  const patchWeight = await read(`${v}embeddings.patch_embedding.weight`, [Dv, C, p, p], 'matrix');
  const visionLayers: VisionLayerWeights[] = [];
  for (let i = 0; i < visionLayersNeeded(config); i++) {
    const l = `${v}encoder.layers.${i}`;
    visionLayers.push({
      norm1: await layerNorm(`${l}.layer_norm1`, Dv),
      q: await linear(`${l}.self_attn.q_proj`, Dv, Dv, true),
      k: await linear(`${l}.self_attn.k_proj`, Dv, Dv, true),
      v: await linear(`${l}.self_attn.v_proj`, Dv, Dv, true),
      o: await linear(`${l}.self_attn.out_proj`, Dv, Dv, true),
      norm2: await layerNorm(`${l}.layer_norm2`, Dv),
      fc1: await linear(`${l}.mlp.fc1`, vc.intermediateSize, Dv, true),
      fc2: await linear(`${l}.mlp.fc2`, Dv, vc.intermediateSize, true),
    });
  }
  const classEmbedding = await read(`${v}embeddings.class_embedding`, [Dv], 'vector', 'cpu');
  const tokenBias = await read(`${v}embeddings.position_embedding.weight`, [gridSide * gridSide + 1, Dv], 'vector', 'cpu');
  const bias = tokenBias.host as Float32Array;
  (classEmbedding.host as Float32Array).forEach((value, i) => { bias[i] = bias[i]! + value; });
  const vision: VisionWeights = {
    patch: { weight: new Tensor(patchWeight.dtype, [Dv, C * p * p], patchWeight.data, patchWeight.device), bias: null },
    tokenBias: options.device === 'cuda' ? tokenBias.toDevice() : tokenBias,
    preNorm: await layerNorm(`${v}pre_layrnorm`, Dv),
    layers: visionLayers,
  };

  // Projector.
  const D = tc.hiddenSize;
  const projector: ProjectorWeights = {
    linear1: await linear(`${names.projector}linear_1`, D, Dv, true),
    linear2: await linear(`${names.projector}linear_2`, D, D, true),
  };

  // Language model (Llama).
  const t = names.text;
  const Dh = tc.headDim, qDim = tc.numHeads * Dh, kvDim = tc.numKvHeads * Dh;
  const textLayers: TextLayerWeights[] = [];
  for (let i = 0; i < tc.numLayers; i++) {
    const l = `${t}layers.${i}`;
    textLayers.push({
      inputNorm: await read(`${l}.input_layernorm.weight`, [D], 'vector'),
      q: await linear(`${l}.self_attn.q_proj`, qDim, D, false),
      k: await linear(`${l}.self_attn.k_proj`, kvDim, D, false),
      v: await linear(`${l}.self_attn.v_proj`, kvDim, D, false),
      o: await linear(`${l}.self_attn.o_proj`, D, qDim, false),
      postNorm: await read(`${l}.post_attention_layernorm.weight`, [D], 'vector'),
      gate: await linear(`${l}.mlp.gate_proj`, tc.intermediateSize, D, false),
      up: await linear(`${l}.mlp.up_proj`, tc.intermediateSize, D, false),
      down: await linear(`${l}.mlp.down_proj`, D, tc.intermediateSize, false),
    });
  }
  const embed = await read(`${t}embed_tokens.weight`, [tc.vocabSize, D], 'matrix');
  let lmHead: Tensor;
  if (names.lmHead !== null) lmHead = await read(names.lmHead, [tc.vocabSize, D], 'matrix');
  else if (tc.tieWordEmbeddings) lmHead = embed;
  else throw new GripError('ERR_GRIP_FORMAT', `expected tensor "lm_head.weight" (or tie_word_embeddings) in ${where} but received none`);
  const text: TextWeights = { embed, layers: textLayers, norm: await read(`${t}norm.weight`, [D], 'vector'), lmHead };
  return { vision, projector, text };
}

export function asF32(t: Tensor): Tensor {
  return t.dtype === 'f32' ? t : new Tensor('f32', t.shape, t.toFloat32(), 'cpu');
}

function convert(t: Tensor, dtype: 'f32' | 'f16' | 'bf16'): Tensor {
  return dtype === 'f32' ? asF32(t) : tensor(t.toFloat32(), t.shape, dtype);
}
