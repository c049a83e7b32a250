// llama-text.ts — a text-only Llama (LlamaForCausalLM layout) on our runtime:
// the config through the LLaVA parser's Llama section, the weights read by
// name, then the runtime's own stages (lib/model/llama.ts's decoder and LM
// head, runtime/decode.ts's greedy loop). The yardstick against llama.cpp
// (test/gguf.test.ts, bench/llamacpp.bench.ts) runs through it, so what it
// measures is what VLM.generate runs after the visual tokens.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ResolvedBackend } from '../../lib/backend.ts';
import { GripError } from '../../lib/errors.ts';
import { parseLlavaConfig, type TextConfig } from '../../lib/model/config.ts';
import { kernels, type Kernels } from '../../lib/model/kernels.ts';
import { KVCache, lmHead, runDecoder, type DecoderOutputs } from '../../lib/model/llama.ts';
import { greedyDecode } from '../../lib/model/runtime/decode.ts';
import { Checkpoint } from '../../lib/model/safetensors.ts';
import { int32Tensor } from '../../lib/moves.ts';
import type { Prefilled } from '../../lib/model/runtime/types.ts';
import { quantizeDecoder, type TextWeights, type Linear } from '../../lib/model/weights.ts';
import { Tensor, tensor } from '../../lib/tensor.ts';

/**
 * Resolves a Llama config.json. The checks and defaults are those of a
 * LLaVA's text_config (so messages name keys as text_config.*): the object is
 * parsed as the text_config of a LLaVA config with the default vision tower.
 */
export async function loadLlamaConfig(dir: string): Promise<TextConfig> {
  const path = join(dir, 'config.json');
  let json: unknown;
  try {
    json = JSON.parse(await readFile(path, 'utf8'));
  } catch (error) {
    throw new GripError('ERR_GRIP_IO', `expected a readable JSON config.json for ${path} but received ${(error as Error).message}`);
  }
  return parseLlavaConfig({ model_type: 'llava', image_token_index: 0, text_config: json }, path).text;
}

export interface LoadLlamaTextOptions {
  /** Matrices as stored ('auto') or converted; vectors are always f32. */
  dtype?: 'auto' | 'f32' | 'f16' | 'bf16';
  /** Replaces each matrix's f32 values before the dtype conversion (e.g. a quantise-dequantise round trip). */
  mapMatrix?: (name: string, values: Float32Array) => Float32Array;
  /** 'int8': the decoder's Linear weights and the LM head as q8_0, as loadVLM's option of that name (lib/model/weights.ts quantizeDecoder). */
  weights?: 'float' | 'int8';
}

export interface LlamaText {
  config: TextConfig;
  weights: TextWeights;
}

/** Reads a LlamaForCausalLM checkpoint (model.layers.N.*, model.norm, lm_head) into the runtime's TextWeights. */
export async function loadLlamaText(dir: string, options: LoadLlamaTextOptions = {}): Promise<LlamaText> {
  const config = await loadLlamaConfig(dir);
  const checkpoint = await Checkpoint.open(dir);
  const read = async (name: string, shape: readonly number[]): Promise<Tensor> => {
    if (!checkpoint.has(name)) throw new GripError('ERR_GRIP_FORMAT', `expected tensor "${name}" in ${dir} but received none`);
    const got = checkpoint.info(name).shape;
    if (got.length !== shape.length || got.some((d, i) => d !== shape[i])) {
      throw new GripError('ERR_GRIP_FORMAT', `expected shape [${shape.join(', ')}] for tensor "${name}" in ${dir} but received [${got.join(', ')}]`);
    }
    const t = await checkpoint.read(name);
    if (shape.length === 1) return t.dtype === 'f32' ? t : tensor(t.toFloat32(), t.shape);
    const dtype = options.dtype ?? 'auto';
    if (options.mapMatrix === undefined && (dtype === 'auto' || dtype === t.dtype)) return t;
    const values = options.mapMatrix ? options.mapMatrix(name, t.toFloat32()) : t.toFloat32();
    return tensor(values, t.shape, dtype === 'auto' ? t.dtype : dtype);
  };
  const D = config.hiddenSize, F = config.intermediateSize, qDim = config.numHeads * config.headDim, kvDim = config.numKvHeads * config.headDim;
  const linear = async (name: string, out: number, inDim: number): Promise<Linear> => ({ weight: await read(`${name}.weight`, [out, inDim]), bias: null });
  const layers = [];
  for (let i = 0; i < config.numLayers; i++) {
    const l = `model.layers.${i}`;
    layers.push({
      inputNorm: await read(`${l}.input_layernorm.weight`, [D]),
      q: await linear(`${l}.self_attn.q_proj`, qDim, D),
      k: await linear(`${l}.self_attn.k_proj`, kvDim, D),
      v: await linear(`${l}.self_attn.v_proj`, kvDim, D),
      o: await linear(`${l}.self_attn.o_proj`, D, qDim),
      postNorm: await read(`${l}.post_attention_layernorm.weight`, [D]),
      gate: await linear(`${l}.mlp.gate_proj`, F, D),
      up: await linear(`${l}.mlp.up_proj`, F, D),
      down: await linear(`${l}.mlp.down_proj`, D, F),
    });
  }
  const weights: TextWeights = {
    embed: await read('model.embed_tokens.weight', [config.vocabSize, D]),
    layers,
    norm: await read('model.norm.weight', [D]),
    lmHead: await read('lm_head.weight', [config.vocabSize, D]),
  };
  for (const f of checkpoint.files) await f.close();
  if (options.weights === 'int8') await quantizeDecoder(weights);
  return { config, weights };
}

/** One prompt's prefill and greedy decode on the CPU (the yardstick's side), with the runtime's ops (async: each op off the event loop). */
export class LlamaTextRunner {
  private readonly k: Kernels;
  private readonly backend: ResolvedBackend = 'cpu';
  constructor(readonly model: LlamaText, mode: 'async' | 'sync' = 'async') {
    this.k = kernels(mode);
  }

  /**
   * Runs the prompt through every layer; returns the cache and the last hidden
   * states x [1, T, D]: of every row with outputs 'all', of the last row only
   * with 'last' (what a generation reads; llama.cpp skips the same work).
   */
  async prefill(ids: Int32Array, capacity = ids.length, outputs: DecoderOutputs = 'last'): Promise<{ cache: KVCache; x: Tensor }> {
    const { config, weights } = this.model;
    const o = { backend: this.backend, k: this.k, signal: undefined };
    const T = ids.length;
    const x = await this.k.embedding(weights.embed, int32Tensor(ids, [1, T], 'cpu'), o);
    const cache = new KVCache(1, capacity, config, 'cpu');
    const positions = int32Tensor(Int32Array.from({ length: T }, (_, p) => p), [1, T], 'cpu');
    await runDecoder(weights, config, x, positions, Int32Array.of(T), cache, { from: 0, to: config.numLayers }, { ...o, outputs });
    return { cache, x };
  }

  /** logits [rows.length, V] of the given prompt positions (all of them by default). */
  async logits(ids: Int32Array, rows?: readonly number[]): Promise<Float32Array> {
    const { config, weights } = this.model;
    const o = { backend: this.backend, k: this.k, signal: undefined };
    const { cache, x } = await this.prefill(ids, ids.length, 'all');
    cache.dispose();
    const wanted = rows ?? Array.from(ids, (_, i) => i);
    const D = config.hiddenSize, all = x.host as Float32Array;
    const h = new Float32Array(wanted.length * D);
    wanted.forEach((row, r) => h.set(all.subarray(row * D, (row + 1) * D), r * D));
    return (await lmHead(weights, config, tensor(h, [wanted.length, D]), o)).host as Float32Array;
  }

  /** The greedy continuation of `ids` (`maxNew` tokens), through the runtime's decode loop. */
  async greedy(ids: Int32Array, maxNew: number): Promise<Int32Array> {
    const state = await this.prefill(ids, ids.length + maxNew);
    return this.decode(state, ids.length, maxNew);
  }

  /** greedyDecode from a prefill of `length` tokens (frees the cache). */
  async decode(state: { cache: KVCache; x: Tensor }, length: number, maxNew: number): Promise<Int32Array> {
    const rt = { text: this.model, layout: { numImageTokens: 0, grid: { rows: 0, cols: 0 } }, backend: this.backend, k: this.k, decoder: 'fused' as const };
    const prefilled: Prefilled = {
      cache: state.cache, x: state.x, length: Int32Array.of(length), nextPosition: Int32Array.of(length),
      positions: Int32Array.from({ length }, (_, p) => p), kept: [], pruneMs: 0, prefillMs: 0,
    };
    const [tokens] = await greedyDecode(rt, prefilled, { maxNew: [maxNew], stopAtEos: [false], eos: new Set(), signal: undefined });
    return tokens!;
  }
}

/** The last row of x [1, T, D] as a [1, D] copy (for the LM head on the prompt's last token). */
export function lastRow(x: Tensor): Tensor {
  const [, T, D] = x.shape as [number, number, number];
  return tensor((x.host as Float32Array).slice((T - 1) * D, T * D), [1, D]);
}
