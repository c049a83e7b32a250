// llamacpp.ts — llama.cpp through node-llama-cpp (a devDependency, its
// prebuilt CPU binary; nothing is built or downloaded: build 'never', no
// GPU), driven with token ids so no tokenizer stands between the two
// runtimes. The yardstick of test/gguf.test.ts and bench/llamacpp.bench.ts.
import type { ControlledEvaluateInputItem, Llama, LlamaContext, LlamaContextSequence, LlamaModel, Token } from 'node-llama-cpp';

/** node-llama-cpp brands token ids; ours are plain integers. */
const asToken = (id: number) => id as Token;

let loaded: Promise<Llama> | undefined;

/** The llama.cpp binding (CPU, prebuilt), or an error saying why it cannot load. */
export function loadLlamaCpp(): Promise<Llama> {
  loaded ??= (async () => {
    const { getLlama, LlamaLogLevel } = await import('node-llama-cpp');
    return getLlama({ gpu: false, build: 'never', usePrebuiltBinaries: true, progressLogs: false, logLevel: LlamaLogLevel.error });
  })();
  return loaded;
}

/** Why llama.cpp cannot run here, or null when it can. */
export async function llamaCppUnavailable(): Promise<string | null> {
  try {
    await loadLlamaCpp();
    return null;
  } catch (error) {
    return `node-llama-cpp's prebuilt binary does not load (${(error as Error).message.split('\n')[0]})`;
  }
}

export interface LlamaCppOptions {
  threads: number;
  contextSize: number;
  /** llama.cpp's n_batch (= n_ubatch here): prompt tokens per graph evaluation. */
  batchSize?: number;
  /** Keep the KV cache in f32 instead of llama.cpp's default f16 (for the conformance test). */
  f32Cache?: boolean;
}

/** One GGUF model with one context sequence. */
export class LlamaCppRunner {
  private constructor(readonly model: LlamaModel, readonly context: LlamaContext, readonly sequence: LlamaContextSequence) {}

  static async open(path: string, options: LlamaCppOptions): Promise<LlamaCppRunner> {
    const llama = await loadLlamaCpp();
    // The context option takes a GgmlType number (the addon ignores the type's name).
    const { GgmlType } = await import('node-llama-cpp');
    const model = await llama.loadModel({ modelPath: path, gpuLayers: 0, ignoreMemorySafetyChecks: true });
    const context = await model.createContext({
      contextSize: options.contextSize, threads: { ideal: options.threads, min: options.threads }, sequences: 1,
      ignoreMemorySafetyChecks: true, failedCreationRemedy: false,
      ...(options.batchSize !== undefined ? { batchSize: options.batchSize } : {}),
      ...(options.f32Cache ? { experimentalKvCacheKeyType: GgmlType.F32, experimentalKvCacheValueType: GgmlType.F32 } : {}),
    });
    return new LlamaCppRunner(model, context, context.getSequence());
  }

  async reset(): Promise<void> {
    await this.sequence.clearHistory();
  }

  /**
   * log-softmax [rows.length, V] at the given positions of a fresh sequence
   * (llama.cpp hands out probabilities, the softmax of the logits: their log
   * is the logits up to one constant per row).
   */
  async logProbs(ids: Int32Array, rows: readonly number[], vocab: number): Promise<Float32Array> {
    await this.reset();
    const wanted = new Set(rows);
    const input = Array.from(ids, (id, i): ControlledEvaluateInputItem => (wanted.has(i) ? [asToken(id), { generateNext: { probabilities: true } }] : asToken(id)));
    const output = await this.sequence.controlledEvaluate(input);
    const out = new Float32Array(rows.length * vocab);
    rows.forEach((row, r) => {
      const probabilities = output[row]?.next?.probabilities;
      if (!probabilities) throw new Error(`llama.cpp returned no probabilities for prompt position ${row}`);
      for (const [token, p] of probabilities) out[r * vocab + token] = Math.log(p);
    });
    return out;
  }

  /** Evaluates a prompt on a fresh sequence and picks the next token greedily (the prefill). */
  async prefill(ids: Int32Array): Promise<number> {
    await this.reset();
    const input = Array.from(ids, (id, i): ControlledEvaluateInputItem => (i === ids.length - 1 ? [asToken(id), { generateNext: { token: true } }] : asToken(id)));
    const output = await this.sequence.controlledEvaluate(input);
    const token = output[ids.length - 1]?.next?.token;
    if (token === undefined || token === null) throw new Error('llama.cpp returned no next token after the prompt');
    return token;
  }

  /** After prefill: `count` greedy tokens, the first fed being `first` (each one a single-token forward pass). */
  async decode(first: number, count: number): Promise<Int32Array> {
    const out: number[] = [];
    for await (const token of this.sequence.evaluate([asToken(first)], { temperature: 0, yieldEogToken: true })) {
      out.push(token);
      if (out.length >= count) break;
    }
    return Int32Array.from(out);
  }

  /** The greedy continuation of a prompt: the prefill's token, then decode steps. */
  async greedy(ids: Int32Array, maxNew: number): Promise<Int32Array> {
    const first = await this.prefill(ids);
    if (maxNew === 1) return Int32Array.of(first);
    return Int32Array.of(first, ...(await this.decode(first, maxNew - 1)));
  }

  async dispose(): Promise<void> {
    await this.context.dispose();
    await this.model.dispose();
  }
}
