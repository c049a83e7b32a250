// llava.ts — the LLaVA runtime: image -> vision tower -> projector -> Llama,
// with a pruner plugged in before the LLM or at decoder layer K. TypeScript
// orchestrates one native op per step; every op runs off the event loop.
//
// A prefill has two stages around the prune point:
//   stage A: sequence T_before ++ V ++ T_after at positions 0..S-1, run
//            through layers [0, K) (nothing when pruning pre-LLM);
//   prune:   the pruner picks visual tokens from the states at the point;
//   stage B: the kept rows (original position ids unless renumbered) run
//            through layers [K, L); layers < K keep their full KV cache or
//            have it compacted to the kept positions (cachePolicy).
import { resolveBackend, setNumThreads, type Backend, type ResolvedBackend } from '../backend.js';
import { GripError } from '../errors.js';
import { Tensor, describe, tensor } from '../tensor.js';
import { check } from '../validate.js';
import { ATTENTION_SOURCES, QUERY_POOLINGS, checkKeepSets, numKeepFor, pruneLayer, type AttentionSource, type PruneContext, type Pruner, type PrunePoint, type QueryPooling } from '../prune/pruner.js';
import { loadLlavaConfig, type LlavaConfig } from './config.js';
import { kernels, type Kernels } from './kernels.js';
import { KVCache, lmHead, runDecoder } from './llama.js';
import { loadProcessorConfig, preprocessImage, type ImageInput, type ProcessorConfig } from './processor.js';
import { Checkpoint } from './safetensors.js';
import { TextTokenizer, buildPrompt, encodePrompt } from './tokenizer.js';
import { deviceOf, gatherRagged, int32Tensor, repeatRows, view, writeRows, zerosOn } from './tensors.js';
import { runProjector, runVision, type RunOptions } from './vision.js';
import { loadWeights, type LlavaWeights, type WeightDType } from './weights.js';

export interface LoadVLMOptions {
  /** 'auto' (CUDA when visible, else CPU), 'cpu' or 'cuda'. */
  backend?: Backend;
  /** Storage type of the weight matrices: as stored ('auto'), or converted at load. */
  dtype?: WeightDType;
  /** CPU threads for the native ops (default: all cores). */
  threads?: number;
  /**
   * How ops are awaited: 'async' runs each off the event loop (a thread hop
   * per op); 'sync' runs them on the calling thread and yields between
   * layers; 'auto' (default) is 'sync' on the CPU for models whose hidden
   * sizes are at most 512 (ops shorter than the hop), else 'async'.
   */
  opMode?: 'auto' | 'async' | 'sync';
  signal?: AbortSignal;
}

/** The image: a path, encoded bytes or raw pixels (preprocessed here), or pixel values already preprocessed. */
export interface ImageSource {
  image?: ImageInput;
  /** [C, H, W] f32, already resized and normalised (skips the processor). */
  pixelValues?: Tensor;
}

/** The text: a prompt (put in the model's template) or token ids containing the image token once. */
export interface PromptSource {
  prompt?: string;
  /** 'chat' (the tokenizer's chat template), 'llava-1.5' (USER: <image>\n... ASSISTANT:) or 'raw'; default: chat when the tokenizer has one. */
  template?: 'chat' | 'llava-1.5' | 'raw';
  inputIds?: ArrayLike<number>;
}

export interface PruneOptions {
  pruner?: Pruner | undefined;
  /** In (0, 1]; default 1 (the pruner still runs, and keeps everything). */
  keepRatio?: number;
  /** In-LLM pruning: 'keep' the full KV cache of layers < K (default, as FastV), or 'compact' it to the kept tokens. */
  cachePolicy?: 'keep' | 'compact';
  /** Give kept tokens new consecutive position ids instead of their original ones (for comparison). */
  renumberPositions?: boolean;
}

export interface GenerateRequest extends ImageSource, PromptSource, PruneOptions {
  /** Default 32. */
  maxNewTokens?: number;
  /** Stop a row at its end-of-sequence token (default true). */
  stopAtEos?: boolean;
  signal?: AbortSignal;
}

export interface Timings {
  preprocessMs: number;
  visionMs: number;
  pruneMs: number;
  prefillMs: number;
  decodeMs: number;
}

export interface GenerateResult {
  text: string;
  /** Generated ids (the end-of-sequence token included when it was generated). */
  tokenIds: Int32Array;
  /** The kept visual tokens (all of them without a pruner). */
  kept: { indices: Int32Array; keepRatio: number };
  /** Sequence length the LLM prefilled (text + kept visual tokens). */
  prefillTokens: number;
  timings: Timings;
}

export interface PrepareRequest extends ImageSource, PromptSource {
  /** Where the visual states are taken (default 'pre-llm'). */
  point?: PrunePoint;
  /** Attention to the visual tokens to return with them. */
  attention?: AttentionSource;
  /** How the text query is pooled (default 'mean-text-after-image'; a pruner's needs.query). */
  query?: QueryPooling;
  /** For a pre-LLM point: the attention of 'last-token'/'text-tokens' is read as if pruning at this layer (from layer - 1; default 2). */
  attentionLayer?: number;
  /** Answer tokens answerLogProb may append to a prepared in-LLM prompt (default 16). */
  answerCapacity?: number;
  signal?: AbortSignal;
}

/** A request run up to its prune point (from VLM.prepare): what a pruner sees, and the shared work for answerLogProb. */
export class PreparedPrompt {
  constructor(
    /** The model that prepared it. */
    readonly model: VLM,
    readonly point: PrunePoint,
    /** [1, N, D] f32 visual token states at the point. */
    readonly visual: Tensor,
    /** [1, D] f32 mean of the text tokens after the image at the point. */
    readonly query: Tensor,
    /** [N] the requested attention to the visual tokens (mean over heads and query rows). */
    readonly attention: Float32Array | undefined,
    /** Internal: the tokenised, preprocessed request. */
    readonly row: Row,
    /** Internal: the projected visual tokens [1, N, D]. */
    readonly projected: Tensor,
    /** Internal: for an in-LLM point, the hidden states entering layer K and the caches of layers < K. */
    readonly stage: { x: Tensor; cache: KVCache; fullLen: number; answerCapacity: number } | undefined,
  ) {}
}

export interface AnswerLogProbRequest extends ImageSource, PromptSource {
  /** A prepared prompt (VLM.prepare) to reuse; then image, prompt and point come from it. */
  prepared?: PreparedPrompt;
  /** Also return log-softmax over the vocabulary at the first answer position, [G, V] (for a fidelity reward). */
  returnFirstLogProbs?: boolean;
  /** The answer text (encoded without special tokens) or its ids. */
  answer: string | ArrayLike<number>;
  /** Visual token indices to keep, one set per candidate; null keeps all. */
  keepSets: readonly (ArrayLike<number> | null)[];
  /** Where the keep-sets apply (default 'pre-llm'). */
  point?: PrunePoint;
  cachePolicy?: 'keep' | 'compact';
  renumberPositions?: boolean;
  signal?: AbortSignal;
}

export interface AnswerLogProbResult {
  /** Sum of log p(answer token | prefix) per keep-set. */
  logProb: Float64Array;
  /** [keepSets, answer tokens] the per-token log-probabilities. */
  tokenLogProbs: Float32Array;
  answerIds: Int32Array;
  /** 1 where every answer token is the argmax of its teacher-forced distribution (greedy decoding would produce the answer). */
  greedyMatch: Uint8Array;
  /** [G, V] log-softmax at the first answer position, when asked for. */
  firstLogProbs?: Float32Array;
}

export interface LogitsRequest extends ImageSource, PromptSource, PruneOptions {
  /** 'last' (default): the logits of the last prompt position; 'all': every position of the (pruned) sequence. */
  positions?: 'last' | 'all';
  signal?: AbortSignal;
}

export interface LogitsResult {
  /** [1, V] or [S', V] f32 on the host. */
  logits: Tensor;
  kept: Int32Array;
  /** Position ids of the rows of an 'all' result. */
  positionIds: Int32Array;
}

/** One request, tokenised and preprocessed. */
export interface Row {
  before: Int32Array;
  after: Int32Array;
  pixels: Float32Array;
}

/** A prefilled batch, ready for decoding. */
interface Prefilled {
  cache: KVCache;
  /** [B, S, D] hidden states after the last layer. */
  x: Tensor;
  /** Valid rows of x per batch row. */
  length: Int32Array;
  /** Position id of the next token per row. */
  nextPosition: Int32Array;
  /** [B, S] position ids of the rows of x at the last layers (row-major, S = x.shape[1]). */
  positions: Int32Array;
  kept: Int32Array[];
  pruneMs: number;
  prefillMs: number;
}

const now = () => performance.now();

export class VLM {
  readonly dir: string;
  readonly config: LlavaConfig;
  readonly tokenizer: TextTokenizer;
  readonly processor: ProcessorConfig;
  readonly backend: ResolvedBackend;
  /** Visual tokens per image. */
  readonly numImageTokens: number;
  /** The grid of visual tokens (rows x cols). */
  readonly grid: { rows: number; cols: number };
  private readonly weights: LlavaWeights;
  /** The ops as this model awaits them. */
  private readonly k: Kernels;

  constructor(dir: string, config: LlavaConfig, tokenizer: TextTokenizer, processor: ProcessorConfig, weights: LlavaWeights, backend: ResolvedBackend, opMode: 'async' | 'sync' = 'async') {
    this.dir = dir;
    this.config = config;
    this.tokenizer = tokenizer;
    this.processor = processor;
    this.weights = weights;
    this.backend = backend;
    this.k = kernels(opMode);
    const side = config.vision.imageSize / config.vision.patchSize;
    this.grid = { rows: side, cols: side };
    this.numImageTokens = config.visionFeatureSelectStrategy === 'full' ? side * side + 1 : side * side;
  }

  /** Greedy decoding with a KV cache for one request. */
  async generate(request: GenerateRequest): Promise<GenerateResult> {
    return (await this.generateBatch([request], request.signal ? { signal: request.signal } : {}))[0]!;
  }

  /**
   * Greedy decoding for several requests in one batch. Rows may differ in
   * image, prompt and keep ratio (ragged); they share the pruner, its point
   * and maxNewTokens (the largest one runs; each row stops at its own).
   */
  async generateBatch(requests: readonly GenerateRequest[], options: { signal?: AbortSignal } = {}): Promise<GenerateResult[]> {
    if (!Array.isArray(requests) || requests.length === 0) check.fail('ERR_GRIP_SHAPE', 'a non-empty array of requests', 'requests', Array.isArray(requests) ? 'an empty array' : describe(requests));
    const signal = options.signal ?? requests[0]!.signal;
    check.signal(signal, 'signal');
    const pruner = requests[0]!.pruner;
    requests.forEach((r, b) => {
      if (r.pruner !== pruner) check.fail('ERR_GRIP_RANGE', 'the same pruner in every request of a batch', `requests[${b}].pruner`, r.pruner?.name ?? 'none');
      checkPruneOptions(r, `requests[${b}]`);
      if (r.maxNewTokens !== undefined) check.integer(r.maxNewTokens, `requests[${b}].maxNewTokens`, 0, 1 << 20);
    });
    const maxNew = requests.map((r) => r.maxNewTokens ?? 32);
    const t0 = now();
    const rows = await Promise.all(requests.map((r, b) => this.prepareRow(r, `requests[${b}]`, signal)));
    const t1 = now();
    const { visual, clsAttention } = await this.encodeImages(rows, pruner?.needs?.attention === 'cls', signal);
    const t2 = now();
    const keepRatio = Float32Array.from(requests, (r) => r.keepRatio ?? 1);
    const first = requests[0]!;
    const state = await this.prefill(rows, visual, {
      pruner, keepRatio, clsAttention, signal,
      cachePolicy: first.cachePolicy ?? 'keep',
      renumber: first.renumberPositions ?? false,
      extraCapacity: Math.max(...maxNew),
    });
    const t3 = now();
    const tokens = await this.decode(state, maxNew, requests.map((r) => r.stopAtEos ?? true), signal);
    const t4 = now();
    const N = this.numImageTokens;
    return rows.map((_, b) => ({
      text: this.tokenizer.decode(tokens[b]!, { skipSpecialTokens: true }).trim(),
      tokenIds: tokens[b]!,
      kept: { indices: state.kept[b]!, keepRatio: state.kept[b]!.length / N },
      prefillTokens: state.length[b]!,
      timings: { preprocessMs: t1 - t0, visionMs: t2 - t1, pruneMs: state.pruneMs, prefillMs: state.prefillMs, decodeMs: t4 - t3 },
    }));
  }

  /**
   * Runs one request up to a prune point and returns what a pruner sees
   * there (visual token states, text query, attention if asked), keeping
   * the image encoding and, for an in-LLM point, the unpruned layers < K for
   * answerLogProb: a trainer scores, samples keep-sets, then rewards them
   * without recomputing the shared part.
   */
  async prepare(request: PrepareRequest): Promise<PreparedPrompt> {
    if (typeof request !== 'object' || request === null) check.fail('ERR_GRIP_RANGE', 'a request object', 'request', String(request));
    const { signal } = request;
    check.signal(signal, 'request.signal');
    const point = request.point ?? 'pre-llm';
    const L = this.config.text.numLayers, N = this.numImageTokens;
    const K = pruneLayer(point, L, 'request.point');
    const source = request.attention;
    if (source !== undefined) check.oneOf(source, 'request.attention', ATTENTION_SOURCES);
    const attentionLayer = request.attentionLayer ?? 2;
    check.integer(attentionLayer, 'request.attentionLayer', 1, L - 1);
    const pooling = request.query ?? 'mean-text-after-image';
    check.oneOf(pooling, 'request.query', QUERY_POOLINGS);
    const answerCapacity = request.answerCapacity ?? 16;
    check.integer(answerCapacity, 'request.answerCapacity', 1, 1 << 16);
    const row = await this.prepareRow(request, 'request', signal);
    const { visual: projected, clsAttention } = await this.encodeImages([row], source === 'cls', signal);
    const llmSource = source === 'cls' ? undefined : source;
    let states: Tensor, query: Tensor, attention: Float32Array | undefined = source === 'cls' ? clsAttention : undefined;
    let stage: PreparedPrompt['stage'];
    if (K === 0) {
      states = projected;
      query = await this.textQuery([row], pooling, signal);
      if (llmSource) {
        const a = await this.stageA([row], projected, null, false, attentionLayer, 0, llmSource, signal);
        a.cache.dispose();
        attention = a.attention;
      }
    } else {
      const a = await this.stageA([row], projected, null, false, K, answerCapacity, llmSource, signal);
      states = await gatherRagged(this.k, a.x, [Int32Array.from({ length: N }, (_, i) => a.nb[0]! + i)], this.backend);
      query = await this.poolText(a.x, [a.nb[0]! + N], [a.na[0]!], pooling);
      if (llmSource) attention = a.attention;
      stage = { x: a.x, cache: a.cache, fullLen: a.fullLen[0]!, answerCapacity };
    }
    return new PreparedPrompt(this, point, states, query, attention, row, projected, stage);
  }

  /**
   * log p(answer | image, prompt) under each keep-set, in one batch: the image
   * is encoded once, and for an in-LLM point the unpruned layers < K run once
   * and are shared by every keep-set (the GRPO reward needs exactly this).
   * Pass `prepared` (from prepare()) to reuse that work across calls.
   */
  async answerLogProb(request: AnswerLogProbRequest): Promise<AnswerLogProbResult> {
    if (typeof request !== 'object' || request === null) check.fail('ERR_GRIP_RANGE', 'a request object', 'request', String(request));
    const { signal } = request;
    check.signal(signal, 'request.signal');
    const o = { backend: this.backend, k: this.k, signal };
    const N = this.numImageTokens, L = this.config.text.numLayers, V = this.config.text.vocabSize;
    if (!Array.isArray(request.keepSets) || request.keepSets.length === 0) check.fail('ERR_GRIP_SHAPE', 'a non-empty array of keep-sets', 'request.keepSets', Array.isArray(request.keepSets) ? 'an empty array' : describe(request.keepSets));
    const all = Int32Array.from({ length: N }, (_, i) => i);
    const keepSets = checkKeepSets('keepSets', request.keepSets.map((s) => (s === null ? all : Int32Array.from(s))), request.keepSets.length, N);
    const answerIds = typeof request.answer === 'string'
      ? this.tokenizer.encode(request.answer, { addSpecialTokens: false })
      : Int32Array.from(request.answer);
    if (answerIds.length === 0) check.fail('ERR_GRIP_SHAPE', 'at least one answer token', 'request.answer', '0');
    answerIds.forEach((id, i) => check.integer(id, `answer token [${i}]`, 0, V - 1));
    const G = keepSets.length, A = answerIds.length;
    const renumber = request.renumberPositions ?? false;
    const policy = request.cachePolicy ?? 'keep';
    let prepared = request.prepared;
    if (prepared !== undefined) {
      if (!(prepared instanceof PreparedPrompt) || prepared.model !== this) check.fail('ERR_GRIP_RANGE', 'a PreparedPrompt from this model', 'request.prepared', describe(prepared));
      if (request.point !== undefined && JSON.stringify(request.point) !== JSON.stringify(prepared.point)) {
        check.fail('ERR_GRIP_RANGE', `the point of request.prepared (${JSON.stringify(prepared.point)})`, 'request.point', JSON.stringify(request.point));
      }
    } else {
      prepared = await this.prepare({ ...request, point: request.point ?? 'pre-llm', answerCapacity: A });
    }
    const K = pruneLayer(prepared.point, L);
    const { row } = prepared;
    let state: Prefilled;
    if (K === 0) {
      const fixed = { name: 'keepSets', point: 'pre-llm' as const, select: async () => keepSets };
      const rowsG = Array.from({ length: G }, () => row);
      state = await this.prefill(rowsG, await repeatRows(this.k, prepared.projected, G, this.backend), { pruner: fixed, keepRatio: new Float32Array(G).fill(1), cachePolicy: policy, renumber, extraCapacity: A, signal });
    } else {
      // Stage A ran once, for one row; G copies of its states and caches go on.
      const one = prepared.stage!;
      if (A > one.answerCapacity) check.fail('ERR_GRIP_RANGE', `at most ${one.answerCapacity} answer tokens (prepare's answerCapacity)`, 'request.answer', `${A} tokens`);
      const cache = new KVCache(G, one.cache.capacity, this.config.text, deviceOf(this.backend), K);
      for (let l = 0; l < K; l++) {
        cache.keys[l] = await repeatRows(this.k, one.cache.keys[l]!, G, this.backend);
        cache.values[l] = await repeatRows(this.k, one.cache.values[l]!, G, this.backend);
        cache.lengths[l] = new Int32Array(G).fill(one.cache.lengths[l]![0]!);
      }
      const x = await repeatRows(this.k, one.x, G, this.backend);
      state = await this.stageB(x, cache, keepSets, new Int32Array(G).fill(row.before.length), new Int32Array(G).fill(one.fullLen), K, policy, renumber, signal);
    }
    // The answer tokens, teacher-forced as one chunk after the prompt.
    const ids = new Int32Array(G * A);
    const positions = new Int32Array(G * A);
    for (let g = 0; g < G; g++) {
      ids.set(answerIds, g * A);
      for (let i = 0; i < A; i++) positions[g * A + i] = state.nextPosition[g]! + i;
    }
    const dev = deviceOf(this.backend);
    const xa = await this.k.embedding(this.weights.text.embed, int32Tensor(ids, [G, A], dev), o);
    await runDecoder(this.weights.text, this.config.text, xa, int32Tensor(positions, [G, A], dev), new Int32Array(G).fill(A), state.cache, { from: 0, to: L }, o);
    state.cache.dispose();
    // Token i is predicted by the last prompt row (i = 0) or by answer token i-1.
    const D = this.config.text.hiddenSize;
    const lastPrompt = await gatherRagged(this.k, state.x, Array.from(state.length, (len) => [len - 1]), this.backend);
    const first = await this.logSoftmaxRows(view(lastPrompt, [G, D]), o);
    const rest = A > 1 ? await this.logSoftmaxRows(view(await gatherRagged(this.k, xa, Array.from({ length: G }, () => Int32Array.from({ length: A - 1 }, (_, i) => i)), this.backend), [G * (A - 1), D]), o) : null;
    const tokenLogProbs = new Float32Array(G * A);
    const logProb = new Float64Array(G);
    const greedyMatch = new Uint8Array(G).fill(1);
    for (let g = 0; g < G; g++) {
      for (let i = 0; i < A; i++) {
        const offset = i === 0 ? g * V : (g * (A - 1) + i - 1) * V;
        const table = i === 0 ? first : rest!;
        const value = table[offset + answerIds[i]!]!;
        tokenLogProbs[g * A + i] = value;
        logProb[g] = logProb[g]! + value;
        if (argmax(table, offset, V) !== answerIds[i]) greedyMatch[g] = 0;
      }
    }
    return { logProb, tokenLogProbs, answerIds, greedyMatch, ...(request.returnFirstLogProbs ? { firstLogProbs: first } : {}) };
  }

  /** Logits of one request (for conformance checks and analysis). */
  async logits(request: LogitsRequest): Promise<LogitsResult> {
    if (typeof request !== 'object' || request === null) check.fail('ERR_GRIP_RANGE', 'a request object', 'request', String(request));
    const { signal } = request;
    check.signal(signal, 'request.signal');
    checkPruneOptions(request, 'request');
    const positions = request.positions ?? 'last';
    check.oneOf(positions, 'request.positions', ['last', 'all']);
    const row = await this.prepareRow(request, 'request', signal);
    const { visual, clsAttention } = await this.encodeImages([row], request.pruner?.needs?.attention === 'cls', signal);
    const state = await this.prefill([row], visual, {
      pruner: request.pruner, keepRatio: Float32Array.of(request.keepRatio ?? 1), clsAttention, signal,
      cachePolicy: request.cachePolicy ?? 'keep', renumber: request.renumberPositions ?? false, extraCapacity: 0,
    });
    state.cache.dispose();
    const o = { backend: this.backend, k: this.k, signal };
    const S = state.length[0]!, D = this.config.text.hiddenSize;
    const rowsWanted = positions === 'all' ? Int32Array.from({ length: S }, (_, i) => i) : Int32Array.of(S - 1);
    const h = await gatherRagged(this.k, state.x, [rowsWanted], this.backend);
    const logits = (await lmHead(this.weights.text, this.config.text, view(h, [rowsWanted.length, D]), o)).toHost();
    const positionIds = state.positions.slice(0, S);
    return { logits, kept: state.kept[0]!, positionIds: positions === 'all' ? positionIds : positionIds.slice(S - 1) };
  }

  /** Frees device memory (nothing to do on the CPU). */
  dispose(): void {
    const w = this.weights;
    const all = [
      w.vision.patch.weight, w.vision.tokenBias, w.vision.preNorm.weight, w.vision.preNorm.bias,
      ...w.vision.layers.flatMap((l) => [l.norm1.weight, l.norm1.bias, l.norm2.weight, l.norm2.bias, ...[l.q, l.k, l.v, l.o, l.fc1, l.fc2].flatMap((x) => [x.weight, x.bias])]),
      w.projector.linear1.weight, w.projector.linear1.bias, w.projector.linear2.weight, w.projector.linear2.bias,
      w.text.embed, w.text.lmHead, w.text.norm,
      ...w.text.layers.flatMap((l) => [l.inputNorm, l.postNorm, ...[l.q, l.k, l.v, l.o, l.gate, l.up, l.down].map((x) => x.weight)]),
    ];
    for (const t of all) t?.dispose();
  }

  // ---- stages -------------------------------------------------------------------------

  private async prepareRow(request: ImageSource & PromptSource, what: string, signal: AbortSignal | undefined): Promise<Row> {
    const vc = this.config.vision;
    let pixels: Float32Array;
    if (request.pixelValues !== undefined) {
      check.tensor(request.pixelValues, `${what}.pixelValues`, '[C,H,W]', ['f32'], [vc.numChannels, vc.imageSize, vc.imageSize]);
      pixels = request.pixelValues.toHost().host as Float32Array;
    } else if (request.image !== undefined) {
      const t = await preprocessImage(request.image, this.processor, signal ? { signal } : {});
      if (t.shape[1] !== vc.imageSize || t.shape[2] !== vc.imageSize) {
        throw new GripError('ERR_GRIP_SHAPE', `expected pixel values [3, ${vc.imageSize}, ${vc.imageSize}] (vision_config.image_size) for the crop size of ${this.dir}/preprocessor_config.json but received [${t.shape.join(', ')}]`);
      }
      pixels = t.host as Float32Array;
    } else {
      return check.fail('ERR_GRIP_RANGE', 'image or pixelValues', what, 'neither');
    }
    let ids: Int32Array;
    const imageToken = this.config.imageTokenIndex;
    if (request.inputIds !== undefined) {
      ids = Int32Array.from(request.inputIds);
      ids.forEach((id, i) => check.integer(id, `${what}.inputIds[${i}]`, 0, this.config.text.vocabSize - 1));
    } else if (typeof request.prompt === 'string') {
      const text = buildPrompt(this.tokenizer, request.prompt, request.template ? { template: request.template } : {});
      ids = encodePrompt(this.tokenizer, text, imageToken);
    } else {
      return check.fail('ERR_GRIP_RANGE', 'prompt (a string) or inputIds', what, 'neither');
    }
    // One image token (expanded here), or the expanded run of N image tokens newer processors emit.
    const at = ids.indexOf(imageToken);
    const count = ids.reduce((n, id) => n + (id === imageToken ? 1 : 0), 0);
    const N = this.numImageTokens;
    if (at < 0 || (count !== 1 && count !== N) || (count === N && ids[at + N - 1] !== imageToken)) {
      check.fail('ERR_GRIP_RANGE', `one image token (${imageToken}) or a run of ${N}`, `${what} token ids`, `${count}`);
    }
    return { before: ids.slice(0, at), after: ids.slice(at + count), pixels };
  }

  private async encodeImages(rows: Row[], clsAttention: boolean, signal: AbortSignal | undefined): Promise<{ visual: Tensor; clsAttention?: Float32Array | undefined }> {
    const vc = this.config.vision;
    const per = vc.numChannels * vc.imageSize * vc.imageSize;
    const pixels = new Float32Array(rows.length * per);
    rows.forEach((r, b) => pixels.set(r.pixels, b * per));
    const o = { backend: this.backend, k: this.k, signal };
    const out = await runVision(this.weights.vision, this.config, pixels, rows.length, { ...o, clsAttention });
    const visual = await runProjector(this.weights.projector, this.config, out.features, o);
    return { visual, clsAttention: out.clsAttention };
  }

  /** Embeddings [B, maxLen, D] of ragged id lists (null when every list is empty). */
  private async embed(lists: Int32Array[], signal: AbortSignal | undefined): Promise<Tensor | null> {
    const maxLen = Math.max(...lists.map((l) => l.length));
    if (maxLen === 0) return null;
    const ids = new Int32Array(lists.length * maxLen);
    lists.forEach((l, b) => ids.set(l, b * maxLen));
    return this.k.embedding(this.weights.text.embed, int32Tensor(ids, [lists.length, maxLen], deviceOf(this.backend)), { backend: this.backend, signal });
  }

  /** [B, D] the pre-LLM query: the embeddings of the text after the image, pooled (zeros when there is none). */
  private async textQuery(rows: Row[], pooling: QueryPooling, signal: AbortSignal | undefined): Promise<Tensor> {
    const after = await this.embed(rows.map((r) => r.after), signal);
    if (!after) return zerosOn([rows.length, this.config.text.hiddenSize], deviceOf(this.backend));
    return this.poolText(after, new Int32Array(rows.length), rows.map((r) => r.after.length), pooling);
  }

  /** [B, D] the text rows start[b] .. start[b] + count[b] - 1 of x pooled: their mean, or the last of them (zeros when count is 0). */
  private poolText(x: Tensor, start: ArrayLike<number>, count: ArrayLike<number>, pooling: QueryPooling): Promise<Tensor> {
    if (pooling === 'mean-text-after-image') return this.meanRows(x, start, count);
    return this.meanRows(x, Array.from(start, (s, b) => s + Math.max(0, count[b]! - 1)), Array.from(count, (n) => Math.min(n, 1)));
  }

  /** [B, D] mean of rows [start[b], start[b] + count[b]) of x [B, S, D] (zeros where count is 0). */
  private async meanRows(x: Tensor, start: ArrayLike<number>, count: ArrayLike<number>): Promise<Tensor> {
    const B = x.shape[0]!, D = x.shape[2]!;
    const lists = Array.from({ length: B }, (_, b) => Int32Array.from({ length: count[b]! }, (_, i) => start[b]! + i));
    const rows = (await gatherRagged(this.k, x, lists, this.backend)).toHost().host as Float32Array;
    const maxLen = Math.max(0, ...lists.map((l) => l.length));
    const out = new Float32Array(B * D);
    for (let b = 0; b < B; b++) {
      const n = count[b]!;
      for (let i = 0; i < n; i++) {
        for (let d = 0; d < D; d++) out[b * D + d]! += rows[(b * maxLen + i) * D + d]! / n;
      }
    }
    const t = tensor(out, [B, D]);
    return this.backend === 'cuda' ? t.toDevice() : t;
  }

  private async runPruner(pruner: Pruner, ctx: PruneContext): Promise<Int32Array[]> {
    const sets = await pruner.select(ctx);
    return checkKeepSets(pruner.name, sets, ctx.numKeep.length, ctx.grid.rows * ctx.grid.cols);
  }

  /**
   * Builds T_before ++ visual ++ T_after per row (visual: all N tokens, or
   * the pre-LLM keep-sets), allocates the cache, and runs layers [0, K).
   */
  private async stageA(rows: Row[], visual: Tensor, keepPre: Int32Array[] | null, renumber: boolean, K: number, extraCapacity: number, probe: AttentionSource | undefined, signal: AbortSignal | undefined) {
    const B = rows.length, N = visual.shape[1]!, D = this.config.text.hiddenSize;
    const o = { backend: this.backend, k: this.k, signal };
    const dev = deviceOf(this.backend);
    const nb = Int32Array.from(rows, (r) => r.before.length);
    const na = Int32Array.from(rows, (r) => r.after.length);
    const visualCount = Int32Array.from(rows, (_, b) => (keepPre ? keepPre[b]!.length : N));
    const length = Int32Array.from(rows, (_, b) => nb[b]! + visualCount[b]! + na[b]!);
    const fullLen = Int32Array.from(rows, (_, b) => nb[b]! + N + na[b]!);
    const S = Math.max(...length);
    const x = zerosOn([B, S, D], dev);
    const before = await this.embed(rows.map((r) => r.before), signal);
    const after = await this.embed(rows.map((r) => r.after), signal);
    const zeros = new Int32Array(B);
    if (before) await writeRows(this.k, x, before, zeros, nb, this.backend);
    await writeRows(this.k, x, keepPre ? await gatherRagged(this.k, visual, keepPre, this.backend) : visual, nb, visualCount, this.backend);
    if (after) await writeRows(this.k, x, after, nb.map((n, b) => n + visualCount[b]!), na, this.backend);
    const positions = new Int32Array(B * S);
    rows.forEach((_, b) => {
      const p = positions.subarray(b * S, b * S + length[b]!);
      for (let i = 0; i < length[b]!; i++) p[i] = i;
      if (keepPre && !renumber) {
        keepPre[b]!.forEach((k, i) => { p[nb[b]! + i] = nb[b]! + k; });
        for (let j = 0; j < na[b]!; j++) p[nb[b]! + visualCount[b]! + j] = nb[b]! + N + j;
      }
    });
    const cache = new KVCache(B, Math.max(...fullLen) + extraCapacity, this.config.text, dev);
    let attention: Float32Array | undefined;
    if (K > 0) {
      const probeRows = probe === 'last-token' || probe === 'text-tokens' ? probeRowsOf(probe, nb, N, fullLen) : undefined;
      const probs = await runDecoder(this.weights.text, this.config.text, x, int32Tensor(positions, [B, S], dev), length, cache, { from: 0, to: K }, { ...o, probe: probeRows && { layer: K - 1, rows: probeRows.union } });
      if (probeRows) attention = attentionToImage(probs!, probeRows, nb, N, this.config.text.numHeads);
    }
    return { x, positions, length, fullLen, nb, na, cache, attention };
  }

  /** Gathers the kept rows at layer K (compacting caches of layers < K per policy) and runs layers [K, L). */
  private async stageB(x: Tensor, cache: KVCache, kept: Int32Array[], nb: Int32Array, fullLen: Int32Array, K: number, policy: 'keep' | 'compact', renumber: boolean, signal: AbortSignal | undefined): Promise<Prefilled> {
    const N = this.numImageTokens, B = kept.length;
    const dev = deviceOf(this.backend);
    const o = { backend: this.backend, k: this.k, signal };
    const keepPositions = kept.map((set, b) => {
      const list = new Int32Array(fullLen[b]! - N + set.length);
      let n = 0;
      for (let i = 0; i < nb[b]!; i++) list[n++] = i;
      for (const k of set) list[n++] = nb[b]! + k;
      for (let i = nb[b]! + N; i < fullLen[b]!; i++) list[n++] = i;
      return list;
    });
    const length = Int32Array.from(keepPositions, (l) => l.length);
    const S = Math.max(...length);
    const t0 = now();
    const xKept = await gatherRagged(this.k, x, keepPositions, this.backend);
    if (policy === 'compact') {
      const flat = new Int32Array(B * S).fill(-1);
      keepPositions.forEach((l, b) => flat.set(l, b * S));
      const keepTensor = int32Tensor(flat, [B, S], dev);
      for (let l = 0; l < K; l++) {
        cache.lengths[l] = await this.k.compactKVInPlace(cache.keys[l]!, keepTensor, o);
        await this.k.compactKVInPlace(cache.values[l]!, keepTensor, o);
      }
    }
    const positions = new Int32Array(B * S);
    keepPositions.forEach((l, b) => positions.set(renumber ? l.map((_, i) => i) : l, b * S));
    await runDecoder(this.weights.text, this.config.text, xKept, int32Tensor(positions, [B, S], dev), length, cache, { from: K, to: this.config.text.numLayers }, o);
    return { cache, x: xKept, length, positions, nextPosition: renumber ? length.slice() : fullLen.slice(), kept, pruneMs: 0, prefillMs: now() - t0 };
  }

  private async prefill(rows: Row[], visual: Tensor, spec: { pruner: Pruner | undefined; keepRatio: Float32Array; clsAttention?: Float32Array | undefined; cachePolicy: 'keep' | 'compact'; renumber: boolean; extraCapacity: number; signal: AbortSignal | undefined }): Promise<Prefilled> {
    const { pruner, signal } = spec;
    const B = rows.length, N = visual.shape[1]!, L = this.config.text.numLayers;
    const allKept = () => rows.map(() => Int32Array.from({ length: N }, (_, i) => i));
    const K = pruner ? pruneLayer(pruner.point, L) : 0;
    const source = pruner?.needs?.attention;
    const pooling = pruner?.needs?.query ?? 'mean-text-after-image';
    if (pruner) check.oneOf(pooling, `pruner "${pruner.name}" needs.query`, QUERY_POOLINGS);
    if (pruner && source !== undefined && source !== 'cls' && K === 0) {
      throw new GripError('ERR_GRIP_UNSUPPORTED', `expected an in-LLM point ({ layer: K }) for a pruner that needs '${source}' attention but received 'pre-llm' (pruner "${pruner.name}")`);
    }
    const context = (states: Tensor, query: Tensor, attention: Float32Array | undefined): PruneContext => ({
      visual: states, query, keepRatio: spec.keepRatio,
      numKeep: Int32Array.from(spec.keepRatio, (r) => numKeepFor(r, N)),
      grid: this.grid, backend: this.backend, signal,
      ...(attention ? { attention } : {}),
    });
    if (!pruner || K === 0) {
      let kept: Int32Array[] | null = null;
      let pruneMs = 0;
      if (pruner) {
        const t0 = now();
        const query = await this.textQuery(rows, pooling, signal);
        kept = await this.runPruner(pruner, context(visual, query, source === 'cls' ? spec.clsAttention : undefined));
        pruneMs = now() - t0;
      }
      const t1 = now();
      const a = await this.stageA(rows, visual, kept, spec.renumber, 0, spec.extraCapacity, undefined, signal);
      await runDecoder(this.weights.text, this.config.text, a.x, int32Tensor(a.positions, [B, a.x.shape[1]!], deviceOf(this.backend)), a.length, a.cache, { from: 0, to: L }, { backend: this.backend, k: this.k, signal });
      return {
        cache: a.cache, x: a.x, length: a.length, positions: a.positions,
        nextPosition: kept && spec.renumber ? a.length.slice() : a.fullLen.slice(),
        kept: kept ?? allKept(), pruneMs, prefillMs: now() - t1,
      };
    }
    const t0 = now();
    const a = await this.stageA(rows, visual, null, false, K, spec.extraCapacity, source, signal);
    const t1 = now();
    const states = await gatherRagged(this.k, a.x, rows.map((_, b) => Int32Array.from({ length: N }, (_, i) => a.nb[b]! + i)), this.backend);
    const query = await this.poolText(a.x, a.nb.map((n) => n + N), a.na, pooling);
    const kept = await this.runPruner(pruner, context(states, query, source === 'cls' ? spec.clsAttention : a.attention));
    const t2 = now();
    const b = await this.stageB(a.x, a.cache, kept, a.nb, a.fullLen, K, spec.cachePolicy, spec.renumber, signal);
    return { ...b, pruneMs: t2 - t1, prefillMs: t1 - t0 + b.prefillMs };
  }

  /** Greedy decoding after a prefill; rows stop at EOS (when asked) or their token budget. */
  private async decode(state: Prefilled, maxNew: number[], stopAtEos: boolean[], signal: AbortSignal | undefined): Promise<Int32Array[]> {
    const B = maxNew.length, D = this.config.text.hiddenSize, V = this.config.text.vocabSize;
    const o = { backend: this.backend, k: this.k, signal };
    const dev = deviceOf(this.backend);
    const eos = new Set<number>([this.config.text.eosTokenId ?? [], this.tokenizer.eosTokenId ?? []].flat());
    const out: number[][] = Array.from({ length: B }, () => []);
    const done = maxNew.map((m) => m === 0);
    let hidden = view(await gatherRagged(this.k, state.x, Array.from(state.length, (len) => [len - 1]), this.backend), [B, D]);
    const position = state.nextPosition.slice();
    try {
      while (!done.every(Boolean)) {
        const logits = (await lmHead(this.weights.text, this.config.text, hidden, o)).toHost().host as Float32Array;
        const next = new Int32Array(B);
        for (let b = 0; b < B; b++) {
          if (done[b]) continue;
          const token = argmax(logits, b * V, V);
          out[b]!.push(token);
          next[b] = token;
          if (out[b]!.length >= maxNew[b]! || (stopAtEos[b] && eos.has(token))) done[b] = true;
        }
        if (done.every(Boolean)) break;
        const active = Int32Array.from(done, (d) => (d ? 0 : 1));
        const x = await this.k.embedding(this.weights.text.embed, int32Tensor(next, [B, 1], dev), o);
        await runDecoder(this.weights.text, this.config.text, x, int32Tensor(position.slice(), [B, 1], dev), active, state.cache, { from: 0, to: this.config.text.numLayers }, o);
        for (let b = 0; b < B; b++) position[b]! += active[b]!;
        hidden = view(x, [B, D]);
      }
    } finally {
      state.cache.dispose();
    }
    return out.map((tokens) => Int32Array.from(tokens));
  }

  private async logSoftmaxRows(h: Tensor, o: RunOptions): Promise<Float32Array> {
    const logits = await lmHead(this.weights.text, this.config.text, h, o);
    return (await this.k.softmax(logits, { backend: o.backend, signal: o.signal, log: true })).toHost().host as Float32Array;
  }
}

function checkPruneOptions(r: PruneOptions, what: string): void {
  if (r.keepRatio !== undefined) check.number(r.keepRatio, `${what}.keepRatio`, (v) => v > 0 && v <= 1, 'a number in (0, 1]');
  if (r.cachePolicy !== undefined) check.oneOf(r.cachePolicy, `${what}.cachePolicy`, ['keep', 'compact']);
  if (r.pruner !== undefined && (typeof r.pruner !== 'object' || r.pruner === null || typeof r.pruner.select !== 'function')) {
    check.fail('ERR_GRIP_RANGE', 'a Pruner (an object with point and select())', `${what}.pruner`, String(r.pruner));
  }
}

/** The query rows whose attention a probe needs: per batch row, and their union (shared by the batch). */
function probeRowsOf(source: 'last-token' | 'text-tokens', nb: Int32Array, N: number, fullLen: Int32Array): { perRow: number[][]; union: number[] } {
  const perRow = Array.from(fullLen, (len, b) => {
    if (source === 'last-token') return [len - 1];
    const rows: number[] = [];
    for (let i = nb[b]! + N; i < len; i++) rows.push(i);
    return rows.length > 0 ? rows : [len - 1];
  });
  const union = [...new Set(perRow.flat())].sort((p, q) => p - q);
  return { perRow, union };
}

/** probs [B, H, R, T] -> [B, N]: mean over heads and the row's own query rows, columns nb..nb+N-1. */
function attentionToImage(probs: Tensor, rows: { perRow: number[][]; union: number[] }, nb: Int32Array, N: number, H: number): Float32Array {
  const host = probs.toHost().host as Float32Array;
  const [B, , R, T] = probs.shape as [number, number, number, number];
  const out = new Float32Array(B * N);
  for (let b = 0; b < B; b++) {
    const mine = rows.perRow[b]!;
    const weight = 1 / (H * mine.length);
    for (const q of mine) {
      const r = rows.union.indexOf(q);
      for (let h = 0; h < H; h++) {
        const base = ((b * H + h) * R + r) * T + nb[b]!;
        for (let n = 0; n < N; n++) out[b * N + n]! += host[base + n]! * weight;
      }
    }
  }
  return out;
}

function argmax(values: Float32Array, offset: number, n: number): number {
  let best = 0, bestValue = -Infinity;
  for (let i = 0; i < n; i++) {
    const v = values[offset + i]!;
    if (v > bestValue) {
      bestValue = v;
      best = i;
    }
  }
  return best;
}

/** Loads a LLaVA checkpoint directory (Hugging Face layout). */
export async function loadVLM(dir: string, options: LoadVLMOptions = {}): Promise<VLM> {
  if (typeof dir !== 'string' || dir.length === 0) check.fail('ERR_GRIP_RANGE', 'a model directory path', 'dir', String(dir));
  check.signal(options.signal, 'options.signal');
  const requested = options.backend ?? 'auto';
  check.oneOf(requested, 'options.backend', ['auto', 'cpu', 'cuda']);
  const dtype = options.dtype ?? 'auto';
  check.oneOf(dtype, 'options.dtype', ['auto', 'f32', 'f16', 'bf16']);
  if (options.threads !== undefined) setNumThreads(options.threads);
  const opMode = options.opMode ?? 'auto';
  check.oneOf(opMode, 'options.opMode', ['auto', 'async', 'sync']);
  const backend = resolveBackend(requested, false);
  const config = await loadLlavaConfig(dir);
  const [tokenizer, processor, checkpoint] = await Promise.all([TextTokenizer.load(dir), loadProcessorConfig(dir), Checkpoint.open(dir)]);
  try {
    const weights = await loadWeights(checkpoint, config, dir, { dtype, device: deviceOf(backend), signal: options.signal });
    const small = Math.max(config.text.hiddenSize, config.vision.hiddenSize) <= 512;
    const mode = opMode === 'auto' ? (backend !== 'cuda' && small ? 'sync' : 'async') : opMode;
    return new VLM(dir, config, tokenizer, processor, weights, backend, mode);
  } finally {
    await checkpoint.close();
  }
}
