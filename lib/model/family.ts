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
import type { ImageSource } from './runtime/types.js';
import type { ProcessorConfig } from './processor.js';
import type { TextTokenizer } from './tokenizer.js';
import type { TextWeights, WeightDType } from './weights.js';

/** Where the visual tokens of one image sit, as the pruners see them. */
export interface VisualLayout {
  /** Visual tokens per image. */
  numImageTokens: number;
  /** Their 2D grid (rows x cols = numImageTokens), for spatial pruners. */
  grid: { rows: number; cols: number };
}

/** The ops, the backend and the abort signal a stage runs with. */
export interface StageOptions {
  backend: ResolvedBackend;
  k: Kernels;
  signal?: AbortSignal | undefined;
}

export interface EncodedImages {
  /** [B, N, D] visual tokens in the decoder's embedding space. */
  visual: Tensor;
  /** [B, N] the vision tower's CLS attention to the patches, when asked for and the family has a CLS token. */
  clsAttention?: Float32Array | undefined;
}

/** A loaded model of one family: everything the shared runtime needs from it. */
export interface FamilyModel {
  /** The family's name ('llava'). */
  readonly family: string;
  readonly dir: string;
  /** The family's resolved config.json; every family has a decoder config and an image token. */
  readonly config: LlavaConfig;
  /** The image processor's settings (preprocessor_config.json). */
  readonly processor: ProcessorConfig;
  readonly tokenizer: TextTokenizer;
  readonly text: { config: TextConfig; weights: TextWeights };
  readonly imageTokenIndex: number;
  readonly layout: VisualLayout;
  /** The preprocessed pixels of one request's image (checked; `what` names the request in errors). */
  pixels(source: ImageSource, what: string, signal: AbortSignal | undefined): Promise<Float32Array>;
  /** The visual tokens of a batch of preprocessed images, with the CLS attention when asked for. */
  encode(pixels: readonly Float32Array[], clsAttention: boolean, options: StageOptions): Promise<EncodedImages>;
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
