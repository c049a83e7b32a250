// processor.test.ts — the CLIP image processor against transformers'
// arithmetic: exact rescale/normalise values and channel order, the
// resize-shortest-edge + center-crop geometry (which pixels land where),
// colour conversions, input kinds, PIL's bicubic resampler (an independent
// port below), and every error with its exact code and message.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deflateSync } from 'node:zlib';
import sharp from 'sharp';
import { GripError } from '../../lib/errors.ts';
import type { Tensor } from '../../lib/tensor.ts';
import { loadProcessorConfig, parseProcessorConfig, preprocessImage, type ProcessorConfig } from '../../lib/model/processor.ts';
import { expectError } from '../helpers.ts';

const test = suite('processor');
let root = '';
test.before(async () => {
  root = await mkdtemp(join(tmpdir(), 'grip-processor-'));
});
test.after(async () => {
  await rm(root, { recursive: true, force: true });
});

/** Runs fn (sync throw or rejected Promise) and checks the GripError's code and message. */

/** preprocessor_config.json of llava-hf/llava-1.5-7b-hf. */
const LLAVA_15 = {
  crop_size: { height: 336, width: 336 },
  do_center_crop: true,
  do_convert_rgb: true,
  do_normalize: true,
  do_rescale: true,
  do_resize: true,
  image_mean: [0.48145466, 0.4578275, 0.40821073],
  image_processor_type: 'CLIPImageProcessor',
  image_std: [0.26862954, 0.26130258, 0.27577711],
  processor_class: 'LlavaProcessor',
  resample: 3,
  rescale_factor: 0.00392156862745098,
  size: { shortest_edge: 336 },
};
const WHERE = '/m/preprocessor_config.json';
const llava = parseProcessorConfig(LLAVA_15, WHERE);
/** The resized image itself, as uint8 values: no crop, rescale or normalisation. */
const resizeOnly = (edge: number, resample: 2 | 3 = 3): ProcessorConfig =>
  ({ ...llava, resizeShortestEdge: edge, doCenterCrop: false, doRescale: false, doNormalize: false, resample });

// ---- images ------------------------------------------------------------------------------

type Rgb = [number, number, number];
const RED: Rgb = [255, 0, 0], BLUE: Rgb = [0, 0, 255], WHITE: Rgb = [255, 255, 255], BLACK: Rgb = [0, 0, 0];

/** Raw RGB pixels painted by colourAt(x, y). */
function paint(width: number, height: number, colourAt: (x: number, y: number) => Rgb) {
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) data.set(colourAt(x, y), (y * width + x) * 3);
  return { data, width, height, channels: 3 as const };
}

/** A smooth test card: a ramp per axis and a sinusoid, every channel different. */
const gradient = (width: number, height: number) => paint(width, height, (x, y) => [
  Math.round((255 * x) / (width - 1)), Math.round((255 * y) / (height - 1)), Math.round(127.5 + 127.5 * Math.sin(0.3 * x + 0.2 * y)),
]);

const png = (image: { data: Uint8Array; width: number; height: number; channels: 1 | 3 | 4 }) =>
  sharp(image.data, { raw: { width: image.width, height: image.height, channels: image.channels } }).png().toBuffer();

/** transformers' value for 8-bit v in channel c: float64 rescale to float32, then float32 (x - mean) / std. */
function expected(v: number, c: number, config: ProcessorConfig = llava): number {
  const f = Math.fround;
  return f(f(f(v * config.rescaleFactor) - f(config.imageMean[c]!)) / f(config.imageStd[c]!));
}

/** Pixel (x, y) of a [3, H, W] tensor. */
function pixel(t: Tensor, x: number, y: number): Rgb {
  const [, H, W] = t.shape as [number, number, number];
  const d = t.host as Float32Array;
  return [d[y * W + x]!, d[H * W + y * W + x]!, d[2 * H * W + y * W + x]!];
}

const normalised = (rgb: Rgb): Rgb => [expected(rgb[0], 0), expected(rgb[1], 1), expected(rgb[2], 2)];

/** Columns (or rows) of a [3, H, W] tensor whose every pixel is exactly `rgb`. */
function pureLines(t: Tensor, rgb: Rgb, axis: 'column' | 'row'): number[] {
  const [, H, W] = t.shape as [number, number, number];
  const want = normalised(rgb);
  const lines: number[] = [];
  const [count, along] = axis === 'column' ? [W, H] : [H, W];
  for (let i = 0; i < count; i++) {
    let pure = true;
    for (let j = 0; j < along && pure; j++) {
      const p = axis === 'column' ? pixel(t, i, j) : pixel(t, j, i);
      pure = p[0] === want[0] && p[1] === want[1] && p[2] === want[2];
    }
    if (pure) lines.push(i);
  }
  return lines;
}

const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);

// ---- an independent port of PIL's resampler (Pillow src/libImaging/Resample.c) ---------------

const pilCubic = (x: number) => {
  const a = -0.5;
  x = Math.abs(x);
  return x < 1 ? ((a + 2) * x - (a + 3)) * x * x + 1 : x < 2 ? (((x - 5) * x + 8) * x - 4) * a : 0;
};
const pilLinear = (x: number) => Math.max(0, 1 - Math.abs(x));

/** One pass of PIL's resample along `axis` of an interleaved 3-channel image (8-bit, 22-bit fixed-point weights). */
function pilPass(src: Uint8Array, width: number, height: number, outSize: number, axis: 'x' | 'y', resample: 2 | 3): Uint8Array {
  const inSize = axis === 'x' ? width : height;
  const [filter, support0] = resample === 3 ? [pilCubic, 2] : [pilLinear, 1];
  const scale = inSize / outSize, filterScale = Math.max(1, scale), support = support0 * filterScale;
  const outW = axis === 'x' ? outSize : width, outH = axis === 'x' ? height : outSize;
  const out = new Uint8Array(outW * outH * 3);
  for (let o = 0; o < outSize; o++) {
    const center = (o + 0.5) * scale;
    const lo = Math.max(0, Math.trunc(center - support + 0.5)), hi = Math.min(inSize, Math.trunc(center + support + 0.5));
    const w: number[] = [];
    for (let i = lo; i < hi; i++) w.push(filter((i - center + 0.5) / filterScale));
    const total = w.reduce((a, b) => a + b, 0);
    const k = w.map((v) => (v / total < 0 ? Math.trunc(-0.5 + (v / total) * 2 ** 22) : Math.trunc(0.5 + (v / total) * 2 ** 22)));
    const lines = axis === 'x' ? height : width;
    for (let line = 0; line < lines; line++) {
      for (let c = 0; c < 3; c++) {
        let acc = 2 ** 21;
        for (let i = lo; i < hi; i++) {
          const at = axis === 'x' ? (line * width + i) * 3 + c : (i * width + line) * 3 + c;
          acc += src[at]! * k[i - lo]!;
        }
        const to = axis === 'x' ? (line * outW + o) * 3 + c : (o * outW + line) * 3 + c;
        out[to] = Math.min(255, Math.max(0, Math.floor(acc / 2 ** 22)));
      }
    }
  }
  return out;
}

/** PIL's Image.resize((outW, outH), resample): horizontal pass, then vertical, each only when the size changes. */
function pilResize(src: Uint8Array, width: number, height: number, outW: number, outH: number, resample: 2 | 3 = 3): Uint8Array {
  let data = src;
  if (outW !== width) data = pilPass(data, width, height, outW, 'x', resample);
  if (outH !== height) data = pilPass(data, outW, height, outH, 'y', resample);
  return data;
}

/** Max and mean |a - b| between a [3, H, W] tensor and interleaved RGB. */
function difference(t: Tensor, rgb: Uint8Array): { max: number; mean: number } {
  const [, H, W] = t.shape as [number, number, number];
  const d = t.host as Float32Array;
  let max = 0, sum = 0;
  for (let c = 0; c < 3; c++) {
    for (let i = 0; i < H * W; i++) {
      const diff = Math.abs(d[c * H * W + i]! - rgb[i * 3 + c]!);
      max = Math.max(max, diff);
      sum += diff;
    }
  }
  return { max, mean: sum / (3 * H * W) };
}

// ---- preprocessor_config.json ------------------------------------------------------------------

test('the llava-1.5-7b-hf preprocessor_config.json resolves to every field', () => {
  assert.equal(llava, {
    resizeShortestEdge: 336, cropHeight: 336, cropWidth: 336, doResize: true, doCenterCrop: true, doRescale: true,
    rescaleFactor: 0.00392156862745098, doNormalize: true, imageMean: [0.48145466, 0.4578275, 0.40821073],
    imageStd: [0.26862954, 0.26130258, 0.27577711], doConvertRgb: true, resample: 3,
  });
});

test('integer size and crop_size (the openai/clip-vit-large-patch14-336 spelling) and the CLIPImageProcessor defaults', () => {
  const clip = parseProcessorConfig({ crop_size: 336, size: 336, feature_extractor_type: 'CLIPFeatureExtractor', resample: 2, image_mean: 0.5 }, WHERE);
  assert.is(clip.resizeShortestEdge, 336);
  assert.equal([clip.cropHeight, clip.cropWidth, clip.resample], [336, 336, 2]);
  assert.equal(clip.imageMean, [0.5, 0.5, 0.5]);
  const defaults = parseProcessorConfig({ do_resize: null }, WHERE);
  assert.equal(defaults, { ...llava, resizeShortestEdge: 224, cropHeight: 224, cropWidth: 224, rescaleFactor: 1 / 255 });
});

test('invalid preprocessor_config.json values are ERR_GRIP_FORMAT naming the key and file', async () => {
  const bad = (patch: Record<string, unknown>) => () => parseProcessorConfig({ ...LLAVA_15, ...patch }, WHERE);
  await expectError(() => parseProcessorConfig([1], WHERE), 'ERR_GRIP_FORMAT', `expected a JSON object for ${WHERE} but received an array`);
  await expectError(bad({ size: { shortest_edge: 0 } }), 'ERR_GRIP_FORMAT', `expected a positive integer up to 16384 for size.shortest_edge in ${WHERE} but received 0`);
  await expectError(bad({ size: 33.5 }), 'ERR_GRIP_FORMAT', `expected a positive integer up to 16384 for size in ${WHERE} but received 33.5`);
  await expectError(bad({ size: { longest_edge: 10 } }), 'ERR_GRIP_FORMAT', `expected an integer or {"shortest_edge": N} for size in ${WHERE} but received {"longest_edge":10}`);
  await expectError(bad({ crop_size: { height: 336 } }), 'ERR_GRIP_FORMAT', `expected a positive integer up to 16384 for crop_size.width in ${WHERE} but received undefined`);
  await expectError(bad({ image_std: [0.2, 0, 0.3] }), 'ERR_GRIP_FORMAT', `expected 3 finite positive numbers (one per RGB channel) for image_std in ${WHERE} but received [0.2, 0, 0.3]`);
  await expectError(bad({ image_mean: [0.5, 0.5] }), 'ERR_GRIP_FORMAT', `expected 3 finite numbers (one per RGB channel) for image_mean in ${WHERE} but received [0.5, 0.5]`);
  await expectError(bad({ rescale_factor: '1/255' }), 'ERR_GRIP_FORMAT', `expected a positive finite number for rescale_factor in ${WHERE} but received "1/255"`);
  await expectError(bad({ do_resize: 'yes' }), 'ERR_GRIP_FORMAT', `expected true or false for do_resize in ${WHERE} but received "yes"`);
  await expectError(bad({ resample: 7 }), 'ERR_GRIP_FORMAT', `expected a PIL resampling filter (an integer in [0, 5]) for resample in ${WHERE} but received 7`);
});

test('processors and filters this runtime lacks are ERR_GRIP_UNSUPPORTED', async () => {
  const bad = (patch: Record<string, unknown>) => () => parseProcessorConfig({ ...LLAVA_15, ...patch }, WHERE);
  await expectError(bad({ resample: 1 }), 'ERR_GRIP_UNSUPPORTED', `expected 2 (bilinear) or 3 (bicubic) for resample in ${WHERE} but received 1 (lanczos)`);
  await expectError(bad({ resample: 0 }), 'ERR_GRIP_UNSUPPORTED', `expected 2 (bilinear) or 3 (bicubic) for resample in ${WHERE} but received 0 (nearest)`);
  await expectError(bad({ image_processor_type: 'LlavaNextImageProcessor', image_grid_pinpoints: [[336, 672]] }), 'ERR_GRIP_UNSUPPORTED',
    `expected "CLIPImageProcessor" for image_processor_type in ${WHERE} but received "LlavaNextImageProcessor"`);
  await expectError(bad({ image_grid_pinpoints: [[336, 672], [672, 336]] }), 'ERR_GRIP_UNSUPPORTED',
    `expected no image_grid_pinpoints (LLaVA-NeXT tiling is not supported) for image_grid_pinpoints in ${WHERE} but received [[336, 672], [672, 336]]`);
  await expectError(bad({ size: { height: 336, width: 336 } }), 'ERR_GRIP_UNSUPPORTED',
    `expected {"shortest_edge": N} (a fixed height x width resize is not supported) for size in ${WHERE} but received {"height":336,"width":336}`);
  await expectError(() => parseProcessorConfig({ feature_extractor_type: 'ViTFeatureExtractor' }, WHERE), 'ERR_GRIP_UNSUPPORTED',
    `expected "CLIPFeatureExtractor" for feature_extractor_type in ${WHERE} but received "ViTFeatureExtractor"`);
});

test('loadProcessorConfig reads <dir>/preprocessor_config.json; a missing file is ERR_GRIP_IO, bad JSON ERR_GRIP_FORMAT', async () => {
  await writeFile(join(root, 'preprocessor_config.json'), JSON.stringify(LLAVA_15));
  assert.equal(await loadProcessorConfig(root), llava);
  const missing = join(root, 'nothing-here');
  await expectError(() => loadProcessorConfig(missing), 'ERR_GRIP_IO',
    `expected a readable preprocessor_config.json for ${join(missing, 'preprocessor_config.json')} but received ENOENT: no such file or directory`);
  const broken = await mkdtemp(join(root, 'broken-'));
  await writeFile(join(broken, 'preprocessor_config.json'), '{ "size": 336,');
  await expectError(() => loadProcessorConfig(broken), 'ERR_GRIP_FORMAT',
    `expected a JSON object for ${join(broken, 'preprocessor_config.json')} but received invalid JSON starting "{ \\"size\\": 336,"`);
});

// ---- values and geometry --------------------------------------------------------------------------

test('a solid colour gives exactly (c/255 - mean)/std in every pixel, channels in RGB order', async () => {
  const colour: Rgb = [200, 100, 50];
  const t = await preprocessImage(await png(paint(500, 375, () => colour)), llava);
  assert.equal(t.shape, [3, 336, 336]);
  assert.is(t.dtype, 'f32');
  const d = t.host as Float32Array;
  for (let c = 0; c < 3; c++) {
    const want = expected(colour[c]!, c);
    const wrong = d.subarray(c * 336 * 336, (c + 1) * 336 * 336).findIndex((v) => v !== want);
    assert.is(wrong, -1, `channel ${c}: pixel ${wrong} is ${d[c * 336 * 336 + wrong]}, expected ${want}`);
  }
  // By hand: (200/255 - 0.48145466) / 0.26862954 = 1.127423, and so on.
  assert.equal(pixel(t, 0, 0).map((v) => v.toFixed(6)), ['1.127423', '-0.251320', '-0.769216']);
});

test('upsampling: the shortest edge becomes 336, the long side int(336 * long / short), and the centre is cut out', async () => {
  // 300x100 -> 1008x336; the crop starts at x = (1008 - 336) // 2 = 336, so the
  // red|blue edge at x = 130 (1008/300 * 130 = 436.8 resized) lands near crop x = 100.8.
  const t = await preprocessImage(paint(300, 100, (x) => (x < 130 ? RED : BLUE)), llava);
  assert.equal(t.shape, [3, 336, 336]);
  // Bicubic taps reach 2 source pixels (6.7 resized pixels) each side of the edge; its
  // overshoot is clipped, so the colours stay pure up to 2 pixels from the edge.
  assert.equal(pureLines(t, RED, 'column'), range(0, 99));
  assert.equal(pureLines(t, BLUE, 'column'), range(102, 336));
  const redAt = (x: number) => pixel(t, x, 0)[0];
  assert.ok(redAt(100) > expected(127, 0) && redAt(101) < expected(128, 0), `the edge lies between crop x 100 and 101: ${redAt(100)}, ${redAt(101)}`);

  // 100x250 -> 336x840; the crop starts at y = 252 and the white|black edge at y = 100 (336 resized) lands at crop y = 84.
  const v = await preprocessImage(paint(100, 250, (_, y) => (y < 100 ? WHITE : BLACK)), llava);
  assert.equal(pureLines(v, WHITE, 'row'), range(0, 82)); // rows 82..85: 247, 174, 81, 8 (half way at 83.5)
  assert.equal(pureLines(v, BLACK, 'row'), range(86, 336));
});

test('downsampling: the same geometry through sharp', async () => {
  // 1000x600 -> 560x336; crop x from 112; the edge at x = 400 (224 resized) lands at crop x = 112.
  const t = await preprocessImage(paint(1000, 600, (x) => (x < 400 ? RED : BLUE)), llava);
  assert.equal(t.shape, [3, 336, 336]);
  assert.equal(pureLines(t, RED, 'column'), range(0, 111)); // columns 111, 112: 239 and 16 red (half way at 111.5)
  assert.equal(pureLines(t, BLUE, 'column'), range(113, 336));
  // 600x1500 -> 336x840; crop y from 252; the edge at y = 600 (336 resized) lands at crop y = 84.
  const v = await preprocessImage(paint(600, 1500, (_, y) => (y < 600 ? WHITE : BLACK)), llava);
  assert.equal(pureLines(v, WHITE, 'row'), range(0, 83));
  assert.equal(pureLines(v, BLACK, 'row'), range(85, 336));
});

test('an odd margin is cut as (size - crop) // 2 before and the rest after', async () => {
  // No resize (the short side is already 336), so each source column maps to one output column.
  const marked = (width: number, height: number) => paint(width, height, (x, y) => [x % 256, y % 256, x === 0 || y === 0 ? 255 : 0]);
  const wide = await preprocessImage(marked(339, 336), llava); // left = (339 - 336) // 2 = 1
  assert.equal(pixel(wide, 0, 5), normalised([1, 5, 0]));
  assert.equal(pixel(wide, 335, 5), normalised([336 % 256, 5, 0]));
  const tall = await preprocessImage(marked(336, 338), llava); // top = 1
  assert.equal(pixel(tall, 7, 0), normalised([7, 1, 0]));
  assert.equal(pixel(tall, 7, 335), normalised([7, 336 % 256, 0]));
});

test('a crop larger than the resized image is padded with zeros (before normalisation), ceil((crop - size) / 2) before', async () => {
  const config = { ...llava, resizeShortestEdge: 224, cropHeight: 337, cropWidth: 336 };
  const t = await preprocessImage(paint(300, 200, () => RED), config); // -> 336x224 inside 336x337
  assert.equal(t.shape, [3, 337, 336]);
  assert.equal(pureLines(t, BLACK, 'row'), [...range(0, 57), ...range(281, 337)]); // 113 rows: 57 before, 56 after
  assert.equal(pureLines(t, RED, 'row'), range(57, 281));
  // Without resize a 2x3 image sits at columns 167..168 ((336 - 2) / 2 before) and rows 167..169 (ceil(333 / 2) before).
  const tiny = await preprocessImage(paint(2, 3, () => WHITE), { ...llava, doResize: false });
  const white: number[][] = [];
  for (let y = 0; y < 336; y++) for (let x = 0; x < 336; x++) if (pixel(tiny, x, y)[0] === normalised(WHITE)[0]) white.push([x, y]);
  assert.equal(white, [[167, 167], [168, 167], [167, 168], [168, 168], [167, 169], [168, 169]]);
  assert.equal(pixel(tiny, 0, 0), normalised(BLACK));
});

test('do_center_crop false keeps the resized size', async () => {
  const t = await preprocessImage(paint(500, 333, () => RED), { ...llava, doCenterCrop: false });
  assert.equal(t.shape, [3, 336, 504]); // int(336 * 500 / 333) = int(504.5)
});

// ---- colour conversions and input kinds ----------------------------------------------------------------

test('greyscale is repeated into R, G and B', async () => {
  const rgb = gradient(40, 30);
  const grey = new Uint8Array(40 * 30).map((_, i) => rgb.data[i * 3]!);
  const fromRgb = await preprocessImage(paint(40, 30, (x, y) => { const v = grey[y * 40 + x]!; return [v, v, v]; }), llava);
  const fromRaw = await preprocessImage({ data: grey, width: 40, height: 30, channels: 1 }, llava);
  const greyPng = await sharp(grey, { raw: { width: 40, height: 30, channels: 1 } }).toColourspace('b-w').png().toBuffer();
  assert.is((await sharp(greyPng).metadata()).channels, 1);
  const fromPng = await preprocessImage(greyPng, llava);
  assert.equal(Array.from(fromRaw.host), Array.from(fromRgb.host));
  assert.equal(Array.from(fromPng.host), Array.from(fromRgb.host));
});

test('alpha is dropped, not composited (PIL convert("RGB")): a transparent pixel keeps its colour', async () => {
  const rgb = gradient(50, 40);
  const rgba = new Uint8Array(50 * 40 * 4);
  for (let p = 0; p < 50 * 40; p++) {
    rgba.set(rgb.data.subarray(p * 3, p * 3 + 3), p * 4);
    rgba[p * 4 + 3] = p % 3 === 0 ? 0 : (p * 37) % 256;
  }
  const want = Array.from((await preprocessImage(rgb, llava)).host);
  assert.equal(Array.from((await preprocessImage({ data: rgba, width: 50, height: 40, channels: 4 }, llava)).host), want);
  const encoded = await png({ data: rgba, width: 50, height: 40, channels: 4 });
  assert.is((await sharp(encoded).metadata()).channels, 4);
  assert.equal(Array.from((await preprocessImage(encoded, llava)).host), want);
});

test('a 1x1 image fills the crop with its colour', async () => {
  const t = await preprocessImage(await png(paint(1, 1, () => [12, 34, 56])), llava);
  assert.equal(t.shape, [3, 336, 336]);
  assert.equal(pureLines(t, [12, 34, 56], 'row').length, 336);
});

test('extreme aspect ratios (4000x3, 3x4000) are resized and cropped without building the whole resized image', async () => {
  // 4000x3 -> 448000x336, crop x from 223832: the red|blue edge at x = 2000 (224000) is crop x 167.5, the middle.
  const started = performance.now();
  const bytes = { ...llava, doRescale: false, doNormalize: false };
  const t = await preprocessImage(paint(4000, 3, (x) => (x < 2000 ? RED : BLUE)), bytes);
  assert.equal(t.shape, [3, 336, 336]);
  for (let x = 0; x < 336; x++) {
    const p = pixel(t, x, 100), mirror = pixel(t, 335 - x, 200);
    assert.is(p[0], mirror[2], `red at x ${x} mirrors blue at ${335 - x}`);
    assert.ok(x < 168 ? p[0] > p[2] : p[2] > p[0], `x ${x} leans ${x < 168 ? 'red' : 'blue'}`);
  }
  const tall = await preprocessImage(paint(3, 4000, (_, y) => (y < 2000 ? WHITE : BLACK)), bytes);
  assert.equal(tall.shape, [3, 336, 336]);
  assert.ok(pixel(tall, 5, 0)[0] > pixel(tall, 5, 335)[0]);
  assert.ok(performance.now() - started < 2000, `took ${performance.now() - started} ms`);
});

test('path, Buffer, Uint8Array view and raw input give the same pixel values', async () => {
  const raw = gradient(64, 48);
  const encoded = await png(raw);
  const path = join(root, 'card.png');
  await writeFile(path, encoded);
  const offset = new Uint8Array(encoded.length + 5);
  offset.set(encoded, 5);
  const want = Array.from((await preprocessImage(raw, llava)).host);
  assert.equal(Array.from((await preprocessImage(encoded, llava)).host), want, 'Buffer');
  assert.equal(Array.from((await preprocessImage(offset.subarray(5), llava)).host), want, 'Uint8Array view');
  assert.equal(Array.from((await preprocessImage(path, llava)).host), want, 'path');
  const clamped = new Uint8ClampedArray(raw.data);
  assert.equal(Array.from((await preprocessImage({ ...raw, data: clamped }, llava)).host), want, 'Uint8ClampedArray');
});

test('EXIF orientation is not applied (PIL does not apply it either)', async () => {
  const card = paint(400, 200, (x) => (x < 200 ? RED : BLUE));
  const jpeg = await sharp(card.data, { raw: { width: 400, height: 200, channels: 3 } }).jpeg({ quality: 100 }).withMetadata({ orientation: 6 }).toBuffer();
  assert.is((await sharp(jpeg).metadata()).orientation, 6);
  const t = await preprocessImage(jpeg, { ...llava, doRescale: false, doNormalize: false });
  // Stored landscape, red left: so it stays (rotated, red would be on top).
  assert.ok(pixel(t, 10, 168)[0] > 200 && pixel(t, 10, 168)[2] < 50, `left ${pixel(t, 10, 168)}`);
  assert.ok(pixel(t, 325, 168)[2] > 200 && pixel(t, 325, 168)[0] < 50, `right ${pixel(t, 325, 168)}`);
});

test('an animated GIF gives its first frame', async () => {
  const frames = new Uint8Array(8 * 8 * 4 * 2);
  for (let p = 0; p < 128; p++) frames.set(p < 64 ? [255, 0, 0, 255] : [0, 0, 255, 255], p * 4);
  const gif = await sharp(frames, { raw: { width: 8, height: 16, channels: 4, pageHeight: 8 } }).gif().toBuffer();
  assert.is((await sharp(gif).metadata()).pages, 2);
  const t = await preprocessImage(gif, llava);
  assert.equal(pureLines(t, RED, 'row').length, 336);
});

// ---- PIL's resampler ---------------------------------------------------------------------------------------

test('resizing matches PIL bicubic: exactly when upsampling, within measured bounds when sharp downsamples', async () => {
  // Upsampling runs the PIL algorithm itself: no difference at all.
  for (const [w, h, edge] of [[30, 20, 45], [40, 30, 336], [7, 5, 16]] as const) {
    const card = gradient(w, h);
    const t = await preprocessImage(card, resizeOnly(edge));
    const [, H, W] = t.shape as [number, number, number];
    assert.equal(difference(t, pilResize(card.data, w, h, W, H)), { max: 0, mean: 0 }, `${w}x${h} -> ${W}x${H}`);
  }
  // Downsampling runs in libvips (sharp kernel 'cubic' = Catmull-Rom = PIL's a = -0.5 cubic, support
  // scaled like PIL's); rounding and edge handling differ. Measured (libvips 8.18, sharp 0.35):
  //   64x48 -> 42x32: max 1, mean 0.11;  640x480 -> 448x336: max 1, mean 0.12;
  //   2000x1500 -> 448x336: max 7, mean 0.53 (past a 4x reduction libvips box-shrinks first).
  const bounds: [number, number, number, number, number][] = [[64, 48, 32, 2, 0.2], [640, 480, 336, 2, 0.2], [2000, 1500, 336, 9, 0.7]];
  for (const [w, h, edge, maxBound, meanBound] of bounds) {
    const card = gradient(w, h);
    const t = await preprocessImage(card, resizeOnly(edge));
    const [, H, W] = t.shape as [number, number, number];
    const { max, mean } = difference(t, pilResize(card.data, w, h, W, H));
    assert.ok(max <= maxBound && mean <= meanBound, `${w}x${h} -> ${W}x${H}: max ${max} (bound ${maxBound}), mean ${mean.toFixed(3)} (bound ${meanBound})`);
  }
});

test('resample 2 matches PIL bilinear the same way', async () => {
  const up = gradient(32, 24);
  const t = await preprocessImage(up, resizeOnly(50, 2));
  assert.equal(difference(t, pilResize(up.data, 32, 24, 66, 50, 2)), { max: 0, mean: 0 });
  // Measured: 64x48 -> 45x34 max 2, mean 0.11 (sharp kernel 'linear').
  const down = gradient(64, 48);
  const d = await preprocessImage(down, resizeOnly(34, 2));
  const { max, mean } = difference(d, pilResize(down.data, 64, 48, 45, 34, 2));
  assert.ok(max <= 3 && mean <= 0.2, `max ${max}, mean ${mean}`);
});

// ---- errors ----------------------------------------------------------------------------------------------------

const IMAGE = 'an image (PNG, JPEG, WebP, GIF, TIFF, AVIF, SVG)';

/** A PNG header claiming width x height, with no pixel data after it. */
function pngHeader(width: number, height: number): Buffer {
  const chunk = (type: string, body: Buffer) => {
    const typed = Buffer.concat([Buffer.from(type, 'latin1'), body]);
    const out = Buffer.alloc(8 + body.length + 4);
    out.writeUInt32BE(body.length, 0);
    typed.copy(out, 4);
    out.writeUInt32BE(crc32(typed), 8 + body.length);
    return out;
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 2, 0, 0, 0], 8); // 8-bit RGB
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(Buffer.alloc(4))), chunk('IEND', Buffer.alloc(0))]);
}

function crc32(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (const b of bytes) {
    crc ^= b;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0xedb88320 : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}

test('bytes that are not an image are ERR_GRIP_FORMAT showing what they were', async () => {
  await expectError(() => preprocessImage(Buffer.from('not an image at all'), llava), 'ERR_GRIP_FORMAT',
    `expected ${IMAGE} for image but received 19 bytes starting 6e 6f 74 20 61 6e 20 69 (Input buffer contains unsupported image format)`);
  await expectError(() => preprocessImage(Buffer.alloc(0), llava), 'ERR_GRIP_FORMAT', `expected ${IMAGE} for image but received an empty buffer`);
  const empty = join(root, 'empty.png');
  await writeFile(empty, '');
  await expectError(() => preprocessImage(empty, llava), 'ERR_GRIP_FORMAT', `expected ${IMAGE} for ${empty} but received an empty file`);
  const noise = paint(64, 64, (x, y) => [(x * 97 + y * 31) % 256, (x * y) % 256, (x ^ y) % 256]);
  const whole = await png(noise);
  const cut = whole.subarray(0, whole.length >> 1);
  await expectError(() => preprocessImage(cut, llava), 'ERR_GRIP_FORMAT',
    new RegExp(`^expected an image \\(PNG, JPEG, WebP, GIF, TIFF, AVIF, SVG\\) for image but received ${cut.length} bytes starting 89 50 4e 47 0d 0a 1a 0a that fail to decode \\(.+\\)$`));
  await expectError(() => preprocessImage(42 as never, llava), 'ERR_GRIP_FORMAT',
    'expected a path, encoded image bytes (Buffer or Uint8Array) or raw pixels {data, width, height, channels} for image but received number 42');
});

test('a missing file is ERR_GRIP_IO naming the path', async () => {
  const missing = join(root, 'missing.png');
  await expectError(() => preprocessImage(missing, llava), 'ERR_GRIP_IO', `expected a readable image file for ${missing} but received ENOENT: no such file or directory`);
});

test('raw pixels that do not fit their size are ERR_GRIP_SHAPE (ERR_GRIP_DTYPE when not 8-bit)', async () => {
  await expectError(() => preprocessImage({ data: new Uint8Array(11), width: 2, height: 2, channels: 3 }, llava), 'ERR_GRIP_SHAPE',
    'expected 12 bytes (2x2x3) for image.data but received 11');
  await expectError(() => preprocessImage({ data: new Uint8Array(8), width: 2, height: 2, channels: 2 as never }, llava), 'ERR_GRIP_SHAPE',
    'expected 1, 3 or 4 for image.channels but received number 2');
  await expectError(() => preprocessImage({ data: new Uint8Array(0), width: 0, height: 2, channels: 3 }, llava), 'ERR_GRIP_SHAPE',
    'expected a positive integer for image.width but received number 0');
  await expectError(() => preprocessImage({ data: new Float32Array(12) as never, width: 2, height: 2, channels: 3 }, llava), 'ERR_GRIP_DTYPE',
    'expected a Uint8Array or Uint8ClampedArray for image.data but received Float32Array');
});

test('more pixels than limitInputPixels is ERR_GRIP_RANGE naming the size, refused from the header alone', async () => {
  await expectError(() => preprocessImage(pngHeader(20000, 20000), llava), 'ERR_GRIP_RANGE',
    'expected at most 268402689 pixels (limitInputPixels) for image but received 20000x20000 (400000000 pixels)');
  const small = await png(paint(20, 20, () => RED));
  await expectError(() => preprocessImage(small, llava, { limitInputPixels: 399 }), 'ERR_GRIP_RANGE',
    'expected at most 399 pixels (limitInputPixels) for image but received 20x20 (400 pixels)');
  await expectError(() => preprocessImage(paint(20, 20, () => RED), llava, { limitInputPixels: 399 }), 'ERR_GRIP_RANGE',
    'expected at most 399 pixels (limitInputPixels) for image but received 20x20 (400 pixels)');
  assert.equal((await preprocessImage(small, llava, { limitInputPixels: 400 })).shape, [3, 336, 336]);
  await expectError(() => preprocessImage(small, llava, { limitInputPixels: 0 }), 'ERR_GRIP_RANGE',
    'expected an integer in [1, 9007199254740991] for options.limitInputPixels but received number 0');
});

test('an aborted signal rejects with its reason', async () => {
  const controller = new AbortController();
  controller.abort();
  const error = await preprocessImage(paint(4, 4, () => RED), llava, { signal: controller.signal }).then(() => null, (e: unknown) => e);
  assert.is((error as Error).name, 'AbortError');
});

test.run();
