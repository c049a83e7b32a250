// types.ts — the requests and results of the VLM facade, and the internal
// shapes the stages pass on (a tokenised row, a prefilled batch, a prompt
// prepared up to its prune point).
import type { ImagePixels, ImageSource, Row } from '../family.js';
import type { KVCache } from '../llama.js';
import type { ImageInput } from '../processor.js';
import type { Tensor } from '../../tensor.js';
import type { Backend } from '../../backend.js';
import type { AttentionSource, Pruner, PrunePoint, QueryPooling } from '../../prune/pruner.js';
import type { WeightDType, WeightFormat } from '../weights.js';

export interface LoadVLMOptions {
  /** 'auto' (CUDA when visible, else CPU), 'cpu' or 'cuda'. */
  backend?: Backend;
  /** Storage type of the weight matrices: as stored ('auto'), or converted at load. */
  dtype?: WeightDType;
  /**
   * 'int8': the decoder's Linear weights and the LM head quantised at load to
   * 8 bits (llama.cpp's Q8_0: blocks of 32 with an f16 scale; CPU only;
   * docs/llamacpp.md "8-bit weights"). Default 'float' (as dtype says).
   */
  weights?: WeightFormat;
  /** CPU threads for the native ops (default: all cores). */
  threads?: number;
  /**
   * How ops are awaited: 'async' runs each off the event loop (a thread hop
   * per op); 'sync' runs them on the calling thread and yields between
   * layers; 'auto' (default) is 'sync' on the CPU for models whose hidden
   * sizes are at most 512 (ops shorter than the hop), else 'async'.
   */
  opMode?: 'auto' | 'async' | 'sync';
  /**
   * How the decoder layers run on the CPU: 'fused' (default) as one native
   * call per layer range (grip_decoder_layers: the same kernels in the same
   * order, so the same bits, without the cost between ops); 'ops' as one
   * call per op (to time or debug single ops). CUDA always runs per op.
   */
  decoder?: 'fused' | 'ops';
  signal?: AbortSignal;
}

export type { ImageSource };

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
  /**
   * Tokens that are no image patch (LLaVA-NeXT's image_newline, one per row of
   * the tile grid): 'prune' (default, as CDPruner and VisionZip) makes them
   * visual tokens like the others; 'keep' keeps every one, and the pruner picks
   * the rest of the budget among the patches. No effect on LLaVA-1.5.
   */
  imageNewline?: 'prune' | 'keep';
  /**
   * 'image' (default): one budget, ceil(keepRatio N), over all the image's
   * tokens; 'tile': ceil(keepRatio n) of each crop's n tokens (LLaVA-NeXT: the
   * base image, each tile, the newlines), each crop handed to the pruner on its
   * own 2D grid. No effect where an image is one crop (LLaVA-1.5).
   */
  budget?: 'image' | 'tile';
}

export interface GenerateRequest extends ImageSource, PromptSource, PruneOptions {
  /** Default 32. */
  maxNewTokens?: number;
  /** Stop a row at its end-of-sequence token (default true). */
  stopAtEos?: boolean;
  signal?: AbortSignal;
}

export interface GenerateBatchOptions {
  /** Stops the whole batch (default: requests[0].signal). */
  signal?: AbortSignal | undefined;
  /** Called with each generated token of row b as soon as it is chosen. */
  onToken?: ((row: number, token: number) => void) | undefined;
  /** One per request: an aborted one stops its row at the next decode step, with the tokens it has; the other rows go on. */
  rowSignals?: readonly (AbortSignal | undefined)[] | undefined;
}

/** One row of a group joining a decode batch (VLM.joinBatch). */
export interface JoinHooks {
  /** Once aborted, the row leaves at the next decode step with the tokens it has. */
  signal?: AbortSignal | undefined;
  /** Each generated token as it is chosen. */
  onToken?: ((token: number) => void) | undefined;
  /** The row's result when it leaves the batch (decodeMs: from its join to its end). */
  onEnd: (result: GenerateResult) => void;
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
  /** The kept visual tokens (all of them without a pruner), of this request's numImageTokens (its own image's count: LLaVA-NeXT's follows the image). */
  kept: { indices: Int32Array; keepRatio: number; numImageTokens: number };
  /** Sequence length the LLM prefilled (text + kept visual tokens). */
  prefillTokens: number;
  timings: Timings;
}

/** What VLM.stream yields: each token as it is generated, then the whole result. */
export type StreamEvent =
  | { type: 'token'; token: number; /** The text this token adds (empty while it ends inside a character). */ text: string }
  | { type: 'done'; result: GenerateResult };

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

/** One request, tokenised and preprocessed; `pixels.layout.numImageTokens` is its N. */
/** One request, tokenised and preprocessed (defined with the family interface). */
export type { Row };

/** A prefilled batch, ready for decoding. */
export interface Prefilled {
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

/** For an in-LLM point: the hidden states entering layer K and the caches of layers < K. */
export interface PreparedStage {
  x: Tensor;
  cache: KVCache;
  fullLen: number;
  answerCapacity: number;
}

/** A request run up to its prune point (from VLM.prepare): what a pruner sees, and the shared work for answerLogProb. */
export class PreparedPrompt {
  constructor(
    /** The VLM that prepared it (answerLogProb refuses a prompt of another model). */
    readonly model: object,
    readonly point: PrunePoint,
    /** [1, N, D] f32 visual token states at the point. */
    readonly visual: Tensor,
    /** [1, D] f32 the text after the image at the point, pooled as asked. */
    readonly query: Tensor,
    /** [N] the requested attention to the visual tokens (mean over heads and query rows). */
    readonly attention: Float32Array | undefined,
    /** Internal: the tokenised, preprocessed request. */
    readonly row: Row,
    /** Internal: the projected visual tokens [1, N, D]. */
    readonly projected: Tensor,
    /** Internal: the in-LLM stage, undefined for a pre-LLM point. */
    readonly stage: PreparedStage | undefined,
  ) {}
}
