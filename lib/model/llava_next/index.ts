// llava_next/index.ts — the LLaVA-NeXT family (LlavaNextForConditionalGeneration,
// llava-hf/llava-v1.6-{vicuna,mistral}-*-hf): each image becomes its base image
// plus the tiles of the pinpoint that fits its aspect ratio (processor.ts),
// each through the CLIP tower and projector of LLaVA-1.5, packed with one
// image_newline per row of the unpadded tile grid (features.ts). The token
// count follows the image, so every image has its own layout and batches are
// ragged. The decoder is Llama or Mistral (llama.ts); a Mistral window is
// passed to the runtime, which refuses requests longer than it.
import { join } from 'node:path';
import { GripError } from '../../errors.js';
import { Tensor } from '../../tensor.js';
import { check } from '../../validate.js';
import type { Family, FamilyLoadOptions, FamilyModel, ImagePixels, VisualLayout, VisualRegion } from '../family.js';
import { disposeLlavaWeights } from '../llava/index.js';
import { checkImageSize, PROCESSOR_CONFIG_FILE, readRgb } from '../processor.js';
import { readJsonFile, jsonText } from '../../json.js';
import { Checkpoint } from '../safetensors.js';
import { TextTokenizer } from '../tokenizer.js';
import { loadWeights } from '../weights.js';
import { parseLlavaNextConfig, type LlavaNextConfig } from './config.js';
import { asLlavaStages, llavaNextImageFeatures, readImageNewline } from './features.js';
import { anyresGeometry, anyresPixels, parseLlavaNextProcessorConfig, type AnyresGeometry } from './processor.js';


/**
 * The layout the pruners see for one image: its N tokens in sequence order
 * as a 1 x N grid (base image, then the unpadded tile rows with their
 * newlines), since they form no single rectangle; the regions are the base
 * image's side x side grid and each tile's unpadded rectangle (the per-tile
 * budget), the newlines are the image_newline rows.
 */
export function layoutOf(geometry: AnyresGeometry): VisualLayout {
  const { numImageTokens: N, tokenTile, tokenPatch } = geometry;
  const members = new Map<number, number[]>();
  for (let i = 0; i < N; i++) {
    const t = tokenTile[i]!;
    if (!members.has(t)) members.set(t, []);
    members.get(t)!.push(i);
  }
  const side = Math.round(Math.sqrt(members.get(0)!.length));
  const regions: VisualRegion[] = [];
  for (const [, tokens] of [...members].filter(([t]) => t >= 0).sort(([a], [b]) => a - b)) {
    // a tile's tokens come row by row: its rows are the distinct patch rows among them
    const rows = new Set(tokens.map((i) => Math.floor(tokenPatch[i]! / side))).size;
    regions.push({ grid: { rows, cols: tokens.length / rows }, tokens: Int32Array.from(tokens) });
  }
  return { numImageTokens: N, grid: { rows: 1, cols: N }, regions, newlines: Int32Array.from(members.get(-1) ?? []) };
}

/** The most visual tokens an image can get: the largest pinpoint with nothing unpadded. */
export function maxImageTokens(config: LlavaNextConfig): number {
  const side = config.vision.imageSize / config.vision.patchSize;
  return Math.max(...config.imageGridPinpoints.map(([h, w]) => {
    const rows = (h / config.vision.imageSize) * side, cols = (w / config.vision.imageSize) * side;
    return side * side + rows * (cols + 1);
  }));
}

export const llavaNext: Family = {
  name: 'llava_next',
  architectures: ['LlavaNextForConditionalGeneration'],
  async load(dir: string, options: FamilyLoadOptions): Promise<FamilyModel> {
    const configPath = join(dir, 'config.json');
    const config = parseLlavaNextConfig(await readJsonFile(configPath, 'config.json'), configPath);
    const vc = config.vision, S = vc.imageSize;
    const processorPath = join(dir, PROCESSOR_CONFIG_FILE);
    const processor = parseLlavaNextProcessorConfig(await readJsonFile(processorPath, PROCESSOR_CONFIG_FILE), processorPath, S);
    if (JSON.stringify(processor.imageGridPinpoints) !== JSON.stringify(config.imageGridPinpoints)) {
      // transformers tiles by the processor's list and unpads by the model's: two lists would disagree on the token count.
      throw new GripError('ERR_GRIP_FORMAT',
        `expected the image_grid_pinpoints of ${configPath} (${jsonText(config.imageGridPinpoints)}) for image_grid_pinpoints in ${processorPath} but received ${jsonText(processor.imageGridPinpoints)}`);
    }
    const [tokenizer, checkpoint] = await Promise.all([TextTokenizer.load(dir), Checkpoint.open(dir)]);
    let weights, newline: Float32Array;
    try {
      newline = await readImageNewline(checkpoint, config, dir);
      weights = await loadWeights(checkpoint, asLlavaStages(config), dir, options);
    } finally {
      await checkpoint.close();
    }
    const geometryOf = (imageSize: readonly [number, number]) => anyresGeometry(imageSize, config.imageGridPinpoints, S, vc.patchSize);
    const maxN = maxImageTokens(config);
    const model: FamilyModel = {
      // VLM.config is LLaVA-shaped: numImageTokens there is the most an image can get
      family: 'llava_next', dir, config: { ...asLlavaStages(config), numImageTokens: maxN }, processor, tokenizer,
      text: { config: config.text, weights: weights.text, slidingWindow: config.slidingWindow },
      imageTokenIndex: config.imageTokenIndex,
      layout: { numImageTokens: maxN, grid: { rows: 1, cols: maxN } },
      async pixels(source, what, signal): Promise<ImagePixels> {
        if (source.pixelValues !== undefined) {
          const size = checkImageSize(source.imageSize, what);
          const geometry = geometryOf(size);
          check.tensor(source.pixelValues, `${what}.pixelValues`, '[T,C,H,W]', ['f32'], [1 + geometry.tiles.length, vc.numChannels, S, S]);
          return { values: source.pixelValues.toHost().host as Float32Array, layout: layoutOf(geometry), imageSize: [size[0], size[1]] };
        }
        if (source.image === undefined) return check.fail('ERR_GRIP_RANGE', 'image or pixelValues', what, 'neither');
        const rgb = await readRgb(source.image, signal ? { signal } : {});
        const imageSize: [number, number] = [rgb.height, rgb.width];
        const geometry = geometryOf(imageSize);
        const values = await anyresPixels(rgb, geometry, processor, S);
        signal?.throwIfAborted();
        return { values, layout: layoutOf(geometry), imageSize };
      },
      async encode(images, clsAttention, o) {
        const D = config.text.hiddenSize, B = images.length;
        const width = Math.max(...images.map((p) => p.layout.numImageTokens));
        const visual = new Float32Array(B * width * D);
        const cls = clsAttention ? new Float32Array(B * width) : undefined;
        for (let b = 0; b < B; b++) {
          const p = images[b]!;
          const f = await llavaNextImageFeatures(weights, newline, config, p.values, p.imageSize!, { ...o, clsAttention });
          visual.set(f.tokens.host as Float32Array, b * width * D);
          if (cls) cls.set(f.clsAttention!, b * width);
        }
        const t = new Tensor('f32', [B, width, D], visual, 'cpu');
        return { visual: o.backend === 'cuda' ? t.toDevice() : t, clsAttention: cls };
      },
      dispose() {
        disposeLlavaWeights(weights);
      },
    };
    return model;
  },
};
