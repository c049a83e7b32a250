// random-model.ts — a seeded random Llama checkpoint (HF layout: config.json +
// model.safetensors) and its GGUF twins, for comparing our runtime with
// llama.cpp on the same weights. Default shapes are Vicuna-7B's (the LLM of
// LLaVA-1.5-7B) with a few decoder layers. Weights are uniform with unit
// output variance (scale sqrt(3/in)), norms 1 ± 0.1, so activations and
// logits stay O(1) through the layers.
// Usage: node --import tsx tools/gguf/random-model.ts OUT_DIR [--layers 4] [--dtype f32|bf16] [--types F32,BF16,Q8_0] [--seed 1]
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { mulberry32 } from '../../lib/random.ts';
import { writeSafetensors } from '../../lib/model/safetensors.ts';
import { tensor, type Tensor } from '../../lib/tensor.ts';
import { checkGgufType, convertToGguf, tensorNames } from './convert.ts';
import type { GgmlTypeName } from './gguf.ts';

export interface RandomLlamaShape {
  hiddenSize: number;
  intermediateSize: number;
  numHeads: number;
  numKvHeads: number;
  vocabSize: number;
  numLayers: number;
}

export const VICUNA_7B: Omit<RandomLlamaShape, 'numLayers'> = { hiddenSize: 4096, intermediateSize: 11008, numHeads: 32, numKvHeads: 32, vocabSize: 32000 };

export interface RandomLlamaOptions {
  seed?: number;
  /** The checkpoint's storage dtype; bf16 rounds the drawn values, so the f32 GGUF holds the same (bf16-exact) numbers. */
  dtype?: 'f32' | 'bf16';
  /** GGUF files to write beside it, as model-<type>.gguf. */
  ggufTypes?: readonly GgmlTypeName[];
}

/** The HF config.json of a Llama with these shapes. */
export function llamaConfigJson(shape: RandomLlamaShape, dtype: 'f32' | 'bf16'): Record<string, unknown> {
  return {
    architectures: ['LlamaForCausalLM'], model_type: 'llama',
    hidden_size: shape.hiddenSize, intermediate_size: shape.intermediateSize, num_hidden_layers: shape.numLayers,
    num_attention_heads: shape.numHeads, num_key_value_heads: shape.numKvHeads, vocab_size: shape.vocabSize,
    rms_norm_eps: 1e-5, rope_theta: 10000, max_position_embeddings: 4096, hidden_act: 'silu',
    tie_word_embeddings: false, bos_token_id: 1, eos_token_id: 2, torch_dtype: dtype === 'f32' ? 'float32' : 'bfloat16',
  };
}

/** Writes DIR/config.json, DIR/model.safetensors and the requested DIR/model-<type>.gguf. */
export async function writeRandomLlama(dir: string, shape: RandomLlamaShape, options: RandomLlamaOptions = {}): Promise<void> {
  for (const type of options.ggufTypes ?? []) checkGgufType(type); // before minutes of drawing
  const dtype = options.dtype ?? 'f32';
  const random = mulberry32(options.seed ?? 1);
  const { hiddenSize: D, intermediateSize: F, vocabSize: V } = shape;
  const Dh = D / shape.numHeads;
  const uniform = (n: number, scale: number, center = 0): Float32Array => {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = center + (2 * random() - 1) * scale;
    return out;
  };
  const matrix = (rows: number, cols: number): Tensor => tensor(uniform(rows * cols, Math.sqrt(3 / cols)), [rows, cols], dtype);
  const norm = (): Tensor => tensor(uniform(D, 0.1, 1), [D]);
  const shapes: Record<string, () => Tensor> = {
    'model.embed_tokens.weight': () => tensor(uniform(V * D, Math.sqrt(3)), [V, D], dtype),
    'model.norm.weight': norm,
    'lm_head.weight': () => matrix(V, D),
  };
  for (let i = 0; i < shape.numLayers; i++) {
    const l = `model.layers.${i}`;
    Object.assign(shapes, {
      [`${l}.input_layernorm.weight`]: norm,
      [`${l}.self_attn.q_proj.weight`]: () => matrix(shape.numHeads * Dh, D),
      [`${l}.self_attn.k_proj.weight`]: () => matrix(shape.numKvHeads * Dh, D),
      [`${l}.self_attn.v_proj.weight`]: () => matrix(shape.numKvHeads * Dh, D),
      [`${l}.self_attn.o_proj.weight`]: () => matrix(D, shape.numHeads * Dh),
      [`${l}.post_attention_layernorm.weight`]: norm,
      [`${l}.mlp.gate_proj.weight`]: () => matrix(F, D),
      [`${l}.mlp.up_proj.weight`]: () => matrix(F, D),
      [`${l}.mlp.down_proj.weight`]: () => matrix(D, F),
    });
  }
  // Drawn in llama.cpp's tensor order, so a seed means the same weights at any layer count for the shared layers.
  const tensors: Record<string, Tensor> = {};
  for (const [, hf] of tensorNames(shape.numLayers)) tensors[hf] = shapes[hf]!();
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'config.json'), `${JSON.stringify(llamaConfigJson(shape, dtype), null, 2)}\n`);
  await writeSafetensors(join(dir, 'model.safetensors'), tensors);
  for (const type of options.ggufTypes ?? []) await convertToGguf(dir, join(dir, `model-${type}.gguf`), type);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const args = process.argv.slice(2);
  const flag = (name: string, fallback: string) => {
    const at = args.indexOf(`--${name}`);
    return at >= 0 ? args[at + 1]! : fallback;
  };
  const dir = args[0];
  if (!dir || dir.startsWith('--')) {
    console.error('usage: node --import tsx tools/gguf/random-model.ts OUT_DIR [--layers 4] [--dtype f32|bf16] [--types F32,BF16,Q8_0] [--seed 1]');
    process.exit(2);
  }
  const types = flag('types', 'F32,BF16,Q8_0').split(',').filter((t) => t !== '') as GgmlTypeName[];
  await writeRandomLlama(dir, { ...VICUNA_7B, numLayers: Number(flag('layers', '4')) }, { seed: Number(flag('seed', '1')), dtype: flag('dtype', 'f32') as 'f32' | 'bf16', ggufTypes: types });
  console.log(`wrote ${dir}`);
}
