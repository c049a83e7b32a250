// config.ts — a Qwen2-VL / Qwen2.5-VL config.json (Qwen2VLForConditionalGeneration,
// Qwen2_5_VLForConditionalGeneration) resolved into one typed object: the vision tower
// (Qwen2-VL: LayerNorm + fc MLP, full attention; Qwen2.5-VL: RMSNorm + gated MLP, window
// attention with full-attention blocks), the 2x2 merger, the Qwen2 decoder and M-RoPE.
// The decoder keys sit at the top level (checkpoints on the Hub) or in text_config
// (newer transformers). Error codes as in lib/model/config.ts.
import { GripError } from '../../errors.js';
import { describe } from '../../tensor.js';
import { Section, type TextConfig } from '../config.js';
import { jsonText } from '../../json.js';

export type QwenVLModelType = 'qwen2_vl' | 'qwen2_5_vl';
export type QwenVisionAct = 'quick_gelu' | 'silu' | 'gelu';

export interface QwenVisionConfig {
  /** Transformer blocks. */
  depth: number;
  /** Width of the vision tower (Qwen2-VL embed_dim, Qwen2.5-VL hidden_size). */
  hiddenSize: number;
  numHeads: number;
  headDim: number;
  /** Width of each block's MLP (Qwen2-VL embed_dim * mlp_ratio). */
  intermediateSize: number;
  hiddenAct: QwenVisionAct;
  /** 'layernorm' + fc1/fc2 for Qwen2-VL; 'rmsnorm' + gate/up/down (all with biases) for Qwen2.5-VL. */
  norm: 'layernorm' | 'rmsnorm';
  mlp: 'fc' | 'gated';
  patchSize: number;
  temporalPatchSize: number;
  spatialMergeSize: number;
  /** The merger's output width, the decoder's hidden size. */
  outHiddenSize: number;
  /** Qwen2.5-VL: the attention window side in pixels (112), and the blocks that attend over the whole image. */
  windowSize?: number;
  fullattBlockIndexes?: number[];
}

export interface QwenVLConfig {
  modelType: QwenVLModelType;
  vision: QwenVisionConfig;
  /** The Qwen2 decoder (q/k/v with biases, o without). */
  text: TextConfig;
  /** [temporal, height, width] rotary pairs of each head; they sum to headDim / 2. */
  mropeSection: [number, number, number];
  imageTokenId: number;
  videoTokenId?: number;
  visionStartTokenId: number;
  visionEndTokenId: number;
  torchDtype?: string;
  /** The parsed config.json as given. */
  raw: unknown;
}

// transformers' Qwen2VLConfig / Qwen2_5_VLConfig and their vision configs.
const TEXT_DEFAULTS = {
  hidden_size: 8192, num_hidden_layers: 80, num_attention_heads: 64, num_key_value_heads: 8, intermediate_size: 29568,
  rms_norm_eps: 1e-5, rope_theta: 1000000, vocab_size: 152064, hidden_act: 'silu', max_position_embeddings: 32768,
  tie_word_embeddings: false, use_sliding_window: false,
};
const VISION_DEFAULTS: Record<QwenVLModelType, Record<string, unknown>> = {
  qwen2_vl: { depth: 32, embed_dim: 1280, hidden_size: 3584, hidden_act: 'quick_gelu', mlp_ratio: 4, num_heads: 16, in_channels: 3, patch_size: 14, spatial_merge_size: 2, temporal_patch_size: 2 },
  qwen2_5_vl: { depth: 32, hidden_size: 3584, hidden_act: 'silu', intermediate_size: 3420, num_heads: 16, in_channels: 3, patch_size: 14, spatial_merge_size: 2, temporal_patch_size: 2, window_size: 112, out_hidden_size: 3584, fullatt_block_indexes: [7, 15, 23, 31] },
};
const MODEL_TYPES: readonly QwenVLModelType[] = ['qwen2_vl', 'qwen2_5_vl'];

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** Resolves a parsed Qwen2-VL / Qwen2.5-VL config.json; `where` (its path) is named in every error. */
export function parseQwenVLConfig(json: unknown, where: string): QwenVLConfig {
  if (!isRecord(json)) throw new GripError('ERR_GRIP_FORMAT', `expected a JSON object for ${where} but received ${describe(json)}`);
  const modelType = json.model_type as QwenVLModelType;
  if (!MODEL_TYPES.includes(modelType)) {
    const got = json.model_type === undefined ? 'no model_type' : jsonText(json.model_type);
    throw new GripError('ERR_GRIP_UNSUPPORTED', `expected model_type "qwen2_vl" or "qwen2_5_vl" for ${where} but received ${got}`);
  }
  const root = new Section(json, '', where, TEXT_DEFAULTS);
  const textJson = root.section('text_config');
  const t = textJson ? new Section(textJson, 'text_config.', where, TEXT_DEFAULTS) : root;
  const visionJson = root.section('vision_config');
  if (visionJson === null) root.fail('ERR_GRIP_FORMAT', 'an object', 'vision_config', json.vision_config ?? null);
  const v = new Section(visionJson!, 'vision_config.', where, VISION_DEFAULTS[modelType]);

  // ---- decoder
  t.only('use_sliding_window', false, 'false (Qwen2\'s sliding window is not supported)');
  const hiddenSize = t.int('hidden_size', 1);
  const numHeads = t.int('num_attention_heads', 1);
  const numKvHeads = t.has('num_key_value_heads') ? t.int('num_key_value_heads', 1) : numHeads;
  if (numHeads % numKvHeads !== 0) t.fail('ERR_GRIP_RANGE', `a divisor of ${t.prefix}num_attention_heads (${numHeads})`, 'num_key_value_heads', numKvHeads);
  if (hiddenSize % numHeads !== 0) t.fail('ERR_GRIP_RANGE', `a multiple of ${t.prefix}num_attention_heads (${numHeads})`, 'hidden_size', hiddenSize);
  const headDim = hiddenSize / numHeads;
  if (headDim % 2 !== 0) t.fail('ERR_GRIP_RANGE', `a multiple of 2 x ${t.prefix}num_attention_heads (RoPE rotates pairs)`, 'hidden_size', hiddenSize);
  const vocabSize = t.int('vocab_size', 1);
  const text: TextConfig = {
    hiddenSize, numLayers: t.int('num_hidden_layers', 1), numHeads, numKvHeads, headDim,
    intermediateSize: t.int('intermediate_size', 1), rmsNormEps: t.positive('rms_norm_eps'), ropeTheta: t.positive('rope_theta'),
    vocabSize, hiddenAct: t.choice('hidden_act', ['silu'] as const), maxPositionEmbeddings: t.int('max_position_embeddings', 1),
    // tie_word_embeddings is a top-level key even where the decoder's keys are nested
    tieWordEmbeddings: (textJson && !root.has('tie_word_embeddings') ? t : root).bool('tie_word_embeddings'),
  };
  const tokenOwner = (key: string) => (root.has(key) || !textJson ? root : t);
  const bos = tokenOwner('bos_token_id').tokenId('bos_token_id', vocabSize);
  const eos = tokenOwner('eos_token_id').tokenId('eos_token_id', vocabSize, true);
  if (bos !== undefined) text.bosTokenId = bos as number;
  if (eos !== undefined) text.eosTokenId = eos;

  // ---- M-RoPE: rope_scaling {type|rope_type: "mrope" (or "default" as transformers rewrites it), mrope_section}
  const ropeOwner = tokenOwner('rope_scaling');
  const rope = ropeOwner.section('rope_scaling');
  if (rope === null) ropeOwner.fail('ERR_GRIP_FORMAT', 'an object with mrope_section', 'rope_scaling', ropeOwner.json.rope_scaling ?? null);
  const ropeType = rope!.rope_type ?? rope!.type ?? 'default';
  if (ropeType !== 'mrope' && ropeType !== 'default') {
    throw new GripError('ERR_GRIP_UNSUPPORTED', `expected "mrope" for ${ropeOwner.prefix}rope_scaling.type in ${where} but received ${jsonText(ropeType)}`);
  }
  const section = rope!.mrope_section;
  const sectionExpected = `3 positive integers (temporal, height, width) summing to head_dim / 2 (${headDim / 2})`;
  const sectionKey = `${ropeOwner.prefix}rope_scaling.mrope_section`;
  if (!Array.isArray(section) || section.length !== 3 || !section.every((x) => typeof x === 'number' && Number.isInteger(x))) {
    throw new GripError('ERR_GRIP_FORMAT', `expected ${sectionExpected} for ${sectionKey} in ${where} but received ${jsonText(section ?? null)}`);
  }
  if (section.some((x) => x < 1) || section.reduce((a, b) => a + b, 0) !== headDim / 2) {
    throw new GripError('ERR_GRIP_RANGE', `expected ${sectionExpected} for ${sectionKey} in ${where} but received ${jsonText(section)}`);
  }

  // ---- vision tower
  const qwen2 = modelType === 'qwen2_vl';
  const channelsKey = v.has('in_chans') ? 'in_chans' : 'in_channels';
  v.int(channelsKey, 3, 3, '3 (RGB)');
  const visionHidden = v.int(qwen2 ? 'embed_dim' : 'hidden_size', 1);
  const visionHeads = v.int('num_heads', 1);
  if (visionHidden % visionHeads !== 0 || (visionHidden / visionHeads) % 4 !== 0) {
    // the 2D rotary gives each of height and width a quarter of the head's dimensions in pairs
    v.fail('ERR_GRIP_RANGE', `a multiple of 4 x vision_config.num_heads (${visionHeads}) (2D rotary)`, qwen2 ? 'embed_dim' : 'hidden_size', visionHidden);
  }
  const depth = v.int('depth', 1);
  const patchSize = v.int('patch_size', 1);
  const spatialMergeSize = v.int('spatial_merge_size', 1);
  const outKey = qwen2 ? 'hidden_size' : 'out_hidden_size';
  const outHiddenSize = v.int(outKey, 1);
  if (outHiddenSize !== hiddenSize) v.fail('ERR_GRIP_RANGE', `the decoder's hidden_size (${hiddenSize})`, outKey, outHiddenSize);
  const vision: QwenVisionConfig = {
    depth, hiddenSize: visionHidden, numHeads: visionHeads, headDim: visionHidden / visionHeads,
    intermediateSize: qwen2 ? visionHidden * v.int('mlp_ratio', 1) : v.int('intermediate_size', 1),
    hiddenAct: v.choice('hidden_act', ['quick_gelu', 'silu', 'gelu'] as const),
    norm: qwen2 ? 'layernorm' : 'rmsnorm', mlp: qwen2 ? 'fc' : 'gated',
    patchSize, temporalPatchSize: v.int('temporal_patch_size', 1), spatialMergeSize, outHiddenSize,
  };
  if (!qwen2) {
    const unit = patchSize * spatialMergeSize;
    const windowSize = v.int('window_size', unit, Number.MAX_SAFE_INTEGER, `a positive multiple of patch_size x spatial_merge_size (${unit})`);
    if (windowSize % unit !== 0) v.fail('ERR_GRIP_RANGE', `a positive multiple of patch_size x spatial_merge_size (${unit})`, 'window_size', windowSize);
    const blocks = v.get('fullatt_block_indexes');
    const blocksExpected = `a list of distinct block indexes in [0, ${depth - 1}]`;
    if (!Array.isArray(blocks) || !blocks.every((b) => typeof b === 'number' && Number.isInteger(b))) v.fail('ERR_GRIP_FORMAT', blocksExpected, 'fullatt_block_indexes', blocks);
    const list = blocks as number[];
    if (list.some((b) => b < 0 || b >= depth) || new Set(list).size !== list.length) v.fail('ERR_GRIP_RANGE', blocksExpected, 'fullatt_block_indexes', blocks);
    vision.windowSize = windowSize;
    vision.fullattBlockIndexes = [...list];
  }

  // ---- special tokens (top level in every layout)
  const tokenExpected = `an integer in [0, ${vocabSize - 1}]`;
  const config: QwenVLConfig = {
    modelType, vision, text, mropeSection: [...section] as [number, number, number],
    imageTokenId: tokenOwner('image_token_id').int('image_token_id', 0, vocabSize - 1, tokenExpected),
    visionStartTokenId: tokenOwner('vision_start_token_id').int('vision_start_token_id', 0, vocabSize - 1, tokenExpected),
    visionEndTokenId: tokenOwner('vision_end_token_id').int('vision_end_token_id', 0, vocabSize - 1, tokenExpected),
    raw: json,
  };
  const video = tokenOwner('video_token_id').tokenId('video_token_id', vocabSize);
  if (video !== undefined) config.videoTokenId = video as number;
  const dtype = json.torch_dtype ?? json.dtype;
  if (dtype !== undefined && dtype !== null) {
    if (typeof dtype !== 'string') root.fail('ERR_GRIP_FORMAT', 'a string', 'torch_dtype', dtype);
    config.torchDtype = dtype as string;
  }
  return config;
}
