// qwen_vl/index.ts — the Qwen2-VL and Qwen2.5-VL family (Qwen2VLForConditionalGeneration,
// Qwen2_5_VLForConditionalGeneration): an image is resized to its own multiple of 28 px
// (processor.ts), so its token count follows it and batches are ragged as for LLaVA-NeXT;
// the vision tower and merger (vision.ts) make one visual token per 2x2 patches, laid out
// on the merged grid the spatial pruners see; the Qwen2 decoder runs in llama.ts with the
// biases and M-RoPE, whose 3D ids (positions.ts) the runtime keeps on each batch's cache.
import { join } from 'node:path';
import { GripError } from '../../errors.js';
import { Tensor } from '../../tensor.js';
import { check } from '../../validate.js';
import type { Family, FamilyLoadOptions, FamilyModel, ImagePixels, VisualLayout } from '../family.js';
import { disposeText, type MRope } from '../llama.js';
import { checkImageSize, PROCESSOR_CONFIG_FILE, readRgb } from '../processor.js';
import type { Row } from '../runtime/types.js';
import { jsonText, readJsonFile } from '../../json.js';
import { Checkpoint } from '../safetensors.js';
import { TextTokenizer } from '../tokenizer.js';
import { parseQwenVLConfig, type QwenVLConfig } from './config.js';
import { qwenVLPositionIds } from './positions.js';
import { parseQwenVLProcessorConfig, qwenVLGeometry, qwenVLPixels, type QwenVLProcessorConfig } from './processor.js';
import { disposeQwenVision, loadQwenVision, runQwenVision } from './vision.js';
import { loadQwenText } from './weights.js';


/** The pruners' view of one image: its merged grid, row-major. */
export function qwenLayout(gridThw: readonly [number, number, number], mergeSize: number): VisualLayout {
  const [t, h, w] = gridThw;
  const rows = (t * h) / mergeSize, cols = w / mergeSize;
  return { numImageTokens: rows * cols, grid: { rows, cols } };
}

/** The M-RoPE ids of a batch's rows: each row is T_before ++ its image's pads ++ T_after. */
export function qwenMRope(config: QwenVLConfig, processor: QwenVLProcessorConfig, rows: readonly Row[]): MRope {
  const ids: Int32Array[] = [], delta: number[] = [];
  for (const row of rows) {
    const { gridThw } = qwenVLGeometry(row.pixels.imageSize!, processor);
    const N = row.pixels.layout.numImageTokens;
    const input = new Int32Array(row.before.length + N + row.after.length);
    input.set(row.before);
    input.fill(config.imageTokenId, row.before.length, row.before.length + N);
    input.set(row.after, row.before.length + N);
    const p = qwenVLPositionIds(input, [gridThw], config, config.vision.spatialMergeSize);
    ids.push(p.ids);
    delta.push(p.ropeDelta);
  }
  return { section: config.mropeSection, ids, delta };
}

export const qwenVL: Family = {
  name: 'qwen_vl',
  architectures: ['Qwen2VLForConditionalGeneration', 'Qwen2_5_VLForConditionalGeneration'],
  async load(dir: string, options: FamilyLoadOptions): Promise<FamilyModel> {
    const configPath = join(dir, 'config.json');
    const config = parseQwenVLConfig(await readJsonFile(configPath, 'config.json'), configPath);
    const processorPath = join(dir, PROCESSOR_CONFIG_FILE);
    const processor = parseQwenVLProcessorConfig(await readJsonFile(processorPath, PROCESSOR_CONFIG_FILE), processorPath);
    const vc = config.vision;
    for (const [key, ours, theirs] of [['patch_size', processor.patchSize, vc.patchSize], ['merge_size', processor.mergeSize, vc.spatialMergeSize], ['temporal_patch_size', processor.temporalPatchSize, vc.temporalPatchSize]] as const) {
      if (ours !== theirs) throw new GripError('ERR_GRIP_FORMAT', `expected ${theirs} (the vision_config of ${configPath}) for ${key} in ${processorPath} but received ${ours}`);
    }
    if (options.dtype !== 'auto') {
      throw new GripError('ERR_GRIP_UNSUPPORTED', `expected 'auto' (Qwen2-VL weights run in their stored dtype) for options.dtype but received ${jsonText(options.dtype)}`);
    }
    const [tokenizer, checkpoint] = await Promise.all([TextTokenizer.load(dir), Checkpoint.open(dir)]);
    let vision, text;
    try {
      vision = await loadQwenVision(checkpoint, config, dir, options);
      text = await loadQwenText(checkpoint, config, dir, options);
    } finally {
      await checkpoint.close();
    }
    const M = vc.spatialMergeSize, factor = processor.patchSize * M;
    const maxN = Math.floor(processor.maxPixels / (factor * factor));
    const patchRow = 3 * vc.temporalPatchSize * vc.patchSize * vc.patchSize;
    const weightsVision = vision;
    const model: FamilyModel = {
      family: 'qwen_vl', dir, config, processor, tokenizer,
      text: { config: config.text, weights: text, mrope: (rows) => qwenMRope(config, processor, rows) },
      imageTokenIndex: config.imageTokenId,
      layout: { numImageTokens: maxN, grid: { rows: 1, cols: maxN } },
      async pixels(source, what, signal): Promise<ImagePixels> {
        if (source.pixelValues !== undefined) {
          const size = checkImageSize(source.imageSize, what);
          const { gridThw } = qwenVLGeometry(size, processor);
          check.tensor(source.pixelValues, `${what}.pixelValues`, '[patches, 3*T*P*P]', ['f32'], [gridThw[0] * gridThw[1] * gridThw[2], patchRow]);
          return { values: source.pixelValues.toHost().host as Float32Array, layout: qwenLayout(gridThw, M), imageSize: [size[0], size[1]] };
        }
        if (source.image === undefined) return check.fail('ERR_GRIP_RANGE', 'image or pixelValues', what, 'neither');
        const rgb = await readRgb(source.image, signal ? { signal } : {});
        const p = await qwenVLPixels(rgb, processor);
        signal?.throwIfAborted();
        return { values: p.pixelValues, layout: qwenLayout(p.gridThw, M), imageSize: [rgb.height, rgb.width] };
      },
      async encode(images, clsAttention, o) {
        if (clsAttention) {
          throw new GripError('ERR_GRIP_UNSUPPORTED', 'expected a pruner that needs no CLS attention (Qwen2-VL\'s vision tower has no CLS token) for pruner.needs.attention but received \'cls\'');
        }
        const D = config.text.hiddenSize, B = images.length;
        const width = Math.max(...images.map((p) => p.layout.numImageTokens));
        const visual = new Float32Array(B * width * D);
        for (let b = 0; b < B; b++) {
          const p = images[b]!;
          const { gridThw } = qwenVLGeometry(p.imageSize!, processor);
          const tokens = await runQwenVision(weightsVision, config, p.values, gridThw, o);
          visual.set(tokens.toHost().host as Float32Array, b * width * D);
        }
        const t = new Tensor('f32', [B, width, D], visual, 'cpu');
        return { visual: o.backend === 'cuda' ? t.toDevice() : t };
      },
      dispose() {
        disposeQwenVision(weightsVision);
        disposeText(text);
      },
    };
    return model;
  },
};
