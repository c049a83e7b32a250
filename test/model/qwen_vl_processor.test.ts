// qwen_vl_processor.test.ts — Qwen2-VL / Qwen2.5-VL's image processor (smart_resize, PIL
// resize, normalise, temporal repeat, patch flatten) against the numpy reference
// (tools/qwen_vl_ref/qwen_vl_np.py, Qwen2VLImageProcessor with PIL's resampler written from
// Pillow's Resample.c) on 7 image sizes, smart_resize at Qwen2.5-VL-7B's settings, and the
// preprocessor_config.json parser with its errors.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readRgb } from '../../lib/model/processor.ts';
import { flattenPatches, parseQwenVLProcessorConfig, qwenVLPixels, smartResize } from '../../lib/model/qwen_vl/processor.ts';
import { expectError } from '../helpers.ts';

const test = suite('qwen_vl_processor');
const DIR = fileURLToPath(new URL('../fixtures/tiny-qwen2-vl/', import.meta.url));
interface PixelCase {
  name: string; image_size: [number, number]; image_u8_base64: string; resized_size: [number, number];
  grid_thw: [number, number, number]; pixel_values_shape: [number, number]; pixel_values_f32le_base64: string;
}
const PIXELS = JSON.parse(readFileSync(DIR + 'pixels.json', 'utf8')) as {
  cases: PixelCase[];
  geometry_settings: { min_pixels: number; max_pixels: number };
  geometry: Array<{ image_size: [number, number]; resized_size?: [number, number]; grid_thw?: number[]; num_image_tokens?: number; error?: string }>;
};
const PROCESSOR_JSON = JSON.parse(readFileSync(DIR + 'preprocessor_config.json', 'utf8'));
const processor = parseQwenVLProcessorConfig(PROCESSOR_JSON, 'p.json');

const bytes = (b64: string) => Uint8Array.from(Buffer.from(b64, 'base64'));
const floats = (b64: string) => new Float32Array(bytes(b64).buffer);
// Only 'huge' (600x450 -> 140x84) shrinks both sides, which lib/model/processor.ts runs in
// sharp: its cubic kernel differs from PIL's by rounding and, past a 4x reduction (4.3x and
// 5.4x here), by libvips' box pre-shrink, documented there as up to 7 levels. Measured on
// this noisy image: max 7 levels, mean 1.39 (levels of 255 after normalising, std >= 0.26).
// Every other case resamples with PIL's own arithmetic (or not at all): bit for bit.
const DOWNSAMPLED: Record<string, { max: number; mean: number }> = { huge: { max: 7, mean: 1.5 } };
const LEVEL = 1 / 255 / 0.26;

test('the reference covers square, wide, tall, tiny, odd, huge and the model image, with 6 different grids', () => {
  assert.equal(PIXELS.cases.map((c) => c.name), ['square', 'wide', 'tall', 'tiny', 'odd', 'huge', 'model']);
  assert.ok(new Set(PIXELS.cases.map((c) => c.grid_thw.join('x'))).size >= 6);
});

for (const c of PIXELS.cases) {
  test(`${c.name} ${c.image_size.join('x')}: image_grid_thw ${c.grid_thw.join('x')}, pixel patches ${c.name in DOWNSAMPLED ? `within ${DOWNSAMPLED[c.name]!.max} levels, mean ${DOWNSAMPLED[c.name]!.mean} (sharp)` : 'bit for bit'}`, async () => {
    const [h, w] = c.image_size;
    const rgb = await readRgb({ data: bytes(c.image_u8_base64), width: w, height: h, channels: 3 });
    const got = await qwenVLPixels(rgb, processor);
    assert.equal(got.gridThw, c.grid_thw, 'image_grid_thw');
    assert.equal(got.resized, c.resized_size, 'resized size');
    const want = floats(c.pixel_values_f32le_base64);
    assert.is(got.pixelValues.length, want.length, `values (${c.pixel_values_shape.join('x')})`);
    let maxDiff = 0, at = -1, sum = 0;
    for (let i = 0; i < want.length; i++) {
      const d = Math.abs(got.pixelValues[i]! - want[i]!);
      sum += d;
      if (d > maxDiff) { maxDiff = d; at = i; }
    }
    const bound = DOWNSAMPLED[c.name] ?? { max: 0, mean: 0 };
    const row = c.pixel_values_shape[1];
    assert.ok(maxDiff <= bound.max * LEVEL, `max |difference| ${maxDiff} at value ${at} (patch ${Math.floor(at / row)}, element ${at % row}) > ${bound.max * LEVEL}`);
    assert.ok(sum / want.length <= bound.mean * LEVEL, `mean |difference| ${sum / want.length} > ${bound.mean * LEVEL}`);
  });
}

test('smart_resize rounds half to even as Python does: 42x70 becomes 56x56, not 56x84', () => {
  assert.equal(smartResize(42, 70, 28, 3136, 15680), [56, 56]);
});

test('smart_resize at Qwen2.5-VL-7B\'s settings (min 3136, max 12845056) equals the reference, errors included', async () => {
  const { min_pixels: min, max_pixels: max } = PIXELS.geometry_settings;
  assert.ok(PIXELS.geometry.some((g) => g.num_image_tokens === 1728), 'the 1344x1008 photo is 1728 visual tokens');
  for (const g of PIXELS.geometry) {
    const [h, w] = g.image_size;
    if (g.error !== undefined) {
      await expectError(() => smartResize(h, w, 28, min, max), 'ERR_GRIP_RANGE', /^expected (at least 10 pixels|an aspect ratio of at most 200)/);
      continue;
    }
    assert.equal(smartResize(h, w, 28, min, max), g.resized_size, `${h}x${w}`);
  }
});

test('smart_resize refuses an image under 10 px, an aspect over 200, and a side floored to 0', async () => {
  await expectError(() => smartResize(9, 100, 28, 3136, 15680), 'ERR_GRIP_RANGE',
    'expected at least 10 pixels (Qwen2VLImageProcessor\'s smallest side) for the image\'s width and height but received 100x9');
  await expectError(() => smartResize(10, 2001, 28, 3136, 15680), 'ERR_GRIP_RANGE',
    'expected an aspect ratio of at most 200 (Qwen2VLImageProcessor\'s largest) for the image\'s width x height but received 2001x10');
  await expectError(() => smartResize(15, 2900, 28, 3136, 15680), 'ERR_GRIP_RANGE',
    'expected sides that keep at least 28 pixels within max_pixels 15680 for the image\'s width x height but received 2900x15 (resized to 1736x0)');
});

test('flattenPatches: each row is (channel, frame, y, x) of one patch, patches in 2x2 merge order', () => {
  // a 3 x 4 x 4 image, patch 2, merge 2, 2 frames: value = channel*100 + y*10 + x
  const chw = new Float32Array(3 * 16);
  for (let c = 0; c < 3; c++) for (let y = 0; y < 4; y++) for (let x = 0; x < 4; x++) chw[c * 16 + y * 4 + x] = c * 100 + y * 10 + x;
  const rows = flattenPatches(chw, 4, 4, { patchSize: 2, temporalPatchSize: 2, mergeSize: 2 });
  assert.is(rows.length, 4 * 24);
  // patch 1 is the top-right 2x2 patch (row 0, column 1 inside the one merged cell)
  assert.equal(Array.from(rows.subarray(24, 32)), [2, 3, 12, 13, 2, 3, 12, 13]);
  // patch 2 is bottom-left; its channel 2 frame 1 block ends the row
  assert.equal(Array.from(rows.subarray(48 + 20, 48 + 24)), [220, 221, 230, 231]);
});

test('parseQwenVLProcessorConfig reads the fixture, and size {shortest_edge, longest_edge} when min/max_pixels are absent', () => {
  assert.is(processor.minPixels, 3136);
  assert.is(processor.maxPixels, 15680);
  assert.equal([processor.patchSize, processor.temporalPatchSize, processor.mergeSize, processor.resample], [14, 2, 2, 3]);
  const { min_pixels: _a, max_pixels: _b, ...rest } = PROCESSOR_JSON;
  const sized = parseQwenVLProcessorConfig({ ...rest, size: { shortest_edge: 1000, longest_edge: 50000 } }, 'p.json');
  assert.equal([sized.minPixels, sized.maxPixels], [1000, 50000]);
  const defaults = parseQwenVLProcessorConfig({}, 'p.json');
  assert.equal([defaults.minPixels, defaults.maxPixels], [3136, 1003520]);
});

const ERRORS: Array<[string, Record<string, unknown>, string, string]> = [
  ['another processor', { image_processor_type: 'CLIPImageProcessor' }, 'ERR_GRIP_UNSUPPORTED',
    'expected "Qwen2VLImageProcessor" for image_processor_type in p.json but received "CLIPImageProcessor"'],
  ['a fractional min_pixels', { min_pixels: 3136.5 }, 'ERR_GRIP_FORMAT',
    'expected a positive integer for min_pixels in p.json but received 3136.5'],
  ['a zero patch_size', { patch_size: 0 }, 'ERR_GRIP_RANGE', 'expected a positive integer for patch_size in p.json but received 0'],
  ['a size without longest_edge', { min_pixels: undefined, size: { shortest_edge: 3136 } }, 'ERR_GRIP_FORMAT',
    'expected {"shortest_edge": min pixels, "longest_edge": max pixels} for size in p.json but received {"shortest_edge":3136}'],
  ['max_pixels under min_pixels', { max_pixels: 3000 }, 'ERR_GRIP_RANGE',
    'expected at least 3136 (one 28x28 merged patch, and min_pixels 3136) for max_pixels in p.json but received 3000'],
  ['a CLIP key out of range (checked by the CLIP parser)', { resample: 0 }, 'ERR_GRIP_UNSUPPORTED',
    'expected 2 (bilinear) or 3 (bicubic) for resample in p.json but received 0 (nearest)'],
];
for (const [name, patch, code, message] of ERRORS) {
  test(`parseQwenVLProcessorConfig refuses ${name}`, async () => {
    await expectError(() => parseQwenVLProcessorConfig({ ...PROCESSOR_JSON, ...patch }, 'p.json'), code, message);
  });
}

test.run();
