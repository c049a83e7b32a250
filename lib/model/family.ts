// family.ts — what a model family supplies to the shared runtime. A family
// module (lib/model/<family>/) turns a checkpoint directory into a
// FamilyModel: its image processor, vision tower and projector (or merger)
// behind `pixels` and `encode`, the layout of its visual tokens, and the
// decoder config and weights. Everything after the visual tokens exist —
// request checks, sequence assembly, prefill with the prune hook, KV
// compaction, decoding, the answer log-likelihood — is shared
// (lib/model/runtime/) and never sees which family it runs.
import type { ResolvedBackend } from '../backend.js';
import type { Device, Tensor } from '../tensor.js';
import type { LlavaConfig, TextConfig } from './config.js';
import type { Kernels } from './kernels.js';
import type { QwenVLConfig } from './qwen_vl/config.js';
import type { QwenVLProcessorConfig } from './qwen_vl/processor.js';
import type { MRope } from './llama.js';
import type { ImageInput, ProcessorConfig } from './processor.js';
import type { TextTokenizer } from './tokenizer.js';
import type { TextWeights, WeightDType } from './weights.js';

/** A family's resolved config.json: LLaVA's shape (LLaVA-1.5, and LLaVA-NeXT's stages), or Qwen2-VL's; `modelType` tells them apart. */
export type FamilyConfig = LlavaConfig | QwenVLConfig;

/** Where the visual tokens of one image sit, as the pruners see them. */
export interface VisualLayout {
  /** Visual tokens per image. */
  numImageTokens: number;
  /** Their 2D grid (rows x cols = numImageTokens), for spatial pruners. */
  grid: { rows: number; cols: number };
  /**
   * Where the layout is made of several crops (LLaVA-NeXT: the base image,
   * then each tile's unpadded part): each crop's own 2D grid and its token
   * indices, row-major. The per-tile budget prunes each on its own.
   */
  regions?: readonly VisualRegion[] | undefined;
  /** Indices of tokens that are no image patch (LLaVA-NeXT's image_newline rows), ascending. */
  newlines?: Int32Array | undefined;
}

/** One crop of a layout: rows x cols tokens at `tokens` (row-major, ascending). */
export interface VisualRegion {
  grid: { rows: number; cols: number };
  tokens: Int32Array;
}

/** The image: a path, encoded bytes or raw pixels (preprocessed here), or pixel values already preprocessed. */
/** One request, tokenised and preprocessed: the prompt's text before and after the image, and the image's pixels. */
export interface Row {
  before: Int32Array;
  after: Int32Array;
  pixels: ImagePixels;
}

export interface ImageSource {
  image?: ImageInput;
  /** [C, H, W] f32 (LLaVA-NeXT: [1 + tiles, C, S, S], the base image first), already resized and normalised (skips the processor). */
  pixelValues?: Tensor;
  /** LLaVA-NeXT with pixelValues: the original image's [height, width], from which its tile grid and token count follow. */
  imageSize?: readonly [number, number];
}

/**
 * One request's preprocessed image and the layout of its visual tokens. A
 * family whose token count follows the image (LLaVA-NeXT's anyres tiles)
 * gives each image its own layout; the shared stages run ragged batches of
 * such rows.
 */
export interface ImagePixels {
  /** The family's pixel values (LLaVA: [C, H, W]; LLaVA-NeXT: [1 + tiles, C, S, S]), f32. */
  values: Float32Array;
  layout: VisualLayout;
  /** The original [height, width] when the family's geometry needs it (LLaVA-NeXT). */
  imageSize?: [number, number] | undefined;
}

/** The ops, the backend and the abort signal a stage runs with. */
export interface StageOptions {
  backend: ResolvedBackend;
  k: Kernels;
  signal?: AbortSignal | undefined;
}

export interface EncodedImages {
  /** [B, N, D] visual tokens in the decoder's embedding space (N: the largest row's count). */
  visual: Tensor;
  /** [B, N] the vision tower's CLS attention to the patches, when asked for and the family has a CLS token (NaN where a token has none). */
  clsAttention?: Float32Array | undefined;
}

/** A loaded model of one family: everything the shared runtime needs from it. */
export interface FamilyModel {
  /** The family's name ('llava'). */
  readonly family: string;
  readonly dir: string;
  /** The family's resolved config.json; every family has a decoder config and a vision tower. */
  readonly config: FamilyConfig;
  /** The image processor's settings (preprocessor_config.json): CLIP's (LLaVA, LLaVA-NeXT) or Qwen2-VL's. */
  readonly processor: ProcessorConfig | QwenVLProcessorConfig;
  readonly tokenizer: TextTokenizer;
  /**
   * The decoder. `slidingWindow` (Mistral): a query sees only keys less than
   * this many positions back; the runtime has no such mask and refuses a
   * request whose prompt and new tokens exceed it (inside it the mask is a no-op).
   * `mrope` (Qwen2-VL): the 3D position ids of a batch's rows (llama.ts's MRope).
   */
  readonly text: { config: TextConfig; weights: TextWeights; slidingWindow?: number | undefined; mrope?: ((rows: readonly Row[]) => MRope) | undefined };
  readonly imageTokenIndex: number;
  /** The layout of every image (LLaVA), or of the largest an image can get (LLaVA-NeXT: each image has its own, in ImagePixels). */
  readonly layout: VisualLayout;
  /** The preprocessed pixels of one request's image and their layout (checked; `what` names the request in errors). */
  pixels(source: ImageSource, what: string, signal: AbortSignal | undefined): Promise<ImagePixels>;
  /**
   * The visual tokens of a batch of preprocessed images, with the CLS
   * attention when asked for: [B, max N, D], row b valid up to its own N
   * (zeros after), clsAttention [B, max N] likewise.
   */
  encode(pixels: readonly ImagePixels[], clsAttention: boolean, options: StageOptions): Promise<EncodedImages>;
  /** Frees the family's device memory (the decoder's included). */
  dispose(): void;
}

export interface FamilyLoadOptions {
  dtype: WeightDType;
  device: Device;
  signal?: AbortSignal | undefined;
}

/** A model family: which checkpoints it reads and how it loads one. */
export interface Family {
  readonly name: string;
  /** The `architectures` entries of config.json it runs. */
  readonly architectures: readonly string[];
  load(dir: string, options: FamilyLoadOptions): Promise<FamilyModel>;
}
