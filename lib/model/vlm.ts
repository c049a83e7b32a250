// vlm.ts — the VLM facade: a loaded model family behind generate,
// generateBatch, prepare, answerLogProb and logits. It checks each request,
// asks the family for the visual tokens, and hands the rest to the shared
// stages of lib/model/runtime/ (sequence assembly, prefill with the prune
// hook, KV compaction, decoding, the answer log-likelihood). TypeScript
// orchestrates one native op per step; every op runs off the event loop.
import { GripError } from '../errors.js';
import { resolveBackend, setNumThreads, type ResolvedBackend } from '../backend.js';
import { describe } from '../tensor.js';
import { check } from '../validate.js';
import { ATTENTION_SOURCES, QUERY_POOLINGS, checkKeepSets, pruneLayer } from '../prune/pruner.js';
import type { FamilyConfig, FamilyModel } from './family.js';
import { familyOf } from './families.js';
import { kernels } from './kernels.js';
import { lmHead } from './llama.js';
import { quantizeDecoder } from './weights.js';
import type { ProcessorConfig } from './processor.js';
import type { QwenVLProcessorConfig } from './qwen_vl/processor.js';
import type { TextTokenizer } from './tokenizer.js';
import { gatherRagged, deviceOf, view } from '../moves.js';
import { opOptions, type Runtime } from './runtime/context.js';
import { DecodeBatch } from './runtime/continuous.js';
import { greedyDecode } from './runtime/decode.js';
import { textDeltas } from './runtime/detokenize.js';
import { answerLogLikelihood } from './runtime/loglik.js';
import { prefill, prepareAtPoint } from './runtime/prefill.js';
import { checkBatch, checkPruneOptions, checkRequestObject, splitPrompt } from './runtime/request.js';
import type {
  AnswerLogProbRequest, AnswerLogProbResult, GenerateBatchOptions, GenerateRequest, GenerateResult, ImageSource, JoinHooks, LoadVLMOptions,
  LogitsRequest, LogitsResult, PrepareRequest, PromptSource, Row, StreamEvent,
} from './runtime/types.js';
import { PreparedPrompt } from './runtime/types.js';

export { PreparedPrompt } from './runtime/types.js';
export { DecodeBatch } from './runtime/continuous.js';
export type * from './runtime/types.js';

const now = () => performance.now();

export class VLM {
  readonly dir: string;
  /** The family's resolved config.json (narrow on `modelType` for a family's own keys). */
  readonly config: FamilyConfig;
  readonly tokenizer: TextTokenizer;
  readonly processor: ProcessorConfig | QwenVLProcessorConfig;
  readonly backend: ResolvedBackend;
  /** Visual tokens per image (LLaVA-NeXT: the most an image can get; each image has its own count). */
  readonly numImageTokens: number;
  /** The grid of visual tokens (rows x cols; LLaVA-NeXT: that of the largest layout). */
  readonly grid: { rows: number; cols: number };
  private readonly model: FamilyModel;
  private readonly rt: Runtime;

  constructor(model: FamilyModel, backend: ResolvedBackend, opMode: 'async' | 'sync' = 'async', decoder: 'fused' | 'ops' = 'fused') {
    this.model = model;
    this.dir = model.dir;
    this.config = model.config;
    this.tokenizer = model.tokenizer;
    this.processor = model.processor;
    this.backend = backend;
    this.numImageTokens = model.layout.numImageTokens;
    this.grid = model.layout.grid;
    this.rt = { text: model.text, layout: model.layout, backend, k: kernels(opMode), decoder };
  }

  /** Greedy decoding with a KV cache for one request. */
  async generate(request: GenerateRequest): Promise<GenerateResult> {
    return (await this.generateBatch([request], request.signal ? { signal: request.signal } : {}))[0]!;
  }

  /**
   * Greedy decoding for several requests in one batch. Rows may differ in
   * image, prompt and keep ratio (ragged); they share the pruner, its point
   * and maxNewTokens (the largest one runs; each row stops at its own).
   * `options.signal` stops the whole batch; `options.rowSignals[b]` stops
   * row b alone (the server cancels a disconnected client's row so).
   */
  async generateBatch(requests: readonly GenerateRequest[], options: GenerateBatchOptions = {}): Promise<GenerateResult[]> {
    checkBatch(requests);
    const signal = options.signal ?? requests[0]!.signal;
    check.signal(signal, 'signal');
    if (options.onToken !== undefined && typeof options.onToken !== 'function') check.fail('ERR_GRIP_RANGE', 'a function', 'options.onToken', describe(options.onToken));
    const { rowSignals } = options;
    if (rowSignals !== undefined) {
      if (!Array.isArray(rowSignals) || rowSignals.length !== requests.length) check.fail('ERR_GRIP_SHAPE', `an array of ${requests.length} signals (one per request)`, 'options.rowSignals', describe(rowSignals));
      rowSignals.forEach((s, b) => check.signal(s, `options.rowSignals[${b}]`));
    }
    return this.runBatch(requests, (b) => `requests[${b}]`, signal, options.onToken, rowSignals);
  }

  /**
   * Greedy decoding of one request as a stream: a `token` event per
   * generated token (its id and the text it adds), then one `done` event
   * with the whole result (whose text is trimmed, as generate's). Aborting
   * the request's signal, or leaving the loop early, stops the decoding and
   * frees its cache.
   */
  async *stream(request: GenerateRequest): AsyncGenerator<StreamEvent, void, undefined> {
    checkRequestObject(request);
    checkPruneOptions(request, 'request');
    if (request.maxNewTokens !== undefined) check.integer(request.maxNewTokens, 'request.maxNewTokens', 0, 1 << 20);
    check.signal(request.signal, 'request.signal');
    const controller = new AbortController();
    const outer = request.signal;
    const forward = () => controller.abort(outer!.reason);
    if (outer?.aborted) forward();
    else outer?.addEventListener('abort', forward, { once: true });
    const queue: number[] = [];
    let wake: (() => void) | undefined;
    let finished: { result: GenerateResult } | { error: unknown } | undefined;
    const running = this.runBatch([request], () => 'request', controller.signal, (_, token) => { queue.push(token); wake?.(); })
      .then((results) => { finished = { result: results[0]! }; }, (error: unknown) => { finished = { error }; })
      .finally(() => wake?.());
    const delta = textDeltas(this.tokenizer);
    try {
      for (;;) {
        while (queue.length > 0) {
          const token = queue.shift()!;
          yield { type: 'token', token, text: delta(token) };
        }
        if (finished !== undefined) break;
        await new Promise<void>((resolve) => { wake = resolve; });
        wake = undefined;
      }
      const end = finished as { result: GenerateResult } | { error: unknown };
      if ('error' in end) throw end.error;
      yield { type: 'done', result: end.result };
    } finally {
      if (finished === undefined) {
        controller.abort(new GripError('ERR_GRIP_RANGE', 'expected the stream to be read to its end but received an early return'));
        await running;
      }
      outer?.removeEventListener('abort', forward);
    }
  }

  private async runBatch(requests: readonly GenerateRequest[], what: (row: number) => string, signal: AbortSignal | undefined, onToken: ((row: number, token: number) => void) | undefined, rowSignals?: readonly (AbortSignal | undefined)[]): Promise<GenerateResult[]> {
    const maxNew = requests.map((r) => r.maxNewTokens ?? 32);
    const group = await this.prefillGroup(requests, what, signal);
    const t3 = now();
    const tokens = await greedyDecode(this.rt, group.state, { maxNew, stopAtEos: requests.map((r) => r.stopAtEos ?? true), eos: this.eos(), signal, onToken, rowSignals });
    const decodeMs = now() - t3;
    return requests.map((_, b) => group.result(b, tokens[b]!, decodeMs));
  }

  /** The preprocessing, vision tower and prefill (with the prune hook) of a group of requests, and how each row's result is made. */
  private async prefillGroup(requests: readonly GenerateRequest[], what: (row: number) => string, signal: AbortSignal | undefined) {
    const first = requests[0]!, pruner = first.pruner;
    const t0 = now();
    const rows = await Promise.all(requests.map((r, b) => this.row(r, what(b), signal)));
    const t1 = now();
    const { visual, clsAttention } = await this.model.encode(rows.map((r) => r.pixels), pruner?.needs?.attention === 'cls', opOptions(this.rt, signal));
    const t2 = now();
    const state = await prefill(this.rt, {
      rows, visual, pruner, clsAttention, signal,
      keepRatio: Float32Array.from(requests, (r) => r.keepRatio ?? 1),
      cachePolicy: first.cachePolicy ?? 'keep',
      renumber: first.renumberPositions ?? false,
      parts: { imageNewline: first.imageNewline ?? 'prune', budget: first.budget ?? 'image' },
      extraCapacity: Math.max(...requests.map((r) => r.maxNewTokens ?? 32)),
      outputs: 'last', // decoding reads each row's last position only
    });
    const result = (b: number, tokens: Int32Array, decodeMs: number): GenerateResult => ({
      text: this.tokenizer.decode(tokens, { skipSpecialTokens: true }).trim(),
      tokenIds: tokens,
      kept: { indices: state.kept[b]!, keepRatio: state.kept[b]!.length / rows[b]!.pixels.layout.numImageTokens, numImageTokens: rows[b]!.pixels.layout.numImageTokens },
      prefillTokens: state.length[b]!,
      timings: { preprocessMs: t1 - t0, visionMs: t2 - t1, pruneMs: state.pruneMs, prefillMs: state.prefillMs, decodeMs },
    });
    return { state, result };
  }

  /**
   * A decode batch for continuous batching (lib/serve/batcher.ts): groups of
   * requests join it with joinBatch between its steps, each row leaves when
   * it ends, and each row's result is the one generate gives it alone.
   */
  decodeBatch(): DecodeBatch {
    return new DecodeBatch(this.rt, this.eos());
  }

  /**
   * Prefills a group of requests (one pruner, as generateBatch) and adds its
   * rows to `batch`; `rows[b].onEnd` gets request b's result when its row
   * leaves (a row whose signal aborted leaves with the tokens it has).
   */
  async joinBatch(batch: DecodeBatch, requests: readonly GenerateRequest[], rows: readonly JoinHooks[]): Promise<void> {
    checkBatch(requests);
    if (!(batch instanceof DecodeBatch)) check.fail('ERR_GRIP_RANGE', 'a DecodeBatch from decodeBatch()', 'batch', describe(batch));
    if (!Array.isArray(rows) || rows.length !== requests.length) check.fail('ERR_GRIP_SHAPE', `an array of ${requests.length} row hooks (one per request)`, 'rows', Array.isArray(rows) ? `${rows.length}` : describe(rows));
    rows.forEach((r, b) => {
      if (typeof r?.onEnd !== 'function') check.fail('ERR_GRIP_RANGE', 'a function', `rows[${b}].onEnd`, describe(r?.onEnd));
      check.signal(r.signal, `rows[${b}].signal`);
    });
    const group = await this.prefillGroup(requests, (b) => `requests[${b}]`, undefined);
    await batch.join(group.state, rows.map((hooks, b) => ({
      maxNew: requests[b]!.maxNewTokens ?? 32,
      stopAtEos: requests[b]!.stopAtEos ?? true,
      signal: hooks.signal,
      onToken: hooks.onToken,
      onEnd: (tokens, decodeMs) => hooks.onEnd(group.result(b, tokens, decodeMs)),
    })));
  }

  /**
   * Runs one request up to a prune point and returns what a pruner sees
   * there (visual token states, text query, attention if asked), keeping
   * the image encoding and, for an in-LLM point, the unpruned layers < K for
   * answerLogProb: a trainer scores, samples keep-sets, then rewards them
   * without recomputing the shared part.
   */
  async prepare(request: PrepareRequest): Promise<PreparedPrompt> {
    checkRequestObject(request);
    const { signal } = request;
    check.signal(signal, 'request.signal');
    const point = request.point ?? 'pre-llm';
    const L = this.config.text.numLayers;
    const layer = pruneLayer(point, L, 'request.point');
    const source = request.attention;
    if (source !== undefined) check.oneOf(source, 'request.attention', ATTENTION_SOURCES);
    const attentionLayer = request.attentionLayer ?? 2;
    check.integer(attentionLayer, 'request.attentionLayer', 1, L - 1);
    const pooling = request.query ?? 'mean-text-after-image';
    check.oneOf(pooling, 'request.query', QUERY_POOLINGS);
    const answerCapacity = request.answerCapacity ?? 16;
    check.integer(answerCapacity, 'request.answerCapacity', 1, 1 << 16);
    const row = await this.row(request, 'request', signal);
    const { visual: projected, clsAttention } = await this.model.encode([row.pixels], source === 'cls', opOptions(this.rt, signal));
    const at = await prepareAtPoint(this.rt, { row, projected, clsAttention, layer, attention: source, attentionLayer, pooling, answerCapacity, signal });
    return new PreparedPrompt(this, point, at.states, at.query, at.attention, row, projected, at.stage);
  }

  /**
   * log p(answer | image, prompt) under each keep-set, in one batch: the image
   * is encoded once, and for an in-LLM point the unpruned layers < K run once
   * and are shared by every keep-set (the GRPO reward needs exactly this).
   * Pass `prepared` (from prepare()) to reuse that work across calls.
   */
  async answerLogProb(request: AnswerLogProbRequest): Promise<AnswerLogProbResult> {
    checkRequestObject(request);
    const { signal } = request;
    check.signal(signal, 'request.signal');
    const V = this.config.text.vocabSize;
    if (!Array.isArray(request.keepSets) || request.keepSets.length === 0) check.fail('ERR_GRIP_SHAPE', 'a non-empty array of keep-sets', 'request.keepSets', Array.isArray(request.keepSets) ? 'an empty array' : describe(request.keepSets));
    const answerIds = typeof request.answer === 'string'
      ? this.tokenizer.encode(request.answer, { addSpecialTokens: false })
      : Int32Array.from(request.answer);
    if (answerIds.length === 0) check.fail('ERR_GRIP_SHAPE', 'at least one answer token', 'request.answer', '0');
    answerIds.forEach((id, i) => check.integer(id, `answer token [${i}]`, 0, V - 1));
    let prepared = request.prepared;
    if (prepared !== undefined) {
      if (!(prepared instanceof PreparedPrompt) || prepared.model !== this) check.fail('ERR_GRIP_RANGE', 'a PreparedPrompt from this model', 'request.prepared', describe(prepared));
      if (request.point !== undefined && JSON.stringify(request.point) !== JSON.stringify(prepared.point)) {
        check.fail('ERR_GRIP_RANGE', `the point of request.prepared (${JSON.stringify(prepared.point)})`, 'request.point', JSON.stringify(request.point));
      }
    } else {
      prepared = await this.prepare({ ...request, point: request.point ?? 'pre-llm', answerCapacity: answerIds.length });
    }
    // N is the prepared image's own (LLaVA-NeXT: it follows the image).
    const N = prepared.row.pixels.layout.numImageTokens;
    const all = Int32Array.from({ length: N }, (_, i) => i);
    const keepSets = checkKeepSets('keepSets', request.keepSets.map((s) => (s === null ? all : Int32Array.from(s))), request.keepSets.length, N);
    return answerLogLikelihood(this.rt, prepared, {
      layer: pruneLayer(prepared.point, this.config.text.numLayers), keepSets, answerIds,
      cachePolicy: request.cachePolicy ?? 'keep', renumber: request.renumberPositions ?? false,
      returnFirstLogProbs: request.returnFirstLogProbs === true, signal,
    });
  }

  /** Logits of one request (for conformance checks and analysis). */
  async logits(request: LogitsRequest): Promise<LogitsResult> {
    checkRequestObject(request);
    const { signal } = request;
    check.signal(signal, 'request.signal');
    checkPruneOptions(request, 'request');
    const positions = request.positions ?? 'last';
    check.oneOf(positions, 'request.positions', ['last', 'all']);
    const row = await this.row(request, 'request', signal);
    const { visual, clsAttention } = await this.model.encode([row.pixels], request.pruner?.needs?.attention === 'cls', opOptions(this.rt, signal));
    const state = await prefill(this.rt, {
      rows: [row], visual, pruner: request.pruner, keepRatio: Float32Array.of(request.keepRatio ?? 1), clsAttention, signal,
      cachePolicy: request.cachePolicy ?? 'keep', renumber: request.renumberPositions ?? false, extraCapacity: 0,
      parts: { imageNewline: request.imageNewline ?? 'prune', budget: request.budget ?? 'image' },
      outputs: positions,
    });
    state.cache.dispose();
    const S = state.length[0]!, D = this.config.text.hiddenSize;
    const rowsWanted = positions === 'all' ? Int32Array.from({ length: S }, (_, i) => i) : Int32Array.of(S - 1);
    const h = await gatherRagged(this.rt.k, state.x, [rowsWanted], this.backend);
    const logits = (await lmHead(this.rt.text.weights, this.config.text, view(h, [rowsWanted.length, D]), opOptions(this.rt, signal))).toHost();
    const positionIds = state.positions.slice(0, S);
    return { logits, kept: state.kept[0]!, positionIds: positions === 'all' ? positionIds : positionIds.slice(S - 1) };
  }

  /** Frees device memory (nothing to do on the CPU). */
  dispose(): void {
    this.model.dispose();
  }

  /** One request tokenised (split at its image) and preprocessed. */
  private async row(request: ImageSource & PromptSource, what: string, signal: AbortSignal | undefined): Promise<Row> {
    const pixels = await this.model.pixels(request, what, signal);
    const text = splitPrompt({ tokenizer: this.tokenizer, imageTokenIndex: this.model.imageTokenIndex, vocabSize: this.config.text.vocabSize, numImageTokens: pixels.layout.numImageTokens }, request, what);
    return { ...text, pixels };
  }

  private eos(): Set<number> {
    return new Set<number>([this.config.text.eosTokenId ?? [], this.tokenizer.eosTokenId ?? []].flat());
  }
}

/** Loads a checkpoint directory in the Hugging Face layout of one of the supported families (lib/model/families.ts). */
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
  const decoder = options.decoder ?? 'fused';
  check.oneOf(decoder, 'options.decoder', ['fused', 'ops']);
  const weights = options.weights ?? 'float';
  check.oneOf(weights, 'options.weights', ['float', 'int8']);
  if (weights === 'int8') {
    // q8_0 has CPU kernels only; the 8-bit values come from the loaded floats, so no second rounding to f16/bf16 first.
    if (requested === 'cuda') check.fail('ERR_GRIP_UNSUPPORTED', "'cpu' or 'auto' (q8_0 weights have CPU kernels only) with options.weights 'int8'", 'options.backend', "'cuda'");
    if (dtype !== 'auto' && dtype !== 'f32') check.fail('ERR_GRIP_RANGE', "'auto' or 'f32' with options.weights 'int8'", 'options.dtype', `'${dtype}'`);
  }
  const backend = weights === 'int8' ? 'cpu' : resolveBackend(requested, false);
  const family = await familyOf(dir);
  const model = await family.load(dir, { dtype, device: deviceOf(backend), signal: options.signal });
  if (weights === 'int8') await quantizeDecoder(model.text.weights, options.signal);
  const small = Math.max(model.text.config.hiddenSize, model.config.vision.hiddenSize) <= 512;
  const mode = opMode === 'auto' ? (backend !== 'cuda' && small ? 'sync' : 'async') : opMode;
  return new VLM(model, backend, mode, decoder);
}
