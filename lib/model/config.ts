// config.ts — a LLaVA config.json resolved into one typed object (Hugging Face
// defaults filled in, everything checked), and the tensor-name layout of a
// LLaVA checkpoint (the classic one or that of newer transformers).
//
// Error codes: a value of the wrong JSON type (a string for a size, a
// fraction for a count, an object that is not one) is ERR_GRIP_FORMAT; a
// value of the right type outside its allowed range (0 layers, heads that do
// not divide the hidden size, a feature layer past the tower) is
// ERR_GRIP_RANGE; a well-formed choice this runtime does not implement
// (another model type, activation, rope scaling) is ERR_GRIP_UNSUPPORTED.
import { join } from 'node:path';
import { GripError } from '../errors.js';
import { describe } from '../tensor.js';
import { isRecord, jsonText, readJsonFile } from '../json.js';

export type VisionAct = 'quick_gelu' | 'gelu' | 'gelu_pytorch_tanh' | 'gelu_new';
export type ProjectorAct = 'gelu' | 'quick_gelu' | 'gelu_pytorch_tanh' | 'gelu_new' | 'relu' | 'silu';

export interface VisionConfig {
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  intermediateSize: number;
  patchSize: number;
  imageSize: number;
  numChannels: number;
  hiddenAct: VisionAct;
  layerNormEps: number;
}

export interface TextConfig {
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  intermediateSize: number;
  rmsNormEps: number;
  ropeTheta: number;
  vocabSize: number;
  hiddenAct: 'silu';
  maxPositionEmbeddings: number;
  tieWordEmbeddings: boolean;
  bosTokenId?: number;
  eosTokenId?: number | number[];
  padTokenId?: number;
}

export interface LlavaConfig {
  modelType: 'llava';
  vision: VisionConfig;
  text: TextConfig;
  imageTokenIndex: number;
  /** An index into the vision tower's hidden states (numLayers + 1 of them), negative from the end; as given. */
  visionFeatureLayer: number;
  visionFeatureSelectStrategy: 'default' | 'full';
  projectorHiddenAct: ProjectorAct;
  /** Visual tokens per image: (imageSize/patchSize)^2, +1 (the CLS token) for 'full'. */
  numImageTokens: number;
  torchDtype?: string;
  /** The parsed config.json as given. */
  raw: unknown;
}

// Hugging Face defaults (transformers CLIPVisionConfig, LlamaConfig, LlavaConfig).
const CLIP_DEFAULTS = {
  hidden_size: 768, num_hidden_layers: 12, num_attention_heads: 12, intermediate_size: 3072,
  patch_size: 32, image_size: 224, num_channels: 3, hidden_act: 'quick_gelu', layer_norm_eps: 1e-5,
};
/** LlavaConfig builds this CLIP ViT-L/14-336 tower when config.json has no vision_config at all. */
const LLAVA_VISION_PRESET = { hidden_size: 1024, intermediate_size: 4096, patch_size: 14, image_size: 336, num_hidden_layers: 24, num_attention_heads: 16 };
const LLAMA_DEFAULTS = {
  hidden_size: 4096, num_hidden_layers: 32, num_attention_heads: 32, intermediate_size: 11008, rms_norm_eps: 1e-6,
  rope_theta: 10000, vocab_size: 32000, hidden_act: 'silu', max_position_embeddings: 2048, tie_word_embeddings: false,
  bos_token_id: 1, eos_token_id: 2,
};
const LLAVA_DEFAULTS = { image_token_index: 32000, vision_feature_layer: -2, vision_feature_select_strategy: 'default', projector_hidden_act: 'gelu' };

const VISION_ACTS: readonly VisionAct[] = ['quick_gelu', 'gelu', 'gelu_pytorch_tanh', 'gelu_new'];
const PROJECTOR_ACTS: readonly ProjectorAct[] = ['gelu', 'quick_gelu', 'gelu_pytorch_tanh', 'gelu_new', 'relu', 'silu'];

const quoteList = (items: readonly string[]) => items.map((s) => `"${s}"`).join(', ');
const received = (value: unknown) => (typeof value === 'string' ? `"${value}"` : Array.isArray(value) ? jsonText(value) : describe(value));

/** Reads the keys of one JSON object (the root, text_config or vision_config), naming them `prefix + key` in messages. */
export class Section {
  constructor(
    readonly json: Record<string, unknown>,
    readonly prefix: string,
    readonly where: string,
    readonly defaults: Record<string, unknown>,
  ) {}

  /** The key's value; null counts as absent (HF writes null for "use the default"). */
  get(key: string): unknown {
    const value = this.json[key];
    return value === undefined || value === null ? this.defaults[key] : value;
  }

  has(key: string): boolean {
    return this.json[key] !== undefined && this.json[key] !== null;
  }

  fail(code: GripError['code'], expected: string, key: string, value: unknown): never {
    throw new GripError(code, `expected ${expected} for ${this.prefix}${key} in ${this.where} but received ${received(value)}`);
  }

  int(key: string, min: number, max = Number.MAX_SAFE_INTEGER, expected = 'a positive integer'): number {
    const value = this.get(key);
    if (typeof value !== 'number' || !Number.isInteger(value)) this.fail('ERR_GRIP_FORMAT', expected, key, value);
    if (value < min || value > max) this.fail('ERR_GRIP_RANGE', expected, key, value);
    return value;
  }

  positive(key: string): number {
    const value = this.get(key);
    if (typeof value !== 'number') this.fail('ERR_GRIP_FORMAT', 'a positive finite number', key, value);
    if (!(value > 0 && Number.isFinite(value))) this.fail('ERR_GRIP_RANGE', 'a positive finite number', key, value);
    return value;
  }

  choice<T extends string>(key: string, allowed: readonly T[]): T {
    const value = this.get(key);
    if (typeof value !== 'string') this.fail('ERR_GRIP_FORMAT', `one of ${quoteList(allowed)}`, key, value);
    if (!allowed.includes(value as T)) this.fail('ERR_GRIP_UNSUPPORTED', `one of ${quoteList(allowed)}`, key, value);
    return value as T;
  }

  bool(key: string): boolean {
    const value = this.get(key);
    if (typeof value !== 'boolean') this.fail('ERR_GRIP_FORMAT', 'true or false', key, value);
    return value;
  }

  /** A key that, when set to anything but `allowed`, asks for a feature this runtime lacks. */
  only(key: string, allowed: unknown, expected: string): void {
    if (this.has(key) && this.json[key] !== allowed) {
      throw new GripError('ERR_GRIP_UNSUPPORTED', `expected ${expected} for ${this.prefix}${key} in ${this.where} but received ${jsonText(this.json[key])}`);
    }
  }

  /** A section object (text_config, vision_config), or null when absent. */
  section(key: string): Record<string, unknown> | null {
    if (!this.has(key)) return null;
    const value = this.json[key];
    if (!isRecord(value)) this.fail('ERR_GRIP_FORMAT', 'an object', key, value);
    return value;
  }

  modelType(expected: string): void {
    if (this.has('model_type') && this.json.model_type !== expected) {
      this.fail('ERR_GRIP_UNSUPPORTED', `"${expected}"`, 'model_type', this.json.model_type);
    }
  }

  /** A token id (or, with `list`, a list of them) in [0, vocab); absent stays undefined. */
  tokenId(key: string, vocabSize: number, list = false): number | number[] | undefined {
    const value = this.get(key);
    if (value === undefined) return undefined;
    const expected = `an integer in [0, ${vocabSize - 1}]${list ? ' or a list of them' : ''}`;
    const ids = list && Array.isArray(value) ? value : [value];
    for (const id of ids) {
      if (typeof id !== 'number' || !Number.isInteger(id)) this.fail('ERR_GRIP_FORMAT', expected, key, value);
      if (id < 0 || id >= vocabSize) this.fail('ERR_GRIP_RANGE', expected, key, value);
    }
    return list && Array.isArray(value) ? [...(value as number[])] : (value as number);
  }
}

/** Resolves a parsed LLaVA config.json; `where` (its path) is named in every error. */
export function parseLlavaConfig(json: unknown, where: string): LlavaConfig {
  if (!isRecord(json)) throw new GripError('ERR_GRIP_FORMAT', `expected a JSON object for ${where} but received ${describe(json)}`);
  if (json.model_type !== 'llava') {
    const got = json.model_type === undefined ? 'no model_type' : received(json.model_type);
    throw new GripError('ERR_GRIP_UNSUPPORTED', `expected model_type "llava" for ${where} but received ${got}`);
  }
  const root = new Section(json, '', where, LLAVA_DEFAULTS);
  const visionJson = root.section('vision_config');
  const textJson = root.section('text_config');
  const vision = parseVision(new Section(visionJson ?? {}, 'vision_config.', where, visionJson ? CLIP_DEFAULTS : { ...CLIP_DEFAULTS, ...LLAVA_VISION_PRESET }));
  const text = parseText(new Section(textJson ?? {}, 'text_config.', where, LLAMA_DEFAULTS), root);

  const layer = root.get('vision_feature_layer');
  if (Array.isArray(layer)) root.fail('ERR_GRIP_UNSUPPORTED', 'a single layer (lists of layers are not supported)', 'vision_feature_layer', layer);
  const visionFeatureLayer = root.int('vision_feature_layer', -(vision.numLayers + 1), vision.numLayers,
    `an integer in [${-(vision.numLayers + 1)}, ${vision.numLayers}]`);
  const visionFeatureSelectStrategy = root.choice('vision_feature_select_strategy', ['default', 'full'] as const);
  const projectorHiddenAct = root.choice('projector_hidden_act', PROJECTOR_ACTS);
  root.only('multimodal_projector_bias', true, 'true (a projector without biases is not supported)');

  // image_token_id is the newer transformers spelling of image_token_index.
  const indexKey = root.has('image_token_index') || !root.has('image_token_id') ? 'image_token_index' : 'image_token_id';
  const imageTokenIndex = root.int(indexKey, 0, text.vocabSize - 1, `an integer in [0, ${text.vocabSize - 1}]`);
  if (indexKey === 'image_token_index' && root.has('image_token_id') && json.image_token_id !== imageTokenIndex) {
    root.fail('ERR_GRIP_FORMAT', `image_token_index (${imageTokenIndex})`, 'image_token_id', json.image_token_id);
  }

  const dtypeKey = ['torch_dtype', 'dtype'].find((key) => root.has(key));
  const dtype = dtypeKey ? json[dtypeKey] : textJson?.torch_dtype ?? undefined;
  if (dtype !== undefined && typeof dtype !== 'string') root.fail('ERR_GRIP_FORMAT', 'a string', dtypeKey ?? 'text_config.torch_dtype', dtype);
  const torchDtype = dtype as string | undefined;

  const patchesPerSide = vision.imageSize / vision.patchSize;
  const config: LlavaConfig = {
    modelType: 'llava',
    vision,
    text,
    imageTokenIndex,
    visionFeatureLayer,
    visionFeatureSelectStrategy,
    projectorHiddenAct,
    numImageTokens: patchesPerSide * patchesPerSide + (visionFeatureSelectStrategy === 'full' ? 1 : 0),
    raw: json,
  };
  if (torchDtype !== undefined) config.torchDtype = torchDtype;
  return config;
}

function parseVision(s: Section): VisionConfig {
  s.modelType('clip_vision_model');
  const hiddenSize = s.int('hidden_size', 1);
  const numHeads = s.int('num_attention_heads', 1);
  if (hiddenSize % numHeads !== 0) s.fail('ERR_GRIP_RANGE', `a multiple of ${s.prefix}num_attention_heads (${numHeads})`, 'hidden_size', hiddenSize);
  const patchSize = s.int('patch_size', 1);
  const imageSize = s.int('image_size', 1);
  if (imageSize % patchSize !== 0) s.fail('ERR_GRIP_RANGE', `a multiple of ${s.prefix}patch_size (${patchSize})`, 'image_size', imageSize);
  return {
    hiddenSize,
    numLayers: s.int('num_hidden_layers', 1),
    numHeads,
    intermediateSize: s.int('intermediate_size', 1),
    patchSize,
    imageSize,
    numChannels: s.int('num_channels', 1),
    hiddenAct: s.choice('hidden_act', VISION_ACTS),
    layerNormEps: s.positive('layer_norm_eps'),
  };
}

function parseText(s: Section, root: Section): TextConfig {
  s.modelType('llama');
  s.only('rope_scaling', null, 'no rope_scaling (null or absent)');
  s.only('attention_bias', false, 'false (attention biases are not supported)');
  s.only('mlp_bias', false, 'false (MLP biases are not supported)');
  const hiddenSize = s.int('hidden_size', 1);
  const numHeads = s.int('num_attention_heads', 1);
  const numKvHeads = s.has('num_key_value_heads') ? s.int('num_key_value_heads', 1) : numHeads;
  if (numHeads % numKvHeads !== 0) s.fail('ERR_GRIP_RANGE', `a divisor of ${s.prefix}num_attention_heads (${numHeads})`, 'num_key_value_heads', numKvHeads);
  // An explicit head_dim frees the hidden size from being heads x head_dim (as in transformers).
  let headDim: number;
  if (s.has('head_dim')) headDim = s.int('head_dim', 1);
  else {
    if (hiddenSize % numHeads !== 0) s.fail('ERR_GRIP_RANGE', `a multiple of ${s.prefix}num_attention_heads (${numHeads})`, 'hidden_size', hiddenSize);
    headDim = hiddenSize / numHeads;
  }
  if (headDim % 2 !== 0) {
    throw new GripError('ERR_GRIP_RANGE', `expected an even head dimension (RoPE rotates pairs) for ${s.prefix}head_dim in ${s.where} but received ${headDim}`);
  }
  const vocabSize = s.int('vocab_size', 1);

  // transformers 5 moves rope_theta into rope_parameters {rope_type, rope_theta}.
  let ropeTheta: number;
  const ropeParameters = s.section('rope_parameters');
  if (ropeParameters !== null && !s.has('rope_theta')) {
    const rope = new Section(ropeParameters, `${s.prefix}rope_parameters.`, s.where, { rope_theta: LLAMA_DEFAULTS.rope_theta, rope_type: 'default' });
    rope.choice('rope_type', ['default'] as const);
    ropeTheta = rope.positive('rope_theta');
  } else ropeTheta = s.positive('rope_theta');

  const text: TextConfig = {
    hiddenSize,
    numLayers: s.int('num_hidden_layers', 1),
    numHeads,
    numKvHeads,
    headDim,
    intermediateSize: s.int('intermediate_size', 1),
    rmsNormEps: s.positive('rms_norm_eps'),
    ropeTheta,
    vocabSize,
    hiddenAct: s.choice('hidden_act', ['silu'] as const),
    maxPositionEmbeddings: s.int('max_position_embeddings', 1),
    tieWordEmbeddings: s.bool('tie_word_embeddings'),
  };
  const bos = s.tokenId('bos_token_id', vocabSize);
  const eos = s.tokenId('eos_token_id', vocabSize, true);
  // LLaVA configs put pad_token_id at the top level; a negative one (-1) is an old way to say "none".
  const padOwner = s.has('pad_token_id') ? s : root;
  const padRaw = padOwner.get('pad_token_id');
  const pad = typeof padRaw === 'number' && padRaw < 0 && Number.isInteger(padRaw) ? undefined : padOwner.tokenId('pad_token_id', vocabSize);
  if (bos !== undefined) text.bosTokenId = bos as number;
  if (eos !== undefined) text.eosTokenId = eos;
  if (pad !== undefined) text.padTokenId = pad as number;
  return text;
}

/** Reads and resolves `<dir>/config.json`. */
export async function loadLlavaConfig(dir: string): Promise<LlavaConfig> {
  const path = join(dir, 'config.json');
  return parseLlavaConfig(await readJsonFile(path, 'config.json'), path);
}

// ---- tensor-name layouts -------------------------------------------------------------

/** Name prefixes of the parts of a LLaVA checkpoint. */
export interface LlavaNames {
  layout: 'classic' | 'transformers';
  /** Up to and including "vision_model.": + "embeddings.patch_embedding.weight", "encoder.layers.0...". */
  vision: string;
  /** + "linear_1.weight", "linear_2.bias", ... */
  projector: string;
  /** The parent of "layers", "embed_tokens" and "norm". */
  text: string;
  /** The full name of the output projection, or null when it is tied to the embeddings. */
  lmHead: string | null;
}

const LAYOUTS: readonly LlavaNames[] = [
  { layout: 'classic', vision: 'vision_tower.vision_model.', projector: 'multi_modal_projector.', text: 'language_model.model.', lmHead: 'language_model.lm_head.weight' },
  { layout: 'transformers', vision: 'model.vision_tower.vision_model.', projector: 'model.multi_modal_projector.', text: 'model.language_model.', lmHead: 'lm_head.weight' },
];

/**
 * Which naming scheme a LLaVA checkpoint uses: the classic one
 * (language_model.model.*, language_model.lm_head.weight) or that of
 * transformers >= 4.52 (model.language_model.*, lm_head.weight).
 */
export function resolveTensorNames(names: readonly string[], where = 'the checkpoint'): LlavaNames {
  const parts = ['vision', 'projector', 'text'] as const;
  const scored = LAYOUTS.map((layout) => ({
    layout,
    found: parts.filter((part) => names.some((name) => name.startsWith(layout[part]))),
  }));
  const complete = scored.filter((s) => s.found.length === parts.length);
  const sample = `${names.length} names such as ${names.slice(0, 3).map((n) => `"${n}"`).join(', ') || 'none'}`;
  if (complete.length === 1) {
    const layout = complete[0]!.layout;
    return { ...layout, lmHead: layout.lmHead !== null && names.includes(layout.lmHead) ? layout.lmHead : null };
  }
  if (complete.length > 1) {
    throw new GripError('ERR_GRIP_FORMAT', `expected one LLaVA naming scheme for the tensor names of ${where} but received both the classic and the transformers one`);
  }
  const best = scored.reduce((a, b) => (b.found.length > a.found.length ? b : a));
  if (best.found.length === 0) {
    throw new GripError('ERR_GRIP_FORMAT',
      `expected LLaVA tensor names (vision_tower.vision_model.*, multi_modal_projector.*, language_model.model.*, or the same under model.) for ${where} but received ${sample}`);
  }
  const missing = parts.find((part) => !best.found.includes(part))!;
  throw new GripError('ERR_GRIP_FORMAT', `expected tensors named "${best.layout[missing]}*" for ${where} but received none among ${sample}`);
}
