// config.test.ts — LLaVA config.json resolution (Hugging Face defaults, the
// real llava-1.5-7b-hf config), its error corpus with exact codes and
// messages, and the detection of the checkpoint's tensor-name layout.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GripError } from '../../lib/errors.ts';
import { loadLlavaConfig, parseLlavaConfig, resolveTensorNames } from '../../lib/model/config.ts';
import { expectError } from '../helpers.ts';

const test = suite('config');
let root = '';
test.before(async () => {
  root = await mkdtemp(join(tmpdir(), 'grip-config-'));
});
test.after(async () => {
  await rm(root, { recursive: true, force: true });
});

/** Runs fn (sync throw or rejected Promise) and checks the GripError's code and message. */

/** config.json of llava-hf/llava-1.5-7b-hf: text and vision configs lean on the HF defaults. */
const LLAVA_15_7B = {
  architectures: ['LlavaForConditionalGeneration'],
  ignore_index: -100,
  image_token_index: 32000,
  model_type: 'llava',
  pad_token_id: 32001,
  projector_hidden_act: 'gelu',
  text_config: {
    _name_or_path: 'lmsys/vicuna-7b-v1.5',
    architectures: ['LlamaForCausalLM'],
    max_position_embeddings: 4096,
    model_type: 'llama',
    rms_norm_eps: 1e-5,
    torch_dtype: 'float16',
    vocab_size: 32064,
  },
  tie_word_embeddings: false,
  torch_dtype: 'float16',
  transformers_version: '4.36.0.dev0',
  vision_config: {
    hidden_size: 1024,
    image_size: 336,
    intermediate_size: 4096,
    model_type: 'clip_vision_model',
    num_attention_heads: 16,
    num_hidden_layers: 24,
    patch_size: 14,
    projection_dim: 768,
    vocab_size: 32000,
  },
  vision_feature_layer: -2,
  vision_feature_select_strategy: 'default',
  vocab_size: 32064,
};

const W = 'llava/config.json';
type Json = Record<string, unknown>;
/** The 7B config with some keys of the root, text_config or vision_config replaced (undefined deletes). */
function variant(top: Json, text: Json = {}, vision: Json = {}): Json {
  const strip = (o: Json) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
  return strip({
    ...LLAVA_15_7B,
    text_config: strip({ ...LLAVA_15_7B.text_config, ...text }),
    vision_config: strip({ ...LLAVA_15_7B.vision_config, ...vision }),
    ...top,
  });
}

// ---- resolution -------------------------------------------------------------------------

test('llava-1.5-7b-hf resolves to CLIP ViT-L/14-336 + Vicuna-7B with 576 image tokens', () => {
  const config = parseLlavaConfig(LLAVA_15_7B, W);
  assert.equal(config.vision, {
    hiddenSize: 1024, numLayers: 24, numHeads: 16, intermediateSize: 4096, patchSize: 14, imageSize: 336,
    numChannels: 3, hiddenAct: 'quick_gelu', layerNormEps: 1e-5,
  });
  assert.equal(config.text, {
    hiddenSize: 4096, numLayers: 32, numHeads: 32, numKvHeads: 32, headDim: 128, intermediateSize: 11008,
    rmsNormEps: 1e-5, ropeTheta: 10000, vocabSize: 32064, hiddenAct: 'silu', maxPositionEmbeddings: 4096,
    tieWordEmbeddings: false, bosTokenId: 1, eosTokenId: 2, padTokenId: 32001,
  });
  assert.is(config.modelType, 'llava');
  assert.is(config.imageTokenIndex, 32000);
  assert.is(config.visionFeatureLayer, -2);
  assert.is(config.visionFeatureSelectStrategy, 'default');
  assert.is(config.projectorHiddenAct, 'gelu');
  assert.is(config.numImageTokens, 576);
  assert.is(config.torchDtype, 'float16');
  assert.is(config.raw, LLAVA_15_7B);
});

test('a config without text_config and vision_config takes LlavaConfig defaults (CLIP-L/336, Llama-7B)', () => {
  // All defaults would put the image token (32000) outside the vocabulary (32000): see the RANGE case below.
  const config = parseLlavaConfig({ model_type: 'llava', image_token_index: 31999 }, W);
  assert.equal([config.vision.hiddenSize, config.vision.numLayers, config.vision.patchSize, config.vision.imageSize], [1024, 24, 14, 336]);
  assert.equal([config.text.hiddenSize, config.text.vocabSize, config.text.rmsNormEps, config.text.maxPositionEmbeddings], [4096, 32000, 1e-6, 2048]);
  assert.equal([config.text.numLayers, config.text.numHeads, config.text.intermediateSize, config.text.ropeTheta], [32, 32, 11008, 10000]);
  assert.is(config.numImageTokens, 576);
  assert.is(config.torchDtype, undefined);
  assert.is(config.text.padTokenId, undefined);
});

test('an empty vision_config fills in CLIPVisionConfig defaults (ViT-B/32 at 224)', () => {
  const config = parseLlavaConfig({ model_type: 'llava', vision_config: {}, text_config: { model_type: 'llama', vocab_size: 32064 } }, W);
  assert.equal(config.vision, {
    hiddenSize: 768, numLayers: 12, numHeads: 12, intermediateSize: 3072, patchSize: 32, imageSize: 224,
    numChannels: 3, hiddenAct: 'quick_gelu', layerNormEps: 1e-5,
  });
  assert.is(config.numImageTokens, 49);
});

test("the 'full' strategy counts the CLS token", () => {
  assert.is(parseLlavaConfig(variant({ vision_feature_select_strategy: 'full' }), W).numImageTokens, 577);
});

test('grouped-query heads, an explicit head_dim, tied embeddings and token-id lists are honoured', () => {
  const text = parseLlavaConfig(variant({}, {
    hidden_size: 96, num_attention_heads: 4, num_key_value_heads: 2, head_dim: 32, intermediate_size: 256,
    num_hidden_layers: 2, tie_word_embeddings: true, eos_token_id: [2, 7], bos_token_id: 1, pad_token_id: 0, rope_theta: 500000,
  }), W).text;
  assert.equal([text.hiddenSize, text.numHeads, text.numKvHeads, text.headDim], [96, 4, 2, 32]);
  assert.equal([text.tieWordEmbeddings, text.eosTokenId, text.padTokenId, text.ropeTheta], [true, [2, 7], 0, 500000]);
});

test('image_token_id (the newer spelling) and a negative vision_feature_layer index', () => {
  const config = parseLlavaConfig(variant({ image_token_index: undefined, image_token_id: 32005, vision_feature_layer: -25 }), W);
  assert.is(config.imageTokenIndex, 32005);
  assert.is(config.visionFeatureLayer, -25);
  assert.is(parseLlavaConfig(variant({ vision_feature_layer: 24 }), W).visionFeatureLayer, 24);
});

test('rope_parameters of transformers 5 give rope_theta; null counts as absent', () => {
  const config = parseLlavaConfig(variant({ dtype: 'bfloat16', torch_dtype: undefined }, { rope_parameters: { rope_type: 'default', rope_theta: 1e6 }, rope_scaling: null, num_key_value_heads: null }), W);
  assert.is(config.text.ropeTheta, 1e6);
  assert.is(config.text.numKvHeads, 32);
  assert.is(config.torchDtype, 'bfloat16');
});

test('loadLlavaConfig reads <dir>/config.json; missing is ERR_GRIP_IO, bad JSON ERR_GRIP_FORMAT', async () => {
  const dir = join(root, 'model');
  await mkdir(dir);
  const path = join(dir, 'config.json');
  await expectError(() => loadLlavaConfig(dir), 'ERR_GRIP_IO', `expected a readable config.json for ${path} but received ENOENT: no such file or directory`);
  await writeFile(path, '{"model_type": "llava",}');
  await expectError(() => loadLlavaConfig(dir), 'ERR_GRIP_FORMAT', `expected a JSON object for ${path} but received invalid JSON starting "{\\"model_type\\": \\"llava\\",}"`);
  await writeFile(path, JSON.stringify(LLAVA_15_7B));
  assert.is((await loadLlavaConfig(dir)).numImageTokens, 576);
  await writeFile(path, JSON.stringify({ model_type: 'llava_next' }));
  await expectError(() => loadLlavaConfig(dir), 'ERR_GRIP_UNSUPPORTED', `expected model_type "llava" for ${path} but received "llava_next"`);
});

// ---- the error corpus: type errors FORMAT, out-of-range values RANGE, unimplemented choices UNSUPPORTED ----

const BAD_CONFIGS: { name: string; json: unknown; code: string; message: string }[] = [
  { name: 'not an object', json: [LLAVA_15_7B], code: 'ERR_GRIP_FORMAT', message: `expected a JSON object for ${W} but received an array` },
  { name: 'an unknown model_type', json: variant({ model_type: 'qwen2_vl' }), code: 'ERR_GRIP_UNSUPPORTED', message: `expected model_type "llava" for ${W} but received "qwen2_vl"` },
  { name: 'no model_type', json: variant({ model_type: undefined }), code: 'ERR_GRIP_UNSUPPORTED', message: `expected model_type "llava" for ${W} but received no model_type` },
  { name: 'a Mistral language model', json: variant({}, { model_type: 'mistral' }), code: 'ERR_GRIP_UNSUPPORTED',
    message: `expected "llama" for text_config.model_type in ${W} but received "mistral"` },
  { name: 'a SigLIP vision tower', json: variant({}, {}, { model_type: 'siglip_vision_model' }), code: 'ERR_GRIP_UNSUPPORTED',
    message: `expected "clip_vision_model" for vision_config.model_type in ${W} but received "siglip_vision_model"` },
  { name: 'text_config that is not an object', json: variant({ text_config: 'llama' }), code: 'ERR_GRIP_FORMAT',
    message: `expected an object for text_config in ${W} but received "llama"` },
  { name: 'heads not dividing the hidden size', json: variant({}, { num_attention_heads: 30 }), code: 'ERR_GRIP_RANGE',
    message: `expected a multiple of text_config.num_attention_heads (30) for text_config.hidden_size in ${W} but received number 4096` },
  { name: 'vision heads not dividing the vision hidden size', json: variant({}, {}, { num_attention_heads: 15 }), code: 'ERR_GRIP_RANGE',
    message: `expected a multiple of vision_config.num_attention_heads (15) for vision_config.hidden_size in ${W} but received number 1024` },
  { name: 'kv heads not dividing the heads', json: variant({}, { num_key_value_heads: 5 }), code: 'ERR_GRIP_RANGE',
    message: `expected a divisor of text_config.num_attention_heads (32) for text_config.num_key_value_heads in ${W} but received number 5` },
  { name: 'an odd head dimension', json: variant({}, { head_dim: 127 }), code: 'ERR_GRIP_RANGE',
    message: `expected an even head dimension (RoPE rotates pairs) for text_config.head_dim in ${W} but received 127` },
  { name: 'an image size that is not a multiple of the patch size', json: variant({}, {}, { image_size: 337 }), code: 'ERR_GRIP_RANGE',
    message: `expected a multiple of vision_config.patch_size (14) for vision_config.image_size in ${W} but received number 337` },
  { name: 'rope_scaling set', json: variant({}, { rope_scaling: { type: 'linear', factor: 2 } }), code: 'ERR_GRIP_UNSUPPORTED',
    message: `expected no rope_scaling (null or absent) for text_config.rope_scaling in ${W} but received {"type":"linear","factor":2}` },
  { name: 'a rope type other than default', json: variant({}, { rope_parameters: { rope_type: 'yarn', rope_theta: 1e4 } }), code: 'ERR_GRIP_UNSUPPORTED',
    message: `expected one of "default" for text_config.rope_parameters.rope_type in ${W} but received "yarn"` },
  { name: 'a size given as a string', json: variant({}, { hidden_size: '4096' }), code: 'ERR_GRIP_FORMAT',
    message: `expected a positive integer for text_config.hidden_size in ${W} but received "4096"` },
  { name: 'a fractional size', json: variant({}, {}, { patch_size: 14.5 }), code: 'ERR_GRIP_FORMAT',
    message: `expected a positive integer for vision_config.patch_size in ${W} but received number 14.5` },
  { name: 'zero layers', json: variant({}, { num_hidden_layers: 0 }), code: 'ERR_GRIP_RANGE',
    message: `expected a positive integer for text_config.num_hidden_layers in ${W} but received number 0` },
  { name: 'a zero epsilon', json: variant({}, { rms_norm_eps: 0 }), code: 'ERR_GRIP_RANGE',
    message: `expected a positive finite number for text_config.rms_norm_eps in ${W} but received number 0` },
  { name: 'a negative rope_theta', json: variant({}, { rope_theta: -1 }), code: 'ERR_GRIP_RANGE',
    message: `expected a positive finite number for text_config.rope_theta in ${W} but received number -1` },
  { name: 'a feature layer past the tower', json: variant({ vision_feature_layer: 25 }), code: 'ERR_GRIP_RANGE',
    message: `expected an integer in [-25, 24] for vision_feature_layer in ${W} but received number 25` },
  { name: 'a feature layer before the embeddings', json: variant({ vision_feature_layer: -26 }), code: 'ERR_GRIP_RANGE',
    message: `expected an integer in [-25, 24] for vision_feature_layer in ${W} but received number -26` },
  { name: 'a list of feature layers (LLaVA-NeXT style)', json: variant({ vision_feature_layer: [-2, -5] }), code: 'ERR_GRIP_UNSUPPORTED',
    message: `expected a single layer (lists of layers are not supported) for vision_feature_layer in ${W} but received [-2, -5]` },
  { name: 'an image token outside the vocabulary', json: variant({ image_token_index: 32064 }), code: 'ERR_GRIP_RANGE',
    message: `expected an integer in [0, 32063] for image_token_index in ${W} but received number 32064` },
  { name: 'the all-defaults image token (32000) with the default vocabulary (32000)', json: { model_type: 'llava' }, code: 'ERR_GRIP_RANGE',
    message: `expected an integer in [0, 31999] for image_token_index in ${W} but received number 32000` },
  { name: 'image_token_id disagreeing with image_token_index', json: variant({ image_token_id: 32001 }), code: 'ERR_GRIP_FORMAT',
    message: `expected image_token_index (32000) for image_token_id in ${W} but received number 32001` },
  { name: 'an unsupported text activation', json: variant({}, { hidden_act: 'gelu' }), code: 'ERR_GRIP_UNSUPPORTED',
    message: `expected one of "silu" for text_config.hidden_act in ${W} but received "gelu"` },
  { name: 'an unsupported vision activation', json: variant({}, {}, { hidden_act: 'relu' }), code: 'ERR_GRIP_UNSUPPORTED',
    message: `expected one of "quick_gelu", "gelu", "gelu_pytorch_tanh", "gelu_new" for vision_config.hidden_act in ${W} but received "relu"` },
  { name: 'an unsupported projector activation', json: variant({ projector_hidden_act: 'tanh' }), code: 'ERR_GRIP_UNSUPPORTED',
    message: `expected one of "gelu", "quick_gelu", "gelu_pytorch_tanh", "gelu_new", "relu", "silu" for projector_hidden_act in ${W} but received "tanh"` },
  { name: 'an unknown feature strategy', json: variant({ vision_feature_select_strategy: 'cls' }), code: 'ERR_GRIP_UNSUPPORTED',
    message: `expected one of "default", "full" for vision_feature_select_strategy in ${W} but received "cls"` },
  { name: 'attention biases', json: variant({}, { attention_bias: true }), code: 'ERR_GRIP_UNSUPPORTED',
    message: `expected false (attention biases are not supported) for text_config.attention_bias in ${W} but received true` },
  { name: 'tie_word_embeddings that is not a boolean', json: variant({}, { tie_word_embeddings: 'no' }), code: 'ERR_GRIP_FORMAT',
    message: `expected true or false for text_config.tie_word_embeddings in ${W} but received "no"` },
  { name: 'an eos token outside the vocabulary', json: variant({}, { eos_token_id: [2, 40000] }), code: 'ERR_GRIP_RANGE',
    message: `expected an integer in [0, 32063] or a list of them for text_config.eos_token_id in ${W} but received [2, 40000]` },
];

for (const bad of BAD_CONFIGS) {
  test(`bad config: ${bad.name} is ${bad.code}`, async () => {
    await expectError(() => parseLlavaConfig(bad.json, W), bad.code, bad.message);
  });
}

// ---- tensor-name layouts ------------------------------------------------------------------

const CLASSIC = [
  'language_model.lm_head.weight',
  'language_model.model.embed_tokens.weight',
  'language_model.model.layers.0.self_attn.q_proj.weight',
  'language_model.model.norm.weight',
  'multi_modal_projector.linear_1.weight',
  'vision_tower.vision_model.embeddings.patch_embedding.weight',
];
const TRANSFORMERS = [
  'lm_head.weight',
  'model.language_model.embed_tokens.weight',
  'model.language_model.layers.0.self_attn.q_proj.weight',
  'model.multi_modal_projector.linear_1.weight',
  'model.vision_tower.vision_model.embeddings.patch_embedding.weight',
];

test('the classic LLaVA layout is detected, with its lm_head', () => {
  assert.equal(resolveTensorNames(CLASSIC), {
    layout: 'classic', vision: 'vision_tower.vision_model.', projector: 'multi_modal_projector.',
    text: 'language_model.model.', lmHead: 'language_model.lm_head.weight',
  });
});

test('the layout of newer transformers is detected, with its lm_head', () => {
  assert.equal(resolveTensorNames(TRANSFORMERS), {
    layout: 'transformers', vision: 'model.vision_tower.vision_model.', projector: 'model.multi_modal_projector.',
    text: 'model.language_model.', lmHead: 'lm_head.weight',
  });
});

test('a checkpoint without lm_head (tied embeddings) gives lmHead null', () => {
  assert.is(resolveTensorNames(CLASSIC.slice(1)).lmHead, null);
  assert.is(resolveTensorNames(TRANSFORMERS.slice(1)).lmHead, null);
});

test('an unknown layout is ERR_GRIP_FORMAT listing some names', async () => {
  await expectError(() => resolveTensorNames(['model.embed_tokens.weight', 'model.layers.0.mlp.up_proj.weight', 'lm_head.weight', 'model.norm.weight'], 'ckpt'),
    'ERR_GRIP_FORMAT',
    'expected LLaVA tensor names (vision_tower.vision_model.*, multi_modal_projector.*, language_model.model.*, or the same under model.) for ckpt but received 4 names such as "model.embed_tokens.weight", "model.layers.0.mlp.up_proj.weight", "lm_head.weight"');
});

test('a layout missing one part is ERR_GRIP_FORMAT naming the missing prefix', async () => {
  await expectError(() => resolveTensorNames(CLASSIC.filter((n) => !n.startsWith('multi_modal'))), 'ERR_GRIP_FORMAT',
    'expected tensors named "multi_modal_projector.*" for the checkpoint but received none among 5 names such as "language_model.lm_head.weight", "language_model.model.embed_tokens.weight", "language_model.model.layers.0.self_attn.q_proj.weight"');
});

test.run();
