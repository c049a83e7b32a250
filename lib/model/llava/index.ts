// llava/index.ts — the LLaVA-1.5 family (LlavaForConditionalGeneration):
// one CLIP crop (processor.ts), the CLIP vision tower and the two-layer
// projector (vision.ts), N = (image_size / patch_size)^2 visual tokens on a
// square grid (+1, the CLS token, with the 'full' strategy), and the Llama
// decoder (llama.ts).
import { GripError } from '../../errors.js';
import { check } from '../../validate.js';
import { loadLlavaConfig } from '../config.js';
import type { Family, FamilyLoadOptions, FamilyModel } from '../family.js';
import { disposeText } from '../llama.js';
import { loadProcessorConfig, preprocessImage } from '../processor.js';
import { Checkpoint } from '../safetensors.js';
import { TextTokenizer } from '../tokenizer.js';
import { runProjector, runVision } from '../vision.js';
import { loadWeights, type LlavaWeights } from '../weights.js';

export const llava: Family = {
  name: 'llava',
  architectures: ['LlavaForConditionalGeneration'],
  async load(dir: string, options: FamilyLoadOptions): Promise<FamilyModel> {
    const config = await loadLlavaConfig(dir);
    const [tokenizer, processor, checkpoint] = await Promise.all([TextTokenizer.load(dir), loadProcessorConfig(dir), Checkpoint.open(dir)]);
    let weights;
    try {
      weights = await loadWeights(checkpoint, config, dir, options);
    } finally {
      await checkpoint.close();
    }
    const vc = config.vision;
    const side = vc.imageSize / vc.patchSize;
    const layout = { numImageTokens: config.visionFeatureSelectStrategy === 'full' ? side * side + 1 : side * side, grid: { rows: side, cols: side } };
    return {
      family: 'llava', dir, config, processor, tokenizer,
      text: { config: config.text, weights: weights.text },
      imageTokenIndex: config.imageTokenIndex,
      layout,
      async pixels(source, what, signal) {
        if (source.pixelValues !== undefined) {
          check.tensor(source.pixelValues, `${what}.pixelValues`, '[C,H,W]', ['f32'], [vc.numChannels, vc.imageSize, vc.imageSize]);
          return { values: source.pixelValues.toHost().host as Float32Array, layout };
        }
        if (source.image === undefined) return check.fail('ERR_GRIP_RANGE', 'image or pixelValues', what, 'neither');
        const t = await preprocessImage(source.image, processor, signal ? { signal } : {});
        if (t.shape[1] !== vc.imageSize || t.shape[2] !== vc.imageSize) {
          throw new GripError('ERR_GRIP_SHAPE', `expected pixel values [3, ${vc.imageSize}, ${vc.imageSize}] (vision_config.image_size) for the crop size of ${dir}/preprocessor_config.json but received [${t.shape.join(', ')}]`);
        }
        return { values: t.host as Float32Array, layout };
      },
      async encode(images, clsAttention, o) {
        const per = vc.numChannels * vc.imageSize * vc.imageSize;
        const pixels = new Float32Array(images.length * per);
        images.forEach((p, b) => pixels.set(p.values, b * per));
        const out = await runVision(weights.vision, config, pixels, images.length, { ...o, clsAttention });
        return { visual: await runProjector(weights.projector, config, out.features, o), clsAttention: out.clsAttention };
      },
      dispose() {
        disposeLlavaWeights(weights);
      },
    };
  },
};

/** Frees the device memory of a LLaVA checkpoint's weights: vision tower, projector and decoder. */
export function disposeLlavaWeights(weights: LlavaWeights): void {
  const { vision: v, projector: p } = weights;
  const tensors = [
    v.patch.weight, v.tokenBias, v.preNorm.weight, v.preNorm.bias,
    ...v.layers.flatMap((l) => [l.norm1.weight, l.norm1.bias, l.norm2.weight, l.norm2.bias, ...[l.q, l.k, l.v, l.o, l.fc1, l.fc2].flatMap((x) => [x.weight, x.bias])]),
    p.linear1.weight, p.linear1.bias, p.linear2.weight, p.linear2.bias,
  ];
  for (const t of tensors) t?.dispose();
  disposeText(weights.text);
}
