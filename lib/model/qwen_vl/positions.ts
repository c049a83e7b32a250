// positions.ts — M-RoPE's 3D position ids (transformers' get_rope_index for images): a run
// of text counts up on all three axes (temporal, height, width); an image's visual tokens
// get (t, row, column) of its merged grid plus the position where the image starts; the
// text after an image continues from the image's largest id + 1. Pruning keeps each kept
// token's original ids, so the decoder's rotary phases stay those of the unpruned prompt.
// Index arithmetic only: tested against the numpy reference without any op.
import { GripError } from '../../errors.js';

/** Ids of one prompt row: [3, S] as three planes (temporal, height, width) of S each. */
export interface PositionIds3D {
  /** Row-major [3, S]: plane 0 temporal, 1 height, 2 width. */
  ids: Int32Array;
  length: number;
  /** max id + 1 - S: the first new token sits at S + ropeDelta on all three axes. */
  ropeDelta: number;
}

/**
 * get_rope_index of one row of `inputIds` in which each image is
 * `<|vision_start|>` followed by its t*h*w/merge^2 `<|image_pad|>` tokens;
 * `grids` are the images' [t, h, w] in patches, in order.
 */
export function qwenVLPositionIds(
  inputIds: ArrayLike<number>, grids: ReadonlyArray<readonly [number, number, number]>,
  tokens: { imageTokenId: number; visionStartTokenId: number }, spatialMergeSize: number,
): PositionIds3D {
  const S = inputIds.length;
  const ids = new Int32Array(3 * S);
  const starts: number[] = [];
  for (let i = 0; i + 1 < S; i++) if (inputIds[i] === tokens.visionStartTokenId && inputIds[i + 1] === tokens.imageTokenId) starts.push(i);
  if (starts.length !== grids.length) {
    throw new GripError('ERR_GRIP_SHAPE', `expected ${grids.length} <|vision_start|><|image_pad|> runs (one per image grid) for inputIds but received ${starts.length}`);
  }
  let next = 0, at = 0;
  const text = (from: number, to: number) => {
    for (let i = from; i < to; i++, next++) ids[i] = ids[S + i] = ids[2 * S + i] = next;
  };
  grids.forEach(([t, h, w], g) => {
    const imageStart = starts[g]! + 1;
    const rows = h / spatialMergeSize, cols = w / spatialMergeSize, n = t * rows * cols;
    if (!Number.isInteger(rows) || !Number.isInteger(cols)) {
      throw new GripError('ERR_GRIP_SHAPE', `expected multiples of spatial_merge_size (${spatialMergeSize}) for grids[${g}] [h, w] but received [${h}, ${w}]`);
    }
    for (let i = imageStart; i < imageStart + n; i++) {
      if (inputIds[i] !== tokens.imageTokenId) {
        throw new GripError('ERR_GRIP_SHAPE', `expected ${n} image tokens (grid ${t}x${h}x${w}) after <|vision_start|> at ${starts[g]} for inputIds but received ${i - imageStart}`);
      }
    }
    text(at, imageStart);
    const base = next;
    let top = base;
    for (let k = 0; k < n; k++) {
      const i = imageStart + k;
      const tt = Math.floor(k / (rows * cols)), r = Math.floor((k % (rows * cols)) / cols), c = k % cols;
      ids[i] = base + tt;
      ids[S + i] = base + r;
      ids[2 * S + i] = base + c;
      top = Math.max(top, base + tt, base + r, base + c);
    }
    next = top + 1;
    at = imageStart + n;
  });
  text(at, S);
  let max = -1;
  for (const v of ids) max = Math.max(max, v);
  return { ids, length: S, ropeDelta: max + 1 - S };
}

/**
 * The ids of the rows that survive a prune (`kept`: sequence indices, ascending), each with
 * its original ids: [3, kept.length]. New tokens still start at S + ropeDelta.
 */
export function keptPositionIds(positions: PositionIds3D, kept: ArrayLike<number>): Int32Array {
  const S = positions.length, n = kept.length;
  const out = new Int32Array(3 * n);
  for (let j = 0; j < n; j++) {
    const i = kept[j]!;
    if (!(Number.isInteger(i) && i >= 0 && i < S) || (j > 0 && i <= kept[j - 1]!)) {
      throw new GripError('ERR_GRIP_RANGE', `expected ascending sequence indices in [0, ${S - 1}] for kept but received ${i} at ${j}`);
    }
    for (let a = 0; a < 3; a++) out[a * n + j] = positions.ids[a * S + i]!;
  }
  return out;
}
