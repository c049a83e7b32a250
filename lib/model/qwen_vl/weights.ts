// weights.ts — the Qwen2 decoder's tensors of a Qwen2-VL / Qwen2.5-VL checkpoint (the
// Hub's names: model.layers.*, model.embed_tokens, model.norm, lm_head) into the
// TextWeights that llama.ts runs, q/k/v with their biases. Matrices keep their stored
// dtype (the GEMM widens), vectors become f32, as in lib/model/weights.ts.
import { GripError } from '../../errors.js';
import { Tensor } from '../../tensor.js';
import type { Checkpoint } from '../safetensors.js';
import { readTensor, type Linear, type TextLayerWeights, type TextWeights } from '../weights.js';
import type { QwenVLConfig } from './config.js';

export async function loadQwenText(checkpoint: Checkpoint, config: QwenVLConfig, where: string, options: { device: 'cpu' | 'cuda'; signal?: AbortSignal | undefined }): Promise<TextWeights> {
  const tc = config.text;
  const read = async (name: string, shape: readonly number[], kind: 'matrix' | 'vector'): Promise<Tensor> => {
    let t = await readTensor(checkpoint, name, shape, where, options.signal);
    if (kind === 'vector' && t.dtype !== 'f32') t = new Tensor('f32', t.shape, t.toFloat32(), 'cpu');
    return options.device === 'cuda' ? t.toDevice() : t;
  };
  const linear = async (prefix: string, outDim: number, inDim: number, bias: boolean): Promise<Linear> => ({
    weight: await read(`${prefix}.weight`, [outDim, inDim], 'matrix'),
    bias: bias ? await read(`${prefix}.bias`, [outDim], 'vector') : null,
  });
  const D = tc.hiddenSize, qDim = tc.numHeads * tc.headDim, kvDim = tc.numKvHeads * tc.headDim, F = tc.intermediateSize;
  const layers: TextLayerWeights[] = [];
  for (let i = 0; i < tc.numLayers; i++) {
    const l = `model.layers.${i}`;
    layers.push({
      inputNorm: await read(`${l}.input_layernorm.weight`, [D], 'vector'),
      q: await linear(`${l}.self_attn.q_proj`, qDim, D, true),
      k: await linear(`${l}.self_attn.k_proj`, kvDim, D, true),
      v: await linear(`${l}.self_attn.v_proj`, kvDim, D, true),
      o: await linear(`${l}.self_attn.o_proj`, D, qDim, false),
      postNorm: await read(`${l}.post_attention_layernorm.weight`, [D], 'vector'),
      gate: await linear(`${l}.mlp.gate_proj`, F, D, false),
      up: await linear(`${l}.mlp.up_proj`, F, D, false),
      down: await linear(`${l}.mlp.down_proj`, D, F, false),
    });
  }
  const embed = await read('model.embed_tokens.weight', [tc.vocabSize, D], 'matrix');
  let lmHead: Tensor;
  if (checkpoint.has('lm_head.weight')) lmHead = await read('lm_head.weight', [tc.vocabSize, D], 'matrix');
  else if (tc.tieWordEmbeddings) lmHead = embed;
  else throw new GripError('ERR_GRIP_FORMAT', `expected tensor "lm_head.weight" (or tie_word_embeddings) in ${where} but received none`);
  return { embed, layers, norm: await read('model.norm.weight', [D], 'vector'), lmHead };
}
