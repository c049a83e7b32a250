// processor.ts — the CLIP image processor of LLaVA-1.5 (transformers'
// CLIPImageProcessor, the slow PIL one): image -> RGB -> resize the shortest
// edge -> center crop -> rescale -> normalise -> f32 pixel values [3, H, W].
//
// Decoding and downsampling run in sharp (libvips, off the event loop).
// Upsampling runs here, exactly as PIL's bicubic/bilinear resampler does it
// (fixed-point, horizontal pass then vertical), over the crop window only:
// sharp's upsampler is not centre-aligned like PIL's (it shifts the image by
// up to half an output pixel; a 1.5x bicubic upsample differed from PIL by 96
// levels on noise), while a window of the crop size costs a few milliseconds.
//
// Differences from transformers that remain, by choice:
// - Downsampling by sharp's 'cubic' kernel (Catmull-Rom, which is PIL's
//   bicubic a = -0.5, support scaled with the factor as in PIL) differs from
//   PIL by rounding, edge handling and, past about a 4x reduction, libvips'
//   box pre-shrink. Against Pillow 9.4, 640x480 -> 448x336: max 1 level (of
//   255) on a gradient, max 6 (mean 0.4) on noise; 2000x1500 -> 448x336
//   gradient: max 7 (mean 0.5); after normalisation at most 0.09. Upsampled
//   images match Pillow + transformers' crop/normalise bit for bit.
// - ICC profiles are ignored, as PIL does; EXIF orientation is not applied, as
//   PIL does not (an image shot in portrait may arrive lying on its side).
// - Alpha is dropped, not composited (PIL's convert('RGB')): a transparent
//   pixel shows its stored colour. 16-bit images are scaled to 8 bits (PIL
//   would clip them); CMYK is converted with a profile (PIL uses a naive formula).
// - Images are always converted to RGB (do_convert_rgb is kept but the vision
//   tower needs 3 channels); animated images give their first frame.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { GripError } from '../errors.js';
import { Tensor, describe } from '../tensor.js';
import { check } from '../validate.js';
import { ioError, isRecord, jsonText, readJsonFile } from '../json.js';

/** preprocessor_config.json, resolved (CLIPImageProcessor's defaults filled in). */
export interface ProcessorConfig {
  /** size.shortest_edge: the image is resized so that its shorter side has this length. */
  resizeShortestEdge: number;
  cropHeight: number;
  cropWidth: number;
  doResize: boolean;
  doCenterCrop: boolean;
  doRescale: boolean;
  rescaleFactor: number;
  doNormalize: boolean;
  imageMean: [number, number, number];
  imageStd: [number, number, number];
  doConvertRgb: boolean;
  /** PIL's resampling filter: 2 bilinear, 3 bicubic. */
  resample: 2 | 3;
}

/** Raw 8-bit pixels, row-major, channels interleaved (1 grey, 3 RGB, 4 RGBA). */
export interface RawImage {
  data: Uint8Array | Uint8ClampedArray;
  width: number;
  height: number;
  channels: 1 | 3 | 4;
}

/** A path, encoded bytes (PNG, JPEG, WebP, GIF, TIFF, AVIF, SVG), or raw pixels. */
export type ImageInput = string | Buffer | Uint8Array | RawImage;

export interface PreprocessOptions {
  signal?: AbortSignal | undefined;
  /** Largest width x height accepted (sharp's limitInputPixels); default 268402689 (16383^2). */
  limitInputPixels?: number | undefined;
}

/** sharp's default limitInputPixels. */
export const DEFAULT_LIMIT_INPUT_PIXELS = 0x3fff * 0x3fff;

export const PROCESSOR_CONFIG_FILE = 'preprocessor_config.json';

// transformers' CLIPImageProcessor defaults (OPENAI_CLIP_MEAN / OPENAI_CLIP_STD).
const CLIP_MEAN: [number, number, number] = [0.48145466, 0.4578275, 0.40821073];
const CLIP_STD: [number, number, number] = [0.26862954, 0.26130258, 0.27577711];
const MAX_SIZE = 16384;
const SUPPORTED_TYPES = ['CLIPImageProcessor', 'CLIPImageProcessorFast'];
const SUPPORTED_FEATURE_EXTRACTORS = ['CLIPFeatureExtractor'];
const PIL_FILTERS: Record<number, string> = { 0: 'nearest', 1: 'lanczos', 2: 'bilinear', 3: 'bicubic', 4: 'box', 5: 'hamming' };
const FORMATS = 'an image (PNG, JPEG, WebP, GIF, TIFF, AVIF, SVG)';


// ---- preprocessor_config.json ---------------------------------------------------------

/**
 * Resolves a parsed preprocessor_config.json; `where` (its path) is named in
 * every error. Invalid values are ERR_GRIP_FORMAT; valid choices this runtime
 * lacks (another processor, LLaVA-NeXT tiling, a filter other than bilinear
 * or bicubic, a fixed height x width resize) are ERR_GRIP_UNSUPPORTED.
 */
export function parseProcessorConfig(json: unknown, where: string): ProcessorConfig {
  if (!isRecord(json)) throw new GripError('ERR_GRIP_FORMAT', `expected a JSON object for ${where} but received ${describe(json)}`);
  // null means "the default" in Hugging Face configs.
  const get = (key: string): unknown => (json[key] === null ? undefined : json[key]);
  function fail(code: GripError['code'], expected: string, key: string, value: unknown): never {
    throw new GripError(code, `expected ${expected} for ${key} in ${where} but received ${jsonText(value)}`);
  }

  const type = get('image_processor_type');
  if (type !== undefined && !SUPPORTED_TYPES.includes(type as string)) {
    fail(typeof type === 'string' ? 'ERR_GRIP_UNSUPPORTED' : 'ERR_GRIP_FORMAT', '"CLIPImageProcessor"', 'image_processor_type', type);
  }
  const extractor = get('feature_extractor_type');
  if (type === undefined && extractor !== undefined && !SUPPORTED_FEATURE_EXTRACTORS.includes(extractor as string)) {
    fail(typeof extractor === 'string' ? 'ERR_GRIP_UNSUPPORTED' : 'ERR_GRIP_FORMAT', '"CLIPFeatureExtractor"', 'feature_extractor_type', extractor);
  }
  if (get('image_grid_pinpoints') !== undefined) {
    fail('ERR_GRIP_UNSUPPORTED', 'no image_grid_pinpoints (LLaVA-NeXT tiling is not supported)', 'image_grid_pinpoints', get('image_grid_pinpoints'));
  }

  const size = (value: unknown, key: string): number => {
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > MAX_SIZE) {
      fail('ERR_GRIP_FORMAT', `a positive integer up to ${MAX_SIZE}`, key, value);
    }
    return value as number;
  };
  const bool = (key: string): boolean => {
    const value = get(key) ?? true;
    if (typeof value !== 'boolean') fail('ERR_GRIP_FORMAT', 'true or false', key, value);
    return value as boolean;
  };
  const triple = (key: string, fallback: [number, number, number], positive: boolean): [number, number, number] => {
    const value = get(key) ?? fallback;
    const list = typeof value === 'number' ? [value, value, value] : value;
    const ok = (v: unknown) => typeof v === 'number' && Number.isFinite(v) && (!positive || v > 0);
    if (!Array.isArray(list) || list.length !== 3 || !list.every(ok)) {
      fail('ERR_GRIP_FORMAT', `3 finite ${positive ? 'positive ' : ''}numbers (one per RGB channel)`, key, value);
    }
    return [...(list as number[])] as [number, number, number];
  };

  // size: an int (the shortest edge, as CLIPImageProcessor reads it) or {shortest_edge}.
  const sizeJson = get('size') ?? 224;
  let resizeShortestEdge: number;
  if (isRecord(sizeJson) && sizeJson.shortest_edge !== undefined) resizeShortestEdge = size(sizeJson.shortest_edge, 'size.shortest_edge');
  else if (isRecord(sizeJson) && sizeJson.height !== undefined && sizeJson.width !== undefined) {
    resizeShortestEdge = fail('ERR_GRIP_UNSUPPORTED', '{"shortest_edge": N} (a fixed height x width resize is not supported)', 'size', sizeJson);
  } else if (isRecord(sizeJson)) resizeShortestEdge = fail('ERR_GRIP_FORMAT', 'an integer or {"shortest_edge": N}', 'size', sizeJson);
  else resizeShortestEdge = size(sizeJson, 'size');

  const cropJson = get('crop_size') ?? 224;
  let cropHeight: number, cropWidth: number;
  if (isRecord(cropJson)) {
    cropHeight = size(cropJson.height, 'crop_size.height');
    cropWidth = size(cropJson.width, 'crop_size.width');
  } else cropHeight = cropWidth = size(cropJson, 'crop_size');

  const rescaleFactor = get('rescale_factor') ?? 1 / 255;
  if (typeof rescaleFactor !== 'number' || !Number.isFinite(rescaleFactor) || rescaleFactor <= 0) {
    fail('ERR_GRIP_FORMAT', 'a positive finite number', 'rescale_factor', rescaleFactor);
  }

  const resample = get('resample') ?? 3;
  if (typeof resample !== 'number' || !Number.isInteger(resample) || !(resample in PIL_FILTERS)) {
    fail('ERR_GRIP_FORMAT', 'a PIL resampling filter (an integer in [0, 5])', 'resample', resample);
  }
  if (resample !== 2 && resample !== 3) {
    throw new GripError('ERR_GRIP_UNSUPPORTED',
      `expected 2 (bilinear) or 3 (bicubic) for resample in ${where} but received ${resample} (${PIL_FILTERS[resample as number]})`);
  }

  return {
    resizeShortestEdge,
    cropHeight,
    cropWidth,
    doResize: bool('do_resize'),
    doCenterCrop: bool('do_center_crop'),
    doRescale: bool('do_rescale'),
    rescaleFactor: rescaleFactor as number,
    doNormalize: bool('do_normalize'),
    imageMean: triple('image_mean', CLIP_MEAN, false),
    imageStd: triple('image_std', CLIP_STD, true),
    doConvertRgb: bool('do_convert_rgb'),
    resample,
  };
}

/**
 * A model's processor when it is CLIP's (LLaVA, LLaVA-NeXT): the pictures of
 * kept patches (demo, compare) draw the square crop it makes. Qwen2-VL's has
 * no crop: ERR_GRIP_UNSUPPORTED, naming `what`.
 */
export function clipProcessorOf(processor: object, what: string): ProcessorConfig {
  if (!('cropHeight' in processor)) {
    throw new GripError('ERR_GRIP_UNSUPPORTED', `expected a model with CLIP's image processor (LLaVA, LLaVA-NeXT) for ${what} but received one without a crop (Qwen2-VL's)`);
  }
  return processor as ProcessorConfig;
}

/** The original image's [height, width] that must come with preprocessed pixelValues (families whose token count follows the image). */
export function checkImageSize(size: unknown, what: string): [number, number] {
  if (!Array.isArray(size) || size.length !== 2 || !size.every((v) => Number.isInteger(v) && v >= 1)) {
    return check.fail('ERR_GRIP_RANGE', 'the original image\'s [height, width] (positive integers) with pixelValues', `${what}.imageSize`, jsonText(size ?? null));
  }
  return [size[0], size[1]];
}

/** Reads and resolves `<dir>/preprocessor_config.json`. */
export async function loadProcessorConfig(dir: string): Promise<ProcessorConfig> {
  const path = join(dir, PROCESSOR_CONFIG_FILE);
  return parseProcessorConfig(await readJsonFile(path, PROCESSOR_CONFIG_FILE), path);
}

// ---- the image pipeline ----------------------------------------------------------------

/** 8-bit RGB, row-major, interleaved. */
export interface RgbImage {
  data: Uint8Array;
  width: number;
  height: number;
}

/** Where the crop takes its pixels from, along one axis of the resized image. */
interface AxisWindow {
  /** First resized pixel taken. */
  start: number;
  /** Pixels taken (the rest of the output is zero padding). */
  length: number;
  /** Where they land in the output. */
  offset: number;
  /** Output extent. */
  out: number;
}

/**
 * Pixel values [3, H, W] f32 (H x W = the crop size, or the resized size
 * when do_center_crop is false) of one image, as transformers'
 * CLIPImageProcessor computes them (see the file comment for the differences).
 *
 * Errors: a missing or unreadable file is ERR_GRIP_IO; bytes that are not a
 * decodable image ERR_GRIP_FORMAT; raw pixels whose length or channels do not
 * fit ERR_GRIP_SHAPE (ERR_GRIP_DTYPE for data that is not 8-bit); more pixels
 * than `limitInputPixels` ERR_GRIP_RANGE. An aborted signal rejects with its reason.
 */
export async function preprocessImage(image: ImageInput, config: ProcessorConfig, options: PreprocessOptions = {}): Promise<Tensor> {
  const { signal } = options;
  const rgb = await readRgb(image, options);

  // transformers' get_resize_output_image_size(default_to_square=False): the
  // long side is int(shortest_edge * long / short), truncated.
  let resizedWidth = rgb.width, resizedHeight = rgb.height;
  if (config.doResize) {
    const edge = config.resizeShortestEdge;
    if (rgb.width <= rgb.height) {
      resizedWidth = edge;
      resizedHeight = Math.floor((edge * rgb.height) / rgb.width);
    } else {
      resizedHeight = edge;
      resizedWidth = Math.floor((edge * rgb.width) / rgb.height);
    }
  }
  const columns = cropAxis(resizedWidth, config.doCenterCrop ? config.cropWidth : resizedWidth);
  const rows = cropAxis(resizedHeight, config.doCenterCrop ? config.cropHeight : resizedHeight);

  let window: Uint8Array;
  if (resizedWidth === rgb.width && resizedHeight === rgb.height) window = extractWindow(rgb, columns, rows);
  else if (resizedWidth <= rgb.width && resizedHeight <= rgb.height) {
    window = await downsampleWindow(rgb, resizedWidth, resizedHeight, columns, rows, config.resample);
  } else window = upsampleWindow(rgb, resizedWidth, resizedHeight, columns, rows, config.resample);
  signal?.throwIfAborted();

  return normalise(window, columns, rows, config);
}

/**
 * The image as 8-bit RGB (decoded, or raw pixels checked), with
 * preprocessImage's errors. Other processors (LLaVA-NeXT's anyres tiling)
 * start here and reuse resizeRgb / rgbPixelValues.
 */
export async function readRgb(image: ImageInput, options: PreprocessOptions = {}): Promise<RgbImage> {
  const { signal } = options;
  check.signal(signal, 'options.signal');
  const limit = options.limitInputPixels ?? DEFAULT_LIMIT_INPUT_PIXELS;
  check.integer(limit, 'options.limitInputPixels', 1, Number.MAX_SAFE_INTEGER);
  signal?.throwIfAborted();
  const rgb = isRawImage(image) ? rawToRgb(image, limit) : await decode(image, limit);
  signal?.throwIfAborted();
  return rgb;
}

/** PIL's Image.resize((width, height), resample) of the whole image, by the same rule as preprocessImage (sharp down, PIL's own resampler otherwise). */
export async function resizeRgb(rgb: RgbImage, width: number, height: number, resample: 2 | 3): Promise<RgbImage> {
  const columns = cropAxis(width, width), rows = cropAxis(height, height);
  if (width === rgb.width && height === rgb.height) return rgb;
  const data = width <= rgb.width && height <= rgb.height
    ? await downsampleWindow(rgb, width, height, columns, rows, resample)
    : upsampleWindow(rgb, width, height, columns, rows, resample);
  return { data, width, height };
}

/** [3, H, W] f32 pixel values of a whole RGB image: rescaled and normalised as preprocessImage does. */
export function rgbPixelValues(rgb: RgbImage, config: ProcessorConfig): Tensor {
  return normalise(rgb.data, cropAxis(rgb.width, rgb.width), cropAxis(rgb.height, rgb.height), config);
}

function isRawImage(image: unknown): image is RawImage {
  return typeof image === 'object' && image !== null && !(image instanceof Uint8Array) && 'data' in image;
}

/**
 * transformers' center_crop along one axis: start = (size - crop) // 2 when
 * the image is large enough, else the image is centred in zeros with
 * ceil((crop - size) / 2) before it.
 */
function cropAxis(size: number, crop: number): AxisWindow {
  if (size >= crop) return { start: Math.floor((size - crop) / 2), length: crop, offset: 0, out: crop };
  return { start: 0, length: size, offset: Math.ceil((crop - size) / 2), out: crop };
}

function pixelLimitError(width: number, height: number, limit: number, what: string): GripError {
  return new GripError('ERR_GRIP_RANGE',
    `expected at most ${limit} pixels (limitInputPixels) for ${what} but received ${width}x${height} (${width * height} pixels)`);
}

function rawToRgb(image: RawImage, limit: number): RgbImage {
  const { data, width, height, channels } = image;
  for (const [key, value] of [['width', width], ['height', height]] as const) {
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) {
      check.fail('ERR_GRIP_SHAPE', 'a positive integer', `image.${key}`, describe(value));
    }
  }
  if (channels !== 1 && channels !== 3 && channels !== 4) check.fail('ERR_GRIP_SHAPE', '1, 3 or 4', 'image.channels', describe(channels));
  if (!(data instanceof Uint8Array) && !(data instanceof Uint8ClampedArray)) {
    check.fail('ERR_GRIP_DTYPE', 'a Uint8Array or Uint8ClampedArray', 'image.data', describe(data));
  }
  if (width * height > limit) throw pixelLimitError(width, height, limit, 'image');
  const expected = width * height * channels;
  if (data.length !== expected) {
    check.fail('ERR_GRIP_SHAPE', `${expected} bytes (${width}x${height}x${channels})`, 'image.data', `${data.length}`);
  }
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return { data: toRgb(bytes, width * height, channels), width, height };
}

/** Interleaved 1-4 channel pixels as RGB: grey is repeated, alpha dropped (PIL's convert('RGB')). */
function toRgb(data: Uint8Array, pixels: number, channels: number): Uint8Array {
  if (channels === 3) return data;
  const out = new Uint8Array(pixels * 3);
  const grey = channels < 3;
  for (let p = 0, i = 0; p < pixels; p++, i += channels) {
    out[3 * p] = data[i]!;
    out[3 * p + 1] = grey ? data[i]! : data[i + 1]!;
    out[3 * p + 2] = grey ? data[i]! : data[i + 2]!;
  }
  return out;
}

/** "12 bytes starting 6e 6f 74 20": what undecodable input looked like. */
function bytesText(bytes: Uint8Array): string {
  const head = Array.from(bytes.subarray(0, 8), (b) => b.toString(16).padStart(2, '0')).join(' ');
  return `${bytes.length} bytes starting ${head}`;
}

const sharpReason = (error: unknown) => (error instanceof Error ? error.message : String(error)).trim().split('\n')[0];

async function decode(image: string | Uint8Array, limit: number): Promise<RgbImage> {
  let bytes: Buffer;
  let what = 'image';
  if (typeof image === 'string') {
    try {
      bytes = await readFile(image);
    } catch (error) {
      throw ioError(error, 'a readable image file', image);
    }
    what = image;
  } else if (image instanceof Uint8Array) {
    bytes = Buffer.isBuffer(image) ? image : Buffer.from(image.buffer, image.byteOffset, image.byteLength);
  } else {
    throw new GripError('ERR_GRIP_FORMAT',
      `expected a path, encoded image bytes (Buffer or Uint8Array) or raw pixels {data, width, height, channels} for image but received ${describe(image)}`);
  }
  if (bytes.length === 0) {
    throw new GripError('ERR_GRIP_FORMAT', `expected ${FORMATS} for ${what} but received ${typeof image === 'string' ? 'an empty file' : 'an empty buffer'}`);
  }

  // The header first: an oversized image is refused by its size, before any pixel is decoded.
  let width: number, height: number;
  try {
    const meta = await sharp(bytes, { limitInputPixels: false }).metadata();
    width = meta.width ?? 0;
    height = meta.pageHeight ?? meta.height ?? 0;
  } catch (error) {
    throw new GripError('ERR_GRIP_FORMAT', `expected ${FORMATS} for ${what} but received ${bytesText(bytes)} (${sharpReason(error)})`);
  }
  if (width * height > limit) throw pixelLimitError(width, height, limit, what);

  try {
    // failOn 'error': truncated or corrupt data fails (as in PIL), libjpeg's warnings do not.
    const { data, info } = await sharp(bytes, { limitInputPixels: limit, ignoreIcc: true, failOn: 'error' })
      .toColourspace('srgb')
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    return { data: toRgb(data, info.width * info.height, info.channels), width: info.width, height: info.height };
  } catch (error) {
    throw new GripError('ERR_GRIP_FORMAT', `expected ${FORMATS} for ${what} but received ${bytesText(bytes)} that fail to decode (${sharpReason(error)})`);
  }
}

/** The crop window of an image that is not resized. */
function extractWindow(rgb: RgbImage, columns: AxisWindow, rows: AxisWindow): Uint8Array {
  const out = new Uint8Array(columns.length * rows.length * 3);
  for (let y = 0; y < rows.length; y++) {
    const from = ((rows.start + y) * rgb.width + columns.start) * 3;
    out.set(rgb.data.subarray(from, from + columns.length * 3), y * columns.length * 3);
  }
  return out;
}

/** Resize (libvips reduce, centre-aligned like PIL) and cut the window, both in sharp. */
async function downsampleWindow(rgb: RgbImage, width: number, height: number, columns: AxisWindow, rows: AxisWindow, resample: 2 | 3): Promise<Uint8Array> {
  const { data, info } = await sharp(rgb.data, { raw: { width: rgb.width, height: rgb.height, channels: 3 }, limitInputPixels: false })
    .resize(width, height, { kernel: resample === 3 ? 'cubic' : 'linear', fit: 'fill' })
    .extract({ left: columns.start, top: rows.start, width: columns.length, height: rows.length })
    .raw()
    .toBuffer({ resolveWithObject: true });
  if (info.width !== columns.length || info.height !== rows.length || info.channels !== 3) {
    throw new GripError('ERR_GRIP_INTERNAL',
      `expected a ${columns.length}x${rows.length}x3 window for the resized image but received ${info.width}x${info.height}x${info.channels} from sharp`);
  }
  return data;
}

// ---- PIL's resampler (Pillow src/libImaging/Resample.c, 8 bits per channel) ---------------

const PRECISION_BITS = 32 - 8 - 2;
const ONE = 2 ** PRECISION_BITS;

function bicubicFilter(x: number): number {
  const a = -0.5;
  x = Math.abs(x);
  if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
  return 0;
}

function bilinearFilter(x: number): number {
  x = Math.abs(x);
  return x < 1 ? 1 - x : 0;
}

interface Taps {
  /** First input pixel of each output pixel. */
  first: Int32Array;
  /** Number of input pixels of each output pixel. */
  count: Int32Array;
  /** Fixed-point weights, `stride` per output pixel. */
  weights: Float64Array;
  stride: number;
}

/** PIL's precompute_coeffs + normalize_coeffs_8bpc for outputs [start, start + n) of an inSize -> outSize resize. */
function taps(inSize: number, outSize: number, start: number, n: number, resample: 2 | 3): Taps {
  const filter = resample === 3 ? bicubicFilter : bilinearFilter;
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = (resample === 3 ? 2 : 1) * filterScale;
  const stride = Math.ceil(support) * 2 + 1;
  const first = new Int32Array(n), count = new Int32Array(n);
  const weights = new Float64Array(n * stride);
  const raw = new Float64Array(stride);
  for (let i = 0; i < n; i++) {
    const center = (start + i + 0.5) * scale;
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const xmax = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
    let sum = 0;
    for (let x = 0; x < xmax; x++) {
      raw[x] = filter((x + xmin - center + 0.5) / filterScale);
      sum += raw[x]!;
    }
    for (let x = 0; x < xmax; x++) {
      const w = sum !== 0 ? raw[x]! / sum : raw[x]!;
      weights[i * stride + x] = w < 0 ? Math.trunc(-0.5 + w * ONE) : Math.trunc(0.5 + w * ONE);
    }
    first[i] = xmin;
    count[i] = xmax;
  }
  return { first, count, weights, stride };
}

/** A fixed-point sum rounded and clamped to 0..255, as PIL's clip8. */
const clip8 = (sum: number) => Math.min(255, Math.max(0, Math.floor(sum / ONE)));

/**
 * The crop window of PIL's Image.resize((width, height), BICUBIC|BILINEAR)
 * of `rgb`, computed for the window's pixels only (each output pixel depends
 * on its own taps, so this equals resizing everything and cropping).
 */
function upsampleWindow(rgb: RgbImage, width: number, height: number, columns: AxisWindow, rows: AxisWindow, resample: 2 | 3): Uint8Array {
  const W = columns.length, H = rows.length;
  const src = rgb.data, srcWidth = rgb.width;
  const needHorizontal = width !== rgb.width, needVertical = height !== rgb.height;
  const h = needHorizontal ? taps(rgb.width, width, columns.start, W, resample) : null;
  const v = needVertical ? taps(rgb.height, height, rows.start, H, resample) : null;

  // Source rows the vertical pass reads.
  const rowFirst = v ? v.first[0]! : rows.start;
  const rowEnd = v ? v.first[H - 1]! + v.count[H - 1]! : rows.start + H;

  // Horizontal pass over those rows, to 8 bits (PIL keeps an 8-bit intermediate image).
  const mid = new Uint8Array((rowEnd - rowFirst) * W * 3);
  for (let y = rowFirst; y < rowEnd; y++) {
    const rowIn = y * srcWidth * 3, rowOut = (y - rowFirst) * W * 3;
    for (let x = 0; x < W; x++) {
      if (!h) {
        const from = rowIn + (columns.start + x) * 3;
        mid[rowOut + 3 * x] = src[from]!;
        mid[rowOut + 3 * x + 1] = src[from + 1]!;
        mid[rowOut + 3 * x + 2] = src[from + 2]!;
        continue;
      }
      let r = ONE / 2, g = ONE / 2, b = ONE / 2;
      const base = x * h.stride, xmin = h.first[x]!;
      for (let t = 0; t < h.count[x]!; t++) {
        const k = h.weights[base + t]!, p = rowIn + (xmin + t) * 3;
        r += src[p]! * k;
        g += src[p + 1]! * k;
        b += src[p + 2]! * k;
      }
      mid[rowOut + 3 * x] = clip8(r);
      mid[rowOut + 3 * x + 1] = clip8(g);
      mid[rowOut + 3 * x + 2] = clip8(b);
    }
  }
  if (!v) return mid;

  const out = new Uint8Array(H * W * 3);
  for (let y = 0; y < H; y++) {
    const base = y * v.stride, ymin = v.first[y]! - rowFirst;
    for (let x = 0; x < W; x++) {
      let r = ONE / 2, g = ONE / 2, b = ONE / 2;
      for (let t = 0; t < v.count[y]!; t++) {
        const k = v.weights[base + t]!, p = ((ymin + t) * W + x) * 3;
        r += mid[p]! * k;
        g += mid[p + 1]! * k;
        b += mid[p + 2]! * k;
      }
      const o = (y * W + x) * 3;
      out[o] = clip8(r);
      out[o + 1] = clip8(g);
      out[o + 2] = clip8(b);
    }
  }
  return out;
}

// ---- rescale and normalise -----------------------------------------------------------------

/**
 * [3, H, W] f32 from the RGB window, placed in zero padding, in transformers'
 * arithmetic: rescale in float64 then to float32, normalise in float32.
 */
function normalise(window: Uint8Array, columns: AxisWindow, rows: AxisWindow, config: ProcessorConfig): Tensor {
  const W = columns.out, H = rows.out, plane = W * H;
  const f32 = Math.fround;
  const out = new Float32Array(3 * plane);
  for (let c = 0; c < 3; c++) {
    const mean = f32(config.imageMean[c]!), std = f32(config.imageStd[c]!);
    // One value per byte: a lookup table keeps the loop to a copy.
    const table = new Float32Array(256);
    for (let v = 0; v < 256; v++) {
      const scaled = config.doRescale ? f32(v * config.rescaleFactor) : v;
      table[v] = config.doNormalize ? f32(f32(scaled - mean) / std) : scaled;
    }
    const channel = out.subarray(c * plane, (c + 1) * plane);
    if (columns.length < W || rows.length < H) channel.fill(table[0]!);
    for (let y = 0; y < rows.length; y++) {
      const rowOut = (rows.offset + y) * W + columns.offset, rowIn = y * columns.length * 3 + c;
      for (let x = 0; x < columns.length; x++) channel[rowOut + x] = table[window[rowIn + 3 * x]!]!;
    }
  }
  return new Tensor('f32', [3, H, W], out, 'cpu');
}
