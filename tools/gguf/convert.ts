// convert.ts — our Hugging Face Llama checkpoint (config.json + safetensors,
// LlamaForCausalLM names) -> a GGUF file as llama.cpp's convert_hf_to_gguf.py
// writes it: blk.N.* tensor names, the q/k row permutation (HF rotates the
// halves of a head, llama.cpp's LLAMA rope adjacent pairs), llama.* metadata,
// and a minimal SPM ("llama") vocabulary of vocab_size tokens, enough for
// llama.cpp to load the model and evaluate token ids.
// Usage: node --import tsx tools/gguf/convert.ts DIR OUT.gguf [F32|F16|BF16|Q8_0]
import { GripError } from '../../lib/errors.ts';
import { Checkpoint } from '../../lib/model/safetensors.ts';
import { encodeTensor, f32, str, u32, writeGguf, type GgmlTypeName, type GgufTensor, type GgufValue } from './gguf.ts';
import { loadLlamaConfig } from './llama-text.ts';
import type { TextConfig } from '../../lib/model/config.ts';

export const GGUF_TYPES: readonly GgmlTypeName[] = ['F32', 'F16', 'BF16', 'Q8_0'];

/** Throws unless `type` is one the writer encodes. */
export function checkGgufType(type: string): asserts type is GgmlTypeName {
  if (!GGUF_TYPES.includes(type as GgmlTypeName)) {
    throw new GripError('ERR_GRIP_UNSUPPORTED', `expected one of ${GGUF_TYPES.join(', ')} for the GGUF tensor type but received ${String(type)}`);
  }
}

/** general.file_type (llama_ftype) of a model whose matrices are all `type`. */
const FILE_TYPE: Record<GgmlTypeName, number> = { F32: 0, F16: 1, Q8_0: 7, BF16: 32 };

/** GGUF name -> HF name of every tensor, in llama.cpp's order. */
export function tensorNames(numLayers: number): [gguf: string, hf: string][] {
  const names: [string, string][] = [['token_embd.weight', 'model.embed_tokens.weight']];
  for (let i = 0; i < numLayers; i++) {
    const hf = `model.layers.${i}`, b = `blk.${i}`;
    names.push(
      [`${b}.attn_norm.weight`, `${hf}.input_layernorm.weight`],
      [`${b}.attn_q.weight`, `${hf}.self_attn.q_proj.weight`],
      [`${b}.attn_k.weight`, `${hf}.self_attn.k_proj.weight`],
      [`${b}.attn_v.weight`, `${hf}.self_attn.v_proj.weight`],
      [`${b}.attn_output.weight`, `${hf}.self_attn.o_proj.weight`],
      [`${b}.ffn_norm.weight`, `${hf}.post_attention_layernorm.weight`],
      [`${b}.ffn_gate.weight`, `${hf}.mlp.gate_proj.weight`],
      [`${b}.ffn_up.weight`, `${hf}.mlp.up_proj.weight`],
      [`${b}.ffn_down.weight`, `${hf}.mlp.down_proj.weight`],
    );
  }
  names.push(['output_norm.weight', 'model.norm.weight'], ['output.weight', 'lm_head.weight']);
  return names;
}

/**
 * The rows of a q or k projection [heads·Dh, in] reordered for llama.cpp
 * (convert_hf_to_gguf.py's permute): within each head, new row 2i+j is old
 * row j·Dh/2 + i, so llama.cpp's adjacent-pair RoPE rotates what HF's
 * rotate_half rotates.
 */
export function permuteRows(weight: Float32Array, heads: number, inDim: number): Float32Array {
  const rows = weight.length / inDim, Dh = rows / heads, half = Dh / 2;
  const out = new Float32Array(weight.length);
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < half; i++) {
      for (let j = 0; j < 2; j++) {
        const from = (h * Dh + j * half + i) * inDim;
        out.set(weight.subarray(from, from + inDim), (h * Dh + 2 * i + j) * inDim);
      }
    }
  }
  return out;
}

/** tokenizer.* keys: <unk>, <s>, </s>, then byte tokens <0x00>.. while they fit, then plain pieces. */
export function minimalVocab(vocabSize: number): Record<string, GgufValue> {
  if (vocabSize < 3) throw new GripError('ERR_GRIP_RANGE', `expected a vocab_size of at least 3 (unk, bos, eos) for the GGUF vocabulary but received ${vocabSize}`);
  const tokens: string[] = ['<unk>', '<s>', '</s>'];
  const types = new Int32Array(vocabSize);
  types.set([2, 3, 3]); // unknown, control, control
  const scores = new Float32Array(vocabSize);
  for (let id = 3; id < vocabSize; id++) {
    const byte = id - 3;
    if (byte < 256) {
      tokens.push(`<0x${byte.toString(16).toUpperCase().padStart(2, '0')}>`);
      types[id] = 6; // byte
    } else {
      tokens.push(`\u2581t${id}`);
      types[id] = 1; // normal
      scores[id] = -id;
    }
  }
  return {
    'tokenizer.ggml.model': str('llama'),
    'tokenizer.ggml.tokens': { type: 'string[]', value: tokens },
    'tokenizer.ggml.scores': { type: 'f32[]', value: scores },
    'tokenizer.ggml.token_type': { type: 'i32[]', value: types },
    'tokenizer.ggml.unknown_token_id': u32(0),
    'tokenizer.ggml.bos_token_id': u32(1),
    'tokenizer.ggml.eos_token_id': u32(2),
  };
}

export function llamaMetadata(config: TextConfig, type: GgmlTypeName, name: string): Record<string, GgufValue> {
  return {
    'general.architecture': str('llama'),
    'general.name': str(name),
    'general.file_type': u32(FILE_TYPE[type]),
    'llama.context_length': u32(config.maxPositionEmbeddings),
    'llama.embedding_length': u32(config.hiddenSize),
    'llama.block_count': u32(config.numLayers),
    'llama.feed_forward_length': u32(config.intermediateSize),
    'llama.attention.head_count': u32(config.numHeads),
    'llama.attention.head_count_kv': u32(config.numKvHeads),
    'llama.attention.key_length': u32(config.headDim),
    'llama.attention.value_length': u32(config.headDim),
    'llama.rope.dimension_count': u32(config.headDim),
    'llama.rope.freq_base': f32(config.ropeTheta),
    'llama.attention.layer_norm_rms_epsilon': f32(config.rmsNormEps),
    'llama.vocab_size': u32(config.vocabSize),
    ...minimalVocab(config.vocabSize),
  };
}

/**
 * Writes `dir`'s checkpoint as GGUF: matrices as `type`, norms as F32 (as
 * llama.cpp wants them). Reads one tensor at a time.
 */
export async function convertToGguf(dir: string, out: string, type: GgmlTypeName): Promise<void> {
  checkGgufType(type);
  const config = await loadLlamaConfig(dir);
  if (config.tieWordEmbeddings) throw new GripError('ERR_GRIP_UNSUPPORTED', `expected tie_word_embeddings false for ${dir} but received true`);
  const checkpoint = await Checkpoint.open(dir);
  const names = tensorNames(config.numLayers);
  const hfOf = new Map(names);
  const infos: Pick<GgufTensor, 'name' | 'shape' | 'type'>[] = [];
  for (const [gguf, hf] of names) {
    if (!checkpoint.has(hf)) throw new GripError('ERR_GRIP_FORMAT', `expected tensor "${hf}" in ${dir} but received none`);
    const shape = checkpoint.info(hf).shape;
    infos.push({ name: gguf, shape, type: shape.length === 1 ? 'F32' : type });
  }
  try {
    await writeGguf(out, llamaMetadata(config, type, `grip-vlm llama (${config.numLayers} layers)`), infos, async (info) => {
      const t = await checkpoint.read(hfOf.get(info.name)!);
      let values = t.toFloat32();
      const inDim = t.shape[1]!;
      if (info.name.endsWith('.attn_q.weight')) values = permuteRows(values, config.numHeads, inDim);
      else if (info.name.endsWith('.attn_k.weight')) values = permuteRows(values, config.numKvHeads, inDim);
      return encodeTensor(values, info.type);
    });
  } finally {
    for (const file of checkpoint.files) await file.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [dir, out, type = 'F32'] = process.argv.slice(2);
  if (!dir || !out) {
    console.error('usage: node --import tsx tools/gguf/convert.ts DIR OUT.gguf [F32|F16|BF16|Q8_0]');
    process.exit(2);
  }
  await convertToGguf(dir, out, type as GgmlTypeName);
}
