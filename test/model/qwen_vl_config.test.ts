// qwen_vl_config.test.ts — Qwen2-VL / Qwen2.5-VL config.json parsing: the tiny fixtures in
// both layouts (decoder keys at the top level, or in text_config), and every malformed
// field as a GripError naming it.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { parseQwenVLConfig } from '../../lib/model/qwen_vl/config.ts';
import { expectError } from '../helpers.ts';

const test = suite('qwen_vl_config');
const read = (dir: string) => JSON.parse(readFileSync(fileURLToPath(new URL(`../fixtures/${dir}/config.json`, import.meta.url)), 'utf8'));
const QWEN2 = read('tiny-qwen2-vl');
const QWEN25 = read('tiny-qwen2_5-vl');

test('the tiny Qwen2-VL: LayerNorm + fc MLP tower, no windows, untied head', () => {
  const c = parseQwenVLConfig(QWEN2, 'c.json');
  assert.is(c.modelType, 'qwen2_vl');
  assert.equal(c.vision, {
    depth: 3, hiddenSize: 32, numHeads: 4, headDim: 8, intermediateSize: 64, hiddenAct: 'quick_gelu', norm: 'layernorm', mlp: 'fc',
    patchSize: 14, temporalPatchSize: 2, spatialMergeSize: 2, outHiddenSize: 64,
  });
  assert.equal([c.text.hiddenSize, c.text.numLayers, c.text.numHeads, c.text.numKvHeads, c.text.headDim, c.text.tieWordEmbeddings], [64, 4, 4, 2, 16, false]);
  assert.equal(c.mropeSection, [2, 3, 3]);
  assert.equal([c.imageTokenId, c.visionStartTokenId, c.visionEndTokenId], [QWEN2.image_token_id, QWEN2.vision_start_token_id, QWEN2.vision_end_token_id]);
});

test('the tiny Qwen2.5-VL: RMSNorm + gated MLP, window 56 with full attention at blocks 1 and 3, tied head', () => {
  const c = parseQwenVLConfig(QWEN25, 'c.json');
  assert.is(c.modelType, 'qwen2_5_vl');
  assert.equal([c.vision.norm, c.vision.mlp, c.vision.hiddenAct, c.vision.intermediateSize, c.vision.windowSize, c.vision.fullattBlockIndexes],
    ['rmsnorm', 'gated', 'silu', 64, 56, [1, 3]]);
  assert.is(c.text.tieWordEmbeddings, true);
});

test('newer transformers\' layout (decoder keys and token ids in text_config) reads the same', () => {
  const textKeys = ['hidden_size', 'intermediate_size', 'num_attention_heads', 'num_hidden_layers', 'num_key_value_heads', 'rms_norm_eps',
    'rope_theta', 'vocab_size', 'max_position_embeddings', 'rope_scaling', 'hidden_act', 'bos_token_id', 'eos_token_id'];
  const nested: Record<string, unknown> = { text_config: {} };
  for (const [key, value] of Object.entries(QWEN25)) {
    if (textKeys.includes(key)) (nested.text_config as Record<string, unknown>)[key] = value;
    else nested[key] = value;
  }
  const a = parseQwenVLConfig(QWEN25, 'c.json'), b = parseQwenVLConfig(nested, 'c.json');
  assert.equal({ ...b, raw: null }, { ...a, raw: null });
});

const ERRORS: Array<[string, unknown, Record<string, unknown>, string, string]> = [
  ['another model type', QWEN2, { model_type: 'llava' }, 'ERR_GRIP_UNSUPPORTED', 'expected model_type "qwen2_vl" or "qwen2_5_vl" for c.json but received "llava"'],
  ['no vision_config', QWEN2, { vision_config: undefined }, 'ERR_GRIP_FORMAT', 'expected an object for vision_config in c.json but received null'],
  ['an mrope_section that does not sum to head_dim / 2', QWEN2, { rope_scaling: { type: 'mrope', mrope_section: [2, 3, 2] } }, 'ERR_GRIP_RANGE',
    'expected 3 positive integers (temporal, height, width) summing to head_dim / 2 (8) for rope_scaling.mrope_section in c.json but received [2, 3, 2]'],
  ['an mrope_section of two parts', QWEN2, { rope_scaling: { type: 'mrope', mrope_section: [4, 4] } }, 'ERR_GRIP_FORMAT',
    'expected 3 positive integers (temporal, height, width) summing to head_dim / 2 (8) for rope_scaling.mrope_section in c.json but received [4, 4]'],
  ['no rope_scaling', QWEN2, { rope_scaling: undefined }, 'ERR_GRIP_FORMAT', 'expected an object with mrope_section for rope_scaling in c.json but received null'],
  ['another rope scaling', QWEN2, { rope_scaling: { type: 'yarn', mrope_section: [2, 3, 3] } }, 'ERR_GRIP_UNSUPPORTED', 'expected "mrope" for rope_scaling.type in c.json but received "yarn"'],
  ['a merger width other than the decoder\'s', QWEN2, { vision_config: { ...QWEN2.vision_config, hidden_size: 48 } }, 'ERR_GRIP_RANGE',
    'expected the decoder\'s hidden_size (64) for vision_config.hidden_size in c.json but received number 48'],
  ['vision heads that leave no 2D rotary', QWEN2, { vision_config: { ...QWEN2.vision_config, num_heads: 16 } }, 'ERR_GRIP_RANGE',
    'expected a multiple of 4 x vision_config.num_heads (16) (2D rotary) for vision_config.embed_dim in c.json but received number 32'],
  ['a window off the merged patch', QWEN25, { vision_config: { ...QWEN25.vision_config, window_size: 70 } }, 'ERR_GRIP_RANGE',
    'expected a positive multiple of patch_size x spatial_merge_size (28) for vision_config.window_size in c.json but received number 70'],
  ['a full-attention block past the tower', QWEN25, { vision_config: { ...QWEN25.vision_config, fullatt_block_indexes: [1, 4] } }, 'ERR_GRIP_RANGE',
    'expected a list of distinct block indexes in [0, 3] for vision_config.fullatt_block_indexes in c.json but received [1, 4]'],
  ['Qwen2\'s sliding window', QWEN2, { use_sliding_window: true }, 'ERR_GRIP_UNSUPPORTED',
    'expected false (Qwen2\'s sliding window is not supported) for use_sliding_window in c.json but received true'],
  ['an image token past the vocabulary', QWEN2, { image_token_id: QWEN2.vocab_size }, 'ERR_GRIP_RANGE',
    `expected an integer in [0, ${QWEN2.vocab_size - 1}] for image_token_id in c.json but received number ${QWEN2.vocab_size}`],
  ['four channels', QWEN25, { vision_config: { ...QWEN25.vision_config, in_chans: 4 } }, 'ERR_GRIP_RANGE', 'expected 3 (RGB) for vision_config.in_chans in c.json but received number 4'],
];
for (const [name, base, patch, code, message] of ERRORS) {
  test(`parseQwenVLConfig refuses ${name}`, async () => {
    await expectError(() => parseQwenVLConfig({ ...(base as object), ...patch }, 'c.json'), code, message);
  });
}

test.run();
