// features.ts — LLaVA-NeXT's visual tokens for one image: the base image and
// every tile through the CLIP tower and the projector of LLaVA-1.5 (vision.ts),
// then laid out as transformers' pack_image_features does: the base image's
// side x side tokens, then the unpadded tile feature grid row by row, each row
// closed by the learned image_newline vector.
import { GripError } from '../../errors.js';
import { Tensor } from '../../tensor.js';
import type { LlavaConfig } from '../config.js';
import type { Checkpoint } from '../safetensors.js';
import { runProjector, runVision, type RunOptions } from '../vision.js';
import type { ProjectorWeights, VisionWeights } from '../weights.js';
import type { LlavaNextConfig } from './config.js';
import { anyresGeometry, type AnyresGeometry, type Size } from './processor.js';

/** The tensor names of image_newline: classic checkpoints, newer transformers. */
export const IMAGE_NEWLINE_NAMES = ['image_newline', 'model.image_newline'] as const;

/** The LLaVA-1.5 view of a LLaVA-NeXT config that the shared vision / projector / decoder stages read. */
export function asLlavaStages(config: LlavaNextConfig): LlavaConfig {
  const side = config.vision.imageSize / config.vision.patchSize;
  return { ...config, modelType: 'llava', numImageTokens: side * side };
}

/** Reads image_newline [text hidden size] as float32; `where` names the checkpoint in errors. */
export async function readImageNewline(checkpoint: Checkpoint, config: LlavaNextConfig, where: string): Promise<Float32Array> {
  const name = IMAGE_NEWLINE_NAMES.find((n) => checkpoint.has(n));
  if (name === undefined) throw new GripError('ERR_GRIP_FORMAT', `expected tensor "image_newline" (or "model.image_newline") in ${where} but received none`);
  const D = config.text.hiddenSize;
  const shape = checkpoint.info(name).shape;
  if (shape.length !== 1 || shape[0] !== D) {
    throw new GripError('ERR_GRIP_FORMAT', `expected shape [${D}] for tensor "${name}" in ${where} but received [${shape.join(', ')}]`);
  }
  return (await checkpoint.read(name)).toFloat32();
}

export interface LlavaNextImageFeatures {
  /** [numImageTokens, D] f32 on the host, in sequence order. */
  tokens: Tensor;
  geometry: AnyresGeometry;
  /**
   * With `clsAttention`: [numImageTokens], each tile token's CLS attention in
   * its own tile (base-image tokens: the base image's; each crop's sums to
   * what its CLS pays its patches), newline tokens 0: no CLS token attends to
   * the learned newline, so a CLS-ranked pruner never counts one as dominant.
   */
  clsAttention?: Float32Array;
}

/**
 * The visual tokens of one image. `tiles` holds 1 + geometry.tiles.length
 * pixel crops [C, S, S] (the base image first, then the tiles row-major), f32.
 */
export async function llavaNextImageFeatures(
  weights: { vision: VisionWeights; projector: ProjectorWeights },
  newline: Float32Array,
  config: LlavaNextConfig,
  tiles: Float32Array,
  imageSize: Size,
  options: RunOptions & { clsAttention?: boolean },
): Promise<LlavaNextImageFeatures> {
  const vc = config.vision;
  const geometry = anyresGeometry(imageSize, config.imageGridPinpoints, vc.imageSize, vc.patchSize);
  const B = 1 + geometry.tiles.length;
  const crop = vc.numChannels * vc.imageSize * vc.imageSize;
  if (tiles.length !== B * crop) {
    throw new GripError('ERR_GRIP_SHAPE',
      `expected ${B * crop} values (${B} crops of ${vc.numChannels}x${vc.imageSize}x${vc.imageSize}) for tiles but received ${tiles.length}`);
  }
  const D = config.text.hiddenSize;
  if (newline.length !== D) throw new GripError('ERR_GRIP_SHAPE', `expected ${D} values for newline but received ${newline.length}`);
  const stages = asLlavaStages(config);
  const vision = await runVision(weights.vision, stages, tiles, B, options);
  const projected = (await runProjector(weights.projector, stages, vision.features, options)).toHost().toFloat32();
  const N = stages.numImageTokens;
  const { numImageTokens: M, tokenTile, tokenPatch } = geometry;
  const out = new Float32Array(M * D);
  const cls = options.clsAttention === true ? new Float32Array(M) : undefined;
  for (let i = 0; i < M; i++) {
    const t = tokenTile[i]!, p = tokenPatch[i]!;
    if (t < 0) {
      out.set(newline, i * D);
      if (cls) cls[i] = 0;
    } else {
      out.set(projected.subarray((t * N + p) * D, (t * N + p + 1) * D), i * D);
      if (cls) cls[i] = vision.clsAttention![t * N + p]!;
    }
  }
  return { tokens: new Tensor('f32', [M, D], out, 'cpu'), geometry, ...(cls ? { clsAttention: cls } : {}) };
}
