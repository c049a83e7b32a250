// processor.ts — Qwen2-VL's image processor (transformers' Qwen2VLImageProcessor, which
// Qwen2.5-VL uses too): smart_resize to multiples of patch_size x merge_size with the area
// in [min_pixels, max_pixels], PIL resize (lib/model/processor.ts's resizeRgb: PIL's own
// arithmetic unless both sides shrink, then sharp), rescale + normalise with its mean/std,
// the still image repeated temporal_patch_size times, and the flatten into patch rows in
// HF's order. Sizes are (height, width) as there.
import { GripError } from '../../errors.js';
import { describe } from '../../tensor.js';
import { parseProcessorConfig, resizeRgb, rgbPixelValues, type ProcessorConfig, type RgbImage } from '../processor.js';
import { jsonText } from '../../json.js';

/** Qwen2VLImageProcessor's settings, resolved (its defaults filled in). */
export interface QwenVLProcessorConfig extends Omit<ProcessorConfig, 'resizeShortestEdge' | 'cropHeight' | 'cropWidth' | 'doCenterCrop'> {
  /** The resized area is at least this many pixels (size.shortest_edge in newer configs). */
  minPixels: number;
  /** ... and at most this many (size.longest_edge). */
  maxPixels: number;
  /** The vision tower's patch side (14). */
  patchSize: number;
  /** Frames per temporal patch (2): a still image is its frame repeated this many times. */
  temporalPatchSize: number;
  /** Patches merged per side into one visual token (2). */
  mergeSize: number;
}

/** One image, ready for the vision tower. */
export interface QwenVLPixels {
  /** [numPatches, 3 * temporalPatchSize * patchSize^2] f32, rows in the vision tower's order. */
  pixelValues: Float32Array;
  /** [t, h, w] in patches (image_grid_thw); t is 1 for a still image. */
  gridThw: [number, number, number];
  /** The size the image was resized to, [height, width]. */
  resized: [number, number];
}

const TYPES = ['Qwen2VLImageProcessor', 'Qwen2VLImageProcessorFast'];
// Qwen2VLImageProcessor's defaults: 56*56 and 28*28*1280 pixels, 14 px patches, 2 frames, 2x2 merge.
const DEFAULTS = { min_pixels: 56 * 56, max_pixels: 28 * 28 * 1280, patch_size: 14, temporal_patch_size: 2, merge_size: 2 };
// transformers refuses a side below 10 pixels and an aspect ratio above 200.
const MIN_SIDE = 10;
const MAX_ASPECT = 200;

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * Resolves a parsed preprocessor_config.json of Qwen2-VL / Qwen2.5-VL; `where` is named in
 * every error. The CLIP keys (mean, std, rescale, resample, do_*) are read by
 * parseProcessorConfig with its messages; min_pixels / max_pixels win over size, as in
 * transformers.
 */
export function parseQwenVLProcessorConfig(json: unknown, where: string): QwenVLProcessorConfig {
  if (!isRecord(json)) throw new GripError('ERR_GRIP_FORMAT', `expected a JSON object for ${where} but received ${describe(json)}`);
  const {
    image_processor_type: type, processor_class: _processorClass, size, min_pixels, max_pixels,
    patch_size, temporal_patch_size, merge_size, ...clip
  } = json;
  if (type !== undefined && type !== null && !TYPES.includes(type as string)) {
    throw new GripError(typeof type === 'string' ? 'ERR_GRIP_UNSUPPORTED' : 'ERR_GRIP_FORMAT',
      `expected "Qwen2VLImageProcessor" for image_processor_type in ${where} but received ${jsonText(type)}`);
  }
  const base = parseProcessorConfig(clip, where);
  const int = (value: unknown, key: string, fallback: number): number => {
    const v = value ?? fallback;
    if (typeof v !== 'number' || !Number.isInteger(v)) {
      throw new GripError('ERR_GRIP_FORMAT', `expected a positive integer for ${key} in ${where} but received ${jsonText(v)}`);
    }
    if (v < 1) throw new GripError('ERR_GRIP_RANGE', `expected a positive integer for ${key} in ${where} but received ${v}`);
    return v;
  };
  let sizeMin: unknown, sizeMax: unknown;
  if (size !== undefined && size !== null) {
    if (!isRecord(size) || size.shortest_edge === undefined || size.longest_edge === undefined) {
      throw new GripError('ERR_GRIP_FORMAT', `expected {"shortest_edge": min pixels, "longest_edge": max pixels} for size in ${where} but received ${jsonText(size)}`);
    }
    sizeMin = size.shortest_edge;
    sizeMax = size.longest_edge;
  }
  const minPixels = int(min_pixels ?? sizeMin, min_pixels !== undefined && min_pixels !== null ? 'min_pixels' : 'size.shortest_edge', DEFAULTS.min_pixels);
  const maxPixels = int(max_pixels ?? sizeMax, max_pixels !== undefined && max_pixels !== null ? 'max_pixels' : 'size.longest_edge', DEFAULTS.max_pixels);
  const patchSize = int(patch_size, 'patch_size', DEFAULTS.patch_size);
  const temporalPatchSize = int(temporal_patch_size, 'temporal_patch_size', DEFAULTS.temporal_patch_size);
  const mergeSize = int(merge_size, 'merge_size', DEFAULTS.merge_size);
  const factor = patchSize * mergeSize;
  if (maxPixels < factor * factor || maxPixels < minPixels) {
    throw new GripError('ERR_GRIP_RANGE',
      `expected at least ${Math.max(factor * factor, minPixels)} (one ${factor}x${factor} merged patch, and min_pixels ${minPixels}) for max_pixels in ${where} but received ${maxPixels}`);
  }
  const { resizeShortestEdge: _e, cropHeight: _h, cropWidth: _w, doCenterCrop: _c, ...rest } = base;
  return { ...rest, minPixels, maxPixels, patchSize, temporalPatchSize, mergeSize };
}

/** Python's round(): half to even (smart_resize's round_by_factor uses it). */
function roundHalfEven(x: number): number {
  const floor = Math.floor(x), diff = x - floor;
  if (diff > 0.5) return floor + 1;
  if (diff < 0.5) return floor;
  return floor % 2 === 0 ? floor : floor + 1;
}

/**
 * transformers' smart_resize: [height, width] rounded to multiples of `factor`, scaled
 * (aspect kept) into [minPixels, maxPixels]. A side under 10 px, an aspect ratio over 200,
 * or a side that the max_pixels scaling floors to 0 is ERR_GRIP_RANGE (transformers raises
 * for the first two and fails later on the third).
 */
export function smartResize(height: number, width: number, factor: number, minPixels: number, maxPixels: number): [number, number] {
  if (!(Number.isInteger(height) && Number.isInteger(width) && height >= MIN_SIDE && width >= MIN_SIDE)) {
    throw new GripError('ERR_GRIP_RANGE', `expected at least ${MIN_SIDE} pixels (Qwen2VLImageProcessor's smallest side) for the image's width and height but received ${width}x${height}`);
  }
  if (Math.max(height, width) / Math.min(height, width) > MAX_ASPECT) {
    throw new GripError('ERR_GRIP_RANGE', `expected an aspect ratio of at most ${MAX_ASPECT} (Qwen2VLImageProcessor's largest) for the image's width x height but received ${width}x${height}`);
  }
  let h = roundHalfEven(height / factor) * factor;
  let w = roundHalfEven(width / factor) * factor;
  if (h * w > maxPixels) {
    const beta = Math.sqrt((height * width) / maxPixels);
    h = Math.floor(height / beta / factor) * factor;
    w = Math.floor(width / beta / factor) * factor;
    if (h === 0 || w === 0) {
      throw new GripError('ERR_GRIP_RANGE',
        `expected sides that keep at least ${factor} pixels within max_pixels ${maxPixels} for the image's width x height but received ${width}x${height} (resized to ${w}x${h})`);
    }
  } else if (h * w < minPixels) {
    const beta = Math.sqrt(minPixels / (height * width));
    h = Math.ceil((height * beta) / factor) * factor;
    w = Math.ceil((width * beta) / factor) * factor;
  }
  return [h, w];
}

/** [t, h, w] in patches and the resized size of an image of [height, width]. */
export function qwenVLGeometry(imageSize: readonly [number, number], config: QwenVLProcessorConfig): { gridThw: [number, number, number]; resized: [number, number] } {
  const [h, w] = config.doResize
    ? smartResize(imageSize[0], imageSize[1], config.patchSize * config.mergeSize, config.minPixels, config.maxPixels)
    : imageSize;
  const factor = config.patchSize * config.mergeSize;
  if (h % factor !== 0 || w % factor !== 0) {
    // only with do_resize false: the flatten needs whole merged patches
    throw new GripError('ERR_GRIP_SHAPE', `expected multiples of ${factor} (do_resize is false) for the image's width x height but received ${w}x${h}`);
  }
  return { gridThw: [1, h / config.patchSize, w / config.patchSize], resized: [h, w] };
}

/**
 * The patch rows of one RGB image, as Qwen2VLImageProcessor makes them: row r of the
 * merged grid, column c, then the mergeSize x mergeSize patches inside it row-major; each
 * row is (channel, frame, y, x) flattened, the frames being copies of the one image.
 */
export async function qwenVLPixels(rgb: RgbImage, config: QwenVLProcessorConfig): Promise<QwenVLPixels> {
  const { gridThw, resized } = qwenVLGeometry([rgb.height, rgb.width], config);
  const [rh, rw] = resized;
  const image = await resizeRgb(rgb, rw, rh, config.resample);
  // rgbPixelValues reads only the rescale / normalise keys; the crop keys say "the whole image".
  const chw = rgbPixelValues(image, { ...config, resizeShortestEdge: Math.min(rh, rw), cropHeight: rh, cropWidth: rw, doCenterCrop: false }).host as Float32Array;
  return { pixelValues: flattenPatches(chw, rh, rw, config), gridThw, resized };
}

/** [3, H, W] f32 -> [(H/P)(W/P), 3*T*P*P] in HF's patch order (see qwenVLPixels). */
export function flattenPatches(chw: Float32Array, height: number, width: number, config: Pick<QwenVLProcessorConfig, 'patchSize' | 'temporalPatchSize' | 'mergeSize'>): Float32Array {
  const P = config.patchSize, T = config.temporalPatchSize, M = config.mergeSize;
  const gh = height / P, gw = width / P;
  const rowLength = 3 * T * P * P, plane = height * width;
  const out = new Float32Array(gh * gw * rowLength);
  let o = 0;
  for (let br = 0; br < gh / M; br++) {
    for (let bc = 0; bc < gw / M; bc++) {
      for (let mr = 0; mr < M; mr++) {
        for (let mc = 0; mc < M; mc++) {
          const y0 = (br * M + mr) * P, x0 = (bc * M + mc) * P;
          for (let c = 0; c < 3; c++) {
            const start = o;
            for (let y = 0; y < P; y++) {
              const from = c * plane + (y0 + y) * width + x0;
              out.set(chw.subarray(from, from + P), o);
              o += P;
            }
            // the other frames repeat the first
            for (let t = 1; t < T; t++, o += P * P) out.copyWithin(o, start, start + P * P);
          }
        }
      }
    }
  }
  return out;
}
