// llava_next.test.ts — LLaVA-NeXT's anyres geometry against the independent
// numpy reference (tools/llava_ref/llava_next_np.py, written from transformers)
// on 7 image sizes for the tiny checkpoint's config and for LLaVA-1.6-7B's,
// and the LlavaNext config parser with its error corpus.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { anyresGeometry, selectBestResolution, unpadWindow } from '../../lib/model/llava_next/processor.ts';
import { parseLlavaNextConfig } from '../../lib/model/llava_next/config.ts';
import { expectError } from '../helpers.ts';

const test = suite('llava_next');
const DIR = fileURLToPath(new URL('../fixtures/tiny-llava-next/', import.meta.url));
const REF = JSON.parse(readFileSync(DIR + 'reference.json', 'utf8'));
const TINY_CONFIG = JSON.parse(readFileSync(DIR + 'config.json', 'utf8'));

interface GeoCase {
  name: string; image_size: [number, number]; best_resolution: number[]; resized: number[]; pad: number[];
  tiles: number[][]; grid_shape: number[]; unpad_window: number[]; num_image_tokens: number;
  num_image_tokens_model: number; token_tile: number[]; token_patch: number[];
}

for (const key of ['geometry_tiny', 'geometry_llava_v1_6'] as const) {
  const table = REF[key] as { crop: number; patch: number; pinpoints: [number, number][]; cases: GeoCase[] };
  test(`${key}: the reference covers square, wide, tall, tiny, huge and odd sizes`, () => {
    assert.equal(table.cases.map((c) => c.name), ['square', 'wide', 'tall', 'tiny', 'huge', 'odd', 'pinpoint']);
    // the processor's count and the model's packed length agree in the reference itself
    for (const c of table.cases) assert.is(c.num_image_tokens, c.num_image_tokens_model, c.name);
  });
  for (const c of table.cases) {
    test(`${key} ${c.name} ${c.image_size.join('x')}: tiles, grid, unpad, token count and layout equal the reference`, () => {
      const g = anyresGeometry(c.image_size, table.pinpoints, table.crop, table.patch);
      assert.equal(g.bestResolution, c.best_resolution, 'best resolution');
      assert.equal(g.resized, c.resized, 'resized');
      assert.equal(g.pad, c.pad, 'pad');
      assert.equal(g.tiles, c.tiles, 'tiles');
      assert.equal(g.gridShape, c.grid_shape, 'grid shape');
      assert.equal(g.unpadWindow, c.unpad_window, 'unpad window');
      assert.is(g.numImageTokens, c.num_image_tokens, 'token count');
      assert.equal(Array.from(g.tokenTile), c.token_tile, 'token tile');
      assert.equal(Array.from(g.tokenPatch), c.token_patch, 'token patch');
    });
  }
}

test('different aspect ratios pick different grids in the tiny config', () => {
  const grids = new Set((REF.geometry_tiny.cases as GeoCase[]).map((c) => c.grid_shape.join('x')));
  assert.ok(grids.size >= 4, [...grids].join(' '));
});

test('the model fixture image: 1x3 tiles, 214 visual tokens with one newline per unpadded row', () => {
  const m = REF.model;
  const g = anyresGeometry(m.image_size, TINY_CONFIG.image_grid_pinpoints, 32, 4);
  assert.is(g.numImageTokens, m.num_image_tokens);
  assert.equal(g.gridShape, [1, 3]);
  assert.is(m.pixel_values.shape[0], 1 + g.tiles.length);
  assert.is(Array.from(g.tokenTile).filter((t) => t === -1).length, g.unpadWindow[1] - g.unpadWindow[0]);
});

test('selectBestResolution: ties on effective pixels go to the least waste, then to the first', () => {
  // 100x100 fits 100x100 pixels into both; [100, 200] wastes less than [200, 200]
  assert.equal(selectBestResolution([100, 100], [[200, 200], [100, 200]]), [100, 200]);
  assert.equal(selectBestResolution([100, 100], [[100, 200], [200, 100]]), [100, 200]);
  // an image larger than every pinpoint takes the one that keeps the most of it
  assert.equal(selectBestResolution([4000, 3000], [[336, 672], [672, 672]]), [672, 672]);
});

test('unpadWindow: round(x, 7) before int() as transformers (a product just under an integer)', () => {
  // 55 * (24 / 88) = 14.999999999999998 in floats: int(round(., 7)) = 15 cuts (24 - 15) // 2 = 4 rows
  // each side; a bare truncation (14) would cut 5. Values from tools/llava_ref/llava_next_np.py.
  assert.is(55 * (24 / 88) < 15, true);
  assert.equal(unpadWindow([24, 24], [55, 88]), [4, 20, 0, 24]);
  assert.equal(unpadWindow([24, 48], [3, 49]), [11, 13, 0, 48]);
  assert.equal(unpadWindow([48, 24], [7, 3]), [0, 48, 2, 22]);
  assert.equal(unpadWindow([48, 48], [21, 21]), [0, 48, 0, 48]);
});

test('anyresGeometry refuses a non-integer or empty image size', async () => {
  await expectError(() => anyresGeometry([0, 5], [[32, 32]], 32, 4), 'ERR_GRIP_RANGE',
    'expected a positive integer [height, width] for imageSize but received [0,5]');
  await expectError(() => anyresGeometry([2.5, 5], [[32, 32]], 32, 4), 'ERR_GRIP_RANGE',
    'expected a positive integer [height, width] for imageSize but received [2.5,5]');
});

// ---- config -----------------------------------------------------------------------------

test('the tiny checkpoint config: Mistral with its sliding window, pinpoints as given', () => {
  const c = parseLlavaNextConfig(TINY_CONFIG, 'config.json');
  assert.is(c.modelType, 'llava_next');
  assert.is(c.textModelType, 'mistral');
  assert.is(c.slidingWindow, 384);
  assert.equal(c.imageGridPinpoints, [[32, 64], [64, 32], [64, 64], [32, 96], [96, 32]]);
  assert.is(c.vision.imageSize, 32);
  assert.is(c.vision.patchSize, 4);
  assert.is(c.text.hiddenSize, 48);
  assert.is(c.text.numKvHeads, 2);
  assert.is(c.imageTokenIndex, 4);
});

/** Shaped like llava-hf/llava-v1.6-mistral-7b-hf's config.json: the text model leans on MistralConfig's defaults. */
const V16_MISTRAL = {
  architectures: ['LlavaNextForConditionalGeneration'],
  image_grid_pinpoints: [[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]],
  image_token_index: 32000,
  model_type: 'llava_next',
  projector_hidden_act: 'gelu',
  text_config: {
    architectures: ['MistralForCausalLM'], model_type: 'mistral', rms_norm_eps: 1e-5, rope_theta: 1000000.0,
    sliding_window: null, vocab_size: 32064,
  },
  use_image_newline_parameter: true,
  vision_config: {
    hidden_size: 1024, image_size: 336, intermediate_size: 4096, model_type: 'clip_vision_model',
    num_attention_heads: 16, num_hidden_layers: 24, patch_size: 14,
  },
  vision_feature_layer: -2,
  vision_feature_select_strategy: 'default',
};

test('LLaVA-1.6-Mistral-7B: MistralConfig defaults fill the text model; sliding_window null = no window', () => {
  const c = parseLlavaNextConfig(V16_MISTRAL, 'c.json');
  assert.is(c.textModelType, 'mistral');
  assert.is(c.slidingWindow, undefined);
  assert.is(c.text.intermediateSize, 14336);
  assert.is(c.text.numKvHeads, 8);
  assert.is(c.text.maxPositionEmbeddings, 131072);
  assert.is(c.text.ropeTheta, 1e6);
  assert.is(c.text.numLayers, 32);
  assert.is(c.text.headDim, 128);
  const { sliding_window: _, ...noWindowKey } = V16_MISTRAL.text_config;
  assert.is(parseLlavaNextConfig({ ...V16_MISTRAL, text_config: noWindowKey }, 'c.json').slidingWindow, 4096, 'MistralConfig default');
});

test('a Llama (vicuna) text model has no window and Llama defaults', () => {
  const c = parseLlavaNextConfig({ ...V16_MISTRAL, text_config: { model_type: 'llama', vocab_size: 32064 } }, 'c.json');
  assert.is(c.textModelType, 'llama');
  assert.is(c.slidingWindow, undefined);
  assert.is(c.text.intermediateSize, 11008);
  assert.is(c.text.numKvHeads, 32);
});

const PIN = 'a non-empty list of [height, width] pairs of positive multiples of vision_config.image_size (336)';
const CONFIG_ERRORS: Array<[string, unknown, string, string]> = [
  ['not an object', [], 'ERR_GRIP_FORMAT', 'expected a JSON object for c.json but received an array'],
  ['LLaVA-1.5', { ...V16_MISTRAL, model_type: 'llava' }, 'ERR_GRIP_UNSUPPORTED', 'expected model_type "llava_next" for c.json but received "llava"'],
  ['no model_type', { ...V16_MISTRAL, model_type: undefined }, 'ERR_GRIP_UNSUPPORTED', 'expected model_type "llava_next" for c.json but received no model_type'],
  ['pinpoints missing', { ...V16_MISTRAL, image_grid_pinpoints: undefined }, 'ERR_GRIP_FORMAT', `expected ${PIN} for image_grid_pinpoints in c.json but received null`],
  ['pinpoints empty', { ...V16_MISTRAL, image_grid_pinpoints: [] }, 'ERR_GRIP_RANGE', `expected ${PIN} for image_grid_pinpoints in c.json but received []`],
  ['pinpoint not a multiple of the tile', { ...V16_MISTRAL, image_grid_pinpoints: [[336, 672], [336, 500]] }, 'ERR_GRIP_RANGE',
    `expected ${PIN} for image_grid_pinpoints in c.json but received [[336, 672], [336, 500]]`],
  ['pinpoint of one number', { ...V16_MISTRAL, image_grid_pinpoints: [[336]] }, 'ERR_GRIP_FORMAT', `expected ${PIN} for image_grid_pinpoints in c.json but received [[336]]`],
  ['pinpoint of strings', { ...V16_MISTRAL, image_grid_pinpoints: [['336', '672']] }, 'ERR_GRIP_FORMAT',
    `expected ${PIN} for image_grid_pinpoints in c.json but received [["336", "672"]]`],
  ['strategy full', { ...V16_MISTRAL, vision_feature_select_strategy: 'full' }, 'ERR_GRIP_UNSUPPORTED',
    'expected "default" (transformers\' LLaVA-NeXT cannot tile with "full") for vision_feature_select_strategy in c.json but received "full"'],
  ['another text model', { ...V16_MISTRAL, text_config: { model_type: 'qwen2' } }, 'ERR_GRIP_UNSUPPORTED',
    'expected "llama" or "mistral" for text_config.model_type in c.json but received "qwen2"'],
  ['window of zero', { ...V16_MISTRAL, text_config: { ...V16_MISTRAL.text_config, sliding_window: 0 } }, 'ERR_GRIP_RANGE',
    'expected a positive integer or null for text_config.sliding_window in c.json but received 0'],
  ['window as a string', { ...V16_MISTRAL, text_config: { ...V16_MISTRAL.text_config, sliding_window: '4096' } }, 'ERR_GRIP_FORMAT',
    'expected a positive integer or null for text_config.sliding_window in c.json but received "4096"'],
];
for (const [name, json, code, message] of CONFIG_ERRORS) {
  test(`parseLlavaNextConfig refuses ${name}`, async () => {
    await expectError(() => parseLlavaNextConfig(json, 'c.json'), code, message);
  });
}

test('keys shared with LLaVA-1.5 are checked by its parser, named in the LLaVA-NeXT file', async () => {
  await expectError(() => parseLlavaNextConfig({ ...V16_MISTRAL, vision_config: { ...V16_MISTRAL.vision_config, patch_size: 13 } }, 'c.json'),
    'ERR_GRIP_RANGE', 'expected a multiple of vision_config.patch_size (13) for vision_config.image_size in c.json but received number 336');
});

test.run();
