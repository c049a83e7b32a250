// llava_next_pixels.test.ts — LLaVA-NeXT's anyres processor (base image +
// tiles, resize, zero padding, normalise) against the numpy reference
// (tools/llava_ref/llava_next_np.py: LlavaNextImageProcessor with PIL's
// resampler written from Pillow's Resample.c) on 6 image sizes, and the
// LLaVA-NeXT preprocessor_config.json parser with its errors.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readRgb } from '../../lib/model/processor.ts';
import { anyresGeometry, anyresPixels, parseLlavaNextProcessorConfig } from '../../lib/model/llava_next/processor.ts';
import { loadVLM } from '../../lib/model/vlm.ts';
import { expectError } from '../helpers.ts';

const test = suite('llava_next_pixels');
const DIR = fileURLToPath(new URL('../fixtures/tiny-llava-next/', import.meta.url));
const PIXELS = JSON.parse(readFileSync(DIR + 'pixels.json', 'utf8')) as {
  cases: Array<{ name: string; image_size: [number, number]; grid_shape: [number, number]; image: { shape: number[]; data: number[] }; pixel_values: { shape: number[]; data: number[] } }>;
};
const PROCESSOR_JSON = JSON.parse(readFileSync(DIR + 'preprocessor_config.json', 'utf8'));
const processor = parseLlavaNextProcessorConfig(PROCESSOR_JSON, 'p.json', 32);
// Downsampling both axes runs in sharp, whose cubic kernel differs from PIL's by rounding and,
// past a 4x reduction, by libvips' box pre-shrink (lib/model/processor.ts documents both).
// Bounds in 8-bit levels (a level is 1/255/std after normalising, std >= 0.26): odd (33x51,
// at most a 1.6x reduction) within 2 levels; huge (130x100, its base image 4.06x) within 4
// (2.8 seen). Every other case resamples with PIL's own arithmetic and must match exactly.
const DOWNSAMPLED: Record<string, number> = { odd: 2, huge: 4 };
const LEVEL = 1 / 255 / 0.26;

test('the reference covers square, wide, tall, tiny, odd and huge images, with 4 different grids', () => {
  assert.equal(PIXELS.cases.map((c) => c.name), ['square', 'wide', 'tall', 'tiny', 'odd', 'huge']);
  assert.ok(new Set(PIXELS.cases.map((c) => c.grid_shape.join('x'))).size >= 4);
});

for (const c of PIXELS.cases) {
  test(`${c.name} ${c.image_size.join('x')}: grid and tiles, pixel values ${c.name in DOWNSAMPLED ? `within ${DOWNSAMPLED[c.name]} levels (sharp)` : 'bit for bit'}`, async () => {
    const [h, w] = c.image_size;
    const rgb = await readRgb({ data: Uint8Array.from(c.image.data), width: w, height: h, channels: 3 });
    const geometry = anyresGeometry([rgb.height, rgb.width], processor.imageGridPinpoints, 32, 4);
    assert.equal(geometry.gridShape, c.grid_shape, 'grid shape');
    const got = await anyresPixels(rgb, geometry, processor, 32);
    assert.is(got.length, c.pixel_values.data.length, `values (${c.pixel_values.shape.join('x')})`);
    assert.is(1 + geometry.tiles.length, c.pixel_values.shape[0], 'tiles + base image');
    let maxDiff = 0, at = -1;
    for (let i = 0; i < got.length; i++) {
      const d = Math.abs(got[i]! - Math.fround(c.pixel_values.data[i]!));
      if (d > maxDiff) { maxDiff = d; at = i; }
    }
    const bound = (DOWNSAMPLED[c.name] ?? 0) * LEVEL;
    assert.ok(maxDiff <= bound, `max |difference| ${maxDiff} at value ${at} (tile ${Math.floor(at / 3072)}) > ${bound}`);
  });
}

test('loadVLM takes an image: its tiles, its own token count, the processor\'s pixels', async () => {
  const model = await loadVLM(DIR, { backend: 'cpu' });
  try {
    const c = PIXELS.cases.find((x) => x.name === 'wide')!;
    const [h, w] = c.image_size;
    const image = { data: Uint8Array.from(c.image.data), width: w, height: h, channels: 3 as const };
    const r = await model.generate({ image, prompt: 'what is the color of the shape ?', template: 'llava-1.5', maxNewTokens: 2, stopAtEos: false });
    const geometry = anyresGeometry([h, w], processor.imageGridPinpoints, 32, 4);
    assert.is(r.kept.indices.length, geometry.numImageTokens);
    // the same request from the reference's pixel values gives the same tokens
    const { tensor } = await import('../../lib/index.ts');
    const px = tensor(Float32Array.from(c.pixel_values.data), c.pixel_values.shape);
    const s = await model.generate({ pixelValues: px, imageSize: [h, w], prompt: 'what is the color of the shape ?', template: 'llava-1.5', maxNewTokens: 2, stopAtEos: false });
    assert.equal(Array.from(r.tokenIds), Array.from(s.tokenIds));
  } finally {
    model.dispose();
  }
});

test('llava-hf/llava-v1.6-*-hf\'s preprocessor_config.json parses: 336 px tiles, its five pinpoints, bicubic', () => {
  // the file as those checkpoints ship it (keys the runtime does not read are ignored)
  const real = {
    aspect_ratio_setting: 'anyres', crop_size: { height: 336, width: 336 }, do_center_crop: true, do_convert_rgb: true,
    do_normalize: true, do_rescale: true, do_resize: true,
    image_grid_pinpoints: [[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]],
    image_mean: [0.48145466, 0.4578275, 0.40821073], image_processor_type: 'LlavaNextImageProcessor',
    image_std: [0.26862954, 0.26130258, 0.27577711], processor_class: 'LlavaNextProcessor', resample: 3,
    rescale_factor: 0.00392156862745098, size: { shortest_edge: 336 },
  };
  const c = parseLlavaNextProcessorConfig(real, 'p.json', 336);
  assert.equal(c.imageGridPinpoints, real.image_grid_pinpoints);
  assert.is(c.cropHeight, 336);
  assert.is(c.resample, 3);
});

const ERRORS: Array<[string, Record<string, unknown>, string, string]> = [
  ['another processor', { image_processor_type: 'SiglipImageProcessor' }, 'ERR_GRIP_UNSUPPORTED',
    'expected "LlavaNextImageProcessor" for image_processor_type in p.json but received "SiglipImageProcessor"'],
  ['no pinpoints', { image_grid_pinpoints: undefined }, 'ERR_GRIP_FORMAT',
    'expected a non-empty list of [height, width] pairs of positive multiples of the crop size (32) for image_grid_pinpoints in p.json but received null'],
  ['empty pinpoints', { image_grid_pinpoints: [] }, 'ERR_GRIP_RANGE',
    'expected a non-empty list of [height, width] pairs of positive multiples of the crop size (32) for image_grid_pinpoints in p.json but received []'],
  ['a pinpoint off the tile', { image_grid_pinpoints: [[32, 64], [32, 50]] }, 'ERR_GRIP_FORMAT',
    'expected a non-empty list of [height, width] pairs of positive multiples of the crop size (32) for image_grid_pinpoints in p.json but received [[32, 64], [32, 50]]'],
  ['a crop other than the tile', { crop_size: { height: 48, width: 48 } }, 'ERR_GRIP_UNSUPPORTED',
    'expected 32 (vision_config.image_size, the tile size) for crop_size.height in p.json but received 48'],
  ['a base size other than the tile', { size: { shortest_edge: 48 } }, 'ERR_GRIP_UNSUPPORTED',
    'expected 32 (vision_config.image_size, the tile size) for size.shortest_edge in p.json but received 48'],
  ['a CLIP key out of range (checked by the CLIP parser)', { resample: 0 }, 'ERR_GRIP_UNSUPPORTED',
    'expected 2 (bilinear) or 3 (bicubic) for resample in p.json but received 0 (nearest)'],
];
for (const [name, patch, code, message] of ERRORS) {
  test(`parseLlavaNextProcessorConfig refuses ${name}`, async () => {
    await expectError(() => parseLlavaNextProcessorConfig({ ...PROCESSOR_JSON, ...patch }, 'p.json', 32), code, message);
  });
}

test.run();
