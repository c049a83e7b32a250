// config.ts — a LlavaNextForConditionalGeneration config.json (llava-hf/llava-v1.6-*-hf)
// resolved into one typed object. The vision tower, projector and decoder keys
// are those of LLaVA-1.5 and are read by parseLlavaConfig; what is LLaVA-NeXT's
// own is checked here: image_grid_pinpoints, the Mistral text model with its
// sliding window, and the select strategy anyres can run.
import { GripError } from '../../errors.js';
import { describe } from '../../tensor.js';
import { parseLlavaConfig, type LlavaConfig } from '../config.js';
import { isRecord, jsonText } from '../../json.js';

export interface LlavaNextConfig extends Omit<LlavaConfig, 'modelType' | 'numImageTokens'> {
  modelType: 'llava_next';
  /** The text model's family; both run the same decoder, Mistral with `slidingWindow`. */
  textModelType: 'llama' | 'mistral';
  /** [height, width] canvases an image may be tiled into, each a multiple of vision.imageSize. */
  imageGridPinpoints: Array<[number, number]>;
  /**
   * Mistral's window: a query at position p sees keys at positions > p - slidingWindow.
   * undefined: no window (Llama, or Mistral with "sliding_window": null).
   */
  slidingWindow?: number;
}

// MistralConfig's defaults where they differ from LlamaConfig's (transformers).
const MISTRAL_DEFAULTS: Record<string, unknown> = {
  intermediate_size: 14336, num_key_value_heads: 8, max_position_embeddings: 4096 * 32, sliding_window: 4096,
};


/** Resolves a parsed LLaVA-NeXT config.json; `where` (its path) is named in every error. */
export function parseLlavaNextConfig(json: unknown, where: string): LlavaNextConfig {
  if (!isRecord(json)) throw new GripError('ERR_GRIP_FORMAT', `expected a JSON object for ${where} but received ${describe(json)}`);
  if (json.model_type !== 'llava_next') {
    const got = json.model_type === undefined ? 'no model_type' : jsonText(json.model_type);
    throw new GripError('ERR_GRIP_UNSUPPORTED', `expected model_type "llava_next" for ${where} but received ${got}`);
  }
  const fail = (code: GripError['code'], expected: string, key: string, value: unknown): never => {
    throw new GripError(code, `expected ${expected} for ${key} in ${where} but received ${jsonText(value)}`);
  };
  const textJson = json.text_config;
  let textModelType: 'llama' | 'mistral' = 'llama';
  let text: Record<string, unknown> | undefined;
  if (isRecord(textJson)) {
    const type = textJson.model_type ?? 'llama';
    if (type !== 'llama' && type !== 'mistral') fail('ERR_GRIP_UNSUPPORTED', '"llama" or "mistral"', 'text_config.model_type', type);
    textModelType = type as 'llama' | 'mistral';
    // The shared keys are read by the LLaVA parser with the family's own defaults filled in first.
    text = { ...textJson, model_type: 'llama' };
    if (textModelType === 'mistral') {
      for (const [key, value] of Object.entries(MISTRAL_DEFAULTS)) if (text[key] === undefined) text[key] = value;
    }
  }
  const base = parseLlavaConfig({ ...json, model_type: 'llava', ...(text ? { text_config: text } : {}) }, where);
  if (base.visionFeatureSelectStrategy !== 'default') {
    // pack_image_features lays each tile out as a square grid, which the CLS row would break.
    fail('ERR_GRIP_UNSUPPORTED', '"default" (transformers\' LLaVA-NeXT cannot tile with "full")', 'vision_feature_select_strategy', json.vision_feature_select_strategy);
  }

  const tile = base.vision.imageSize;
  const pinpoints = json.image_grid_pinpoints;
  const pinpointsExpected = `a non-empty list of [height, width] pairs of positive multiples of vision_config.image_size (${tile})`;
  if (!Array.isArray(pinpoints) || pinpoints.length === 0) fail(Array.isArray(pinpoints) ? 'ERR_GRIP_RANGE' : 'ERR_GRIP_FORMAT', pinpointsExpected, 'image_grid_pinpoints', pinpoints ?? null);
  const imageGridPinpoints: Array<[number, number]> = [];
  for (const pair of pinpoints as unknown[]) {
    if (!Array.isArray(pair) || pair.length !== 2 || !pair.every((v) => typeof v === 'number' && Number.isInteger(v))) {
      fail('ERR_GRIP_FORMAT', pinpointsExpected, 'image_grid_pinpoints', pinpoints);
    }
    const [h, w] = pair as [number, number];
    if (h < tile || w < tile || h % tile !== 0 || w % tile !== 0) fail('ERR_GRIP_RANGE', pinpointsExpected, 'image_grid_pinpoints', pinpoints);
    imageGridPinpoints.push([h, w]);
  }

  const { modelType: _m, numImageTokens: _n, ...rest } = base;
  const config: LlavaNextConfig = { ...rest, modelType: 'llava_next', textModelType, imageGridPinpoints, raw: json };
  if (textModelType === 'mistral') {
    // null is Mistral's "no window" (llava-v1.6-mistral-7b-hf writes it); absent is MistralConfig's 4096.
    const window = text!.sliding_window;
    if (window !== null) {
      if (typeof window !== 'number' || !Number.isInteger(window)) fail('ERR_GRIP_FORMAT', 'a positive integer or null', 'text_config.sliding_window', window);
      if ((window as number) < 1) fail('ERR_GRIP_RANGE', 'a positive integer or null', 'text_config.sliding_window', window);
      config.slidingWindow = window as number;
    }
  }
  return config;
}
