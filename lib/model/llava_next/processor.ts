// processor.ts — LLaVA-NeXT's anyres geometry: which grid of tiles an image
// gets, how it is resized and padded into that canvas, which part of the tile
// feature grid survives unpadding, how many visual tokens the image becomes,
// and where each of them comes from. Integer arithmetic as in transformers
// (LlavaNextImageProcessor, LlavaNextProcessor._get_number_of_features,
// LlavaNextForConditionalGeneration.pack_image_features); every size is
// (height, width) like there. The second half turns an image into the
// pixel values of its base image and tiles (LlavaNextImageProcessor).
import { GripError } from '../../errors.js';
import { describe } from '../../tensor.js';
import { parseProcessorConfig, resizeRgb, rgbPixelValues, type ProcessorConfig, type RgbImage } from '../processor.js';
import { jsonText } from '../../json.js';

/** [height, width] in pixels. */
export type Size = readonly [number, number];

export interface AnyresGeometry {
  /** The original image, [height, width]. */
  imageSize: [number, number];
  /** The pinpoint chosen for it (select_best_resolution). */
  bestResolution: [number, number];
  /** The size the image is resized to inside that canvas (aspect kept). */
  resized: [number, number];
  /** Zero padding around the resized image: [top, bottom, left, right]. */
  pad: [number, number, number, number];
  /** Each tile's [top, left] in the canvas, row-major (the base image is not among them). */
  tiles: Array<[number, number]>;
  /** Tiles per column and per row: [rows, columns] (get_anyres_image_grid_shape). */
  gridShape: [number, number];
  /** The window of the (rows*side) x (columns*side) tile feature grid kept by unpad_image: [row0, row1, col0, col1). */
  unpadWindow: [number, number, number, number];
  /** Visual tokens of the image: side^2 (base) + unpadded rows x (unpadded columns + 1 newline). */
  numImageTokens: number;
  /**
   * Where each visual token comes from, in sequence order: tile 0 is the base
   * image, tiles 1.. follow `tiles`, -1 is the image_newline token (patch -1).
   * `tokenPatch` is the patch index inside that tile's side x side grid.
   */
  tokenTile: Int32Array;
  tokenPatch: Int32Array;
}

/** transformers' select_best_resolution: most effective pixels, then least waste, first on ties. */
export function selectBestResolution(imageSize: Size, pinpoints: readonly Size[]): [number, number] {
  const [h, w] = imageSize;
  let best: [number, number] | undefined;
  let maxEffective = 0;
  let minWasted = Infinity;
  for (const [ph, pw] of pinpoints) {
    const scale = Math.min(pw / w, ph / h);
    // int() truncation of the float products, as in Python.
    const effective = Math.min(Math.trunc(w * scale) * Math.trunc(h * scale), w * h);
    const wasted = ph * pw - effective;
    if (effective > maxEffective || (effective === maxEffective && wasted < minWasted)) {
      maxEffective = effective;
      minWasted = wasted;
      best = [ph, pw];
    }
  }
  if (best === undefined) {
    throw new GripError('ERR_GRIP_RANGE', `expected at least one pinpoint of positive size for image_grid_pinpoints but received ${JSON.stringify(pinpoints)}`);
  }
  return best;
}

/** Python's round(x, 7): round half to even at 7 decimals (only ever near-integers here). */
function round7(x: number): number {
  const scaled = x * 1e7;
  const floor = Math.floor(scaled);
  const diff = scaled - floor;
  const r = diff > 0.5 ? floor + 1 : diff < 0.5 ? floor : floor % 2 === 0 ? floor : floor + 1;
  return r / 1e7;
}

/**
 * unpad_image on a [currentH, currentW] grid of an image of `imageSize`:
 * the rows (or columns) that only the padding filled are cut, symmetrically.
 */
export function unpadWindow(current: Size, imageSize: Size): [number, number, number, number] {
  const [oh, ow] = imageSize;
  const [ch, cw] = current;
  if (ow / oh > cw / ch) {
    const newHeight = Math.trunc(round7(oh * (cw / ow)));
    const padding = Math.floor((ch - newHeight) / 2);
    return [padding, ch - padding, 0, cw];
  }
  const newWidth = Math.trunc(round7(ow * (ch / oh)));
  const padding = Math.floor((cw - newWidth) / 2);
  return [0, ch, padding, cw - padding];
}

/**
 * The anyres geometry of one image. `tileSize` is the vision tower's image
 * size (the crop size), `patchSize` its patch; pinpoints are [height, width]
 * multiples of tileSize (parseLlavaNextConfig checks that).
 */
export function anyresGeometry(imageSize: Size, pinpoints: readonly Size[], tileSize: number, patchSize: number): AnyresGeometry {
  const [h, w] = imageSize;
  if (!(Number.isInteger(h) && Number.isInteger(w) && h >= 1 && w >= 1)) {
    throw new GripError('ERR_GRIP_RANGE', `expected a positive integer [height, width] for imageSize but received ${JSON.stringify(imageSize)}`);
  }
  const best = selectBestResolution(imageSize, pinpoints);
  const [bh, bw] = best;
  // get_patch_output_size: the side whose scale is smaller fills the canvas.
  const scaleW = bw / w, scaleH = bh / h;
  const resized: [number, number] = scaleW < scaleH
    ? [Math.min(Math.ceil(h * scaleW), bh), bw]
    : [bh, Math.min(Math.ceil(w * scaleH), bw)];
  const padY = Math.floor((bh - resized[0]) / 2), padX = Math.floor((bw - resized[1]) / 2);
  const pad: [number, number, number, number] = [padY, bh - resized[0] - padY, padX, bw - resized[1] - padX];
  const tiles: Array<[number, number]> = [];
  for (let top = 0; top < bh; top += tileSize) for (let left = 0; left < bw; left += tileSize) tiles.push([top, left]);
  const gridShape: [number, number] = [Math.floor(bh / tileSize), Math.floor(bw / tileSize)];
  const side = tileSize / patchSize;
  const window = unpadWindow([gridShape[0] * side, gridShape[1] * side], imageSize);
  const [r0, r1, c0, c1] = window;
  const rows = r1 - r0, cols = c1 - c0;
  const numImageTokens = side * side + rows * (cols + 1);

  const tokenTile = new Int32Array(numImageTokens);
  const tokenPatch = new Int32Array(numImageTokens);
  let n = 0;
  for (let p = 0; p < side * side; p++, n++) tokenPatch[n] = p; // base image: tile 0
  for (let y = r0; y < r1; y++) {
    for (let x = c0; x < c1; x++, n++) {
      // the feature grid is the tiles laid out row-major, each side x side
      tokenTile[n] = 1 + Math.floor(y / side) * gridShape[1] + Math.floor(x / side);
      tokenPatch[n] = (y % side) * side + (x % side);
    }
    tokenTile[n] = -1;
    tokenPatch[n] = -1;
    n++;
  }
  return { imageSize: [h, w], bestResolution: best, resized, pad, tiles, gridShape, unpadWindow: window, numImageTokens, tokenTile, tokenPatch };
}

// ---- preprocessor_config.json and pixels -----------------------------------------------

/** LlavaNextImageProcessor's settings: the CLIP processor's, the tile (crop) size and the pinpoints. */
export interface LlavaNextProcessorConfig extends ProcessorConfig {
  /** The processor's own image_grid_pinpoints, [height, width] (the model's config.json must agree). */
  imageGridPinpoints: Array<[number, number]>;
}

const NEXT_PROCESSOR_TYPES = ['LlavaNextImageProcessor', 'LlavaNextImageProcessorFast'];

/**
 * Resolves a parsed LLaVA-NeXT preprocessor_config.json; `where` is named in
 * every error. The CLIP keys (mean, std, rescale, resample, …) are read by
 * parseProcessorConfig; the tiles are crop_size squares and the base image is
 * resized to size.shortest_edge, which must both be the vision tower's
 * `tileSize` (as in every llava-v1.6 checkpoint).
 */
export function parseLlavaNextProcessorConfig(json: unknown, where: string, tileSize: number): LlavaNextProcessorConfig {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new GripError('ERR_GRIP_FORMAT', `expected a JSON object for ${where} but received ${describe(json)}`);
  }
  const { image_grid_pinpoints: pinpoints, image_processor_type: type, do_pad: _pad, ...clip } = json as Record<string, unknown>;
  if (type !== undefined && type !== null && !NEXT_PROCESSOR_TYPES.includes(type as string)) {
    throw new GripError(typeof type === 'string' ? 'ERR_GRIP_UNSUPPORTED' : 'ERR_GRIP_FORMAT',
      `expected "LlavaNextImageProcessor" for image_processor_type in ${where} but received ${jsonText(type)}`);
  }
  const base = parseProcessorConfig(clip, where);
  const expected = `a non-empty list of [height, width] pairs of positive multiples of the crop size (${tileSize})`;
  const fail = (value: unknown): never => {
    throw new GripError(Array.isArray(value) && value.length === 0 ? 'ERR_GRIP_RANGE' : 'ERR_GRIP_FORMAT', `expected ${expected} for image_grid_pinpoints in ${where} but received ${jsonText(value ?? null)}`);
  };
  if (!Array.isArray(pinpoints) || pinpoints.length === 0) fail(pinpoints);
  const imageGridPinpoints = (pinpoints as unknown[]).map((pair) => {
    if (!Array.isArray(pair) || pair.length !== 2 || !pair.every((v) => Number.isInteger(v) && (v as number) >= tileSize && (v as number) % tileSize === 0)) fail(pinpoints);
    return [...(pair as number[])] as [number, number];
  });
  for (const [key, value] of [['crop_size.height', base.cropHeight], ['crop_size.width', base.cropWidth], ['size.shortest_edge', base.resizeShortestEdge]] as const) {
    if (value !== tileSize) {
      throw new GripError('ERR_GRIP_UNSUPPORTED', `expected ${tileSize} (vision_config.image_size, the tile size) for ${key} in ${where} but received ${value}`);
    }
  }
  return { ...base, imageGridPinpoints };
}

/**
 * The [1 + tiles, 3, S, S] f32 pixel values of one RGB image, as
 * LlavaNextImageProcessor makes them: the base image (the whole image resized
 * to S x S, aspect not kept), then the tiles of the best-resolution canvas
 * row-major (the image resized to `geometry.resized`, centred in zeros).
 */
export async function anyresPixels(rgb: RgbImage, geometry: AnyresGeometry, config: ProcessorConfig, tileSize: number): Promise<Float32Array> {
  const S = tileSize, plane = 3 * S * S;
  const out = new Float32Array((1 + geometry.tiles.length) * plane);
  const baseImage = await resizeRgb(rgb, S, S, config.resample);
  out.set(rgbPixelValues(baseImage, config).host as Float32Array, 0);
  const [rh, rw] = geometry.resized;
  const resized = await resizeRgb(rgb, rw, rh, config.resample);
  const [bh, bw] = geometry.bestResolution;
  const [top, , left] = geometry.pad;
  // _pad_for_patching: zeros on the 8-bit image, before rescale and normalise
  const canvas = new Uint8Array(bh * bw * 3);
  for (let y = 0; y < rh; y++) canvas.set(resized.data.subarray(y * rw * 3, (y + 1) * rw * 3), ((top + y) * bw + left) * 3);
  geometry.tiles.forEach(([ty, tx], t) => {
    const tile = new Uint8Array(S * S * 3);
    for (let y = 0; y < S; y++) tile.set(canvas.subarray(((ty + y) * bw + tx) * 3, ((ty + y) * bw + tx + S) * 3), y * S * 3);
    out.set(rgbPixelValues({ data: tile, width: S, height: S }, config).host as Float32Array, (1 + t) * plane);
  });
  return out;
}
