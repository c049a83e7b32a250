// processor.ts — LLaVA-NeXT's anyres geometry: which grid of tiles an image
// gets, how it is resized and padded into that canvas, which part of the tile
// feature grid survives unpadding, how many visual tokens the image becomes,
// and where each of them comes from. Integer arithmetic as in transformers
// (LlavaNextImageProcessor, LlavaNextProcessor._get_number_of_features,
// LlavaNextForConditionalGeneration.pack_image_features); every size is
// (height, width) like there. Pixels are not touched here.
import { GripError } from '../../errors.js';

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
