// index.ts — the root entry of grip-vlm: the runtime, the pruners and the ops.
export { GripError, type GripErrorCode } from './errors.js';
export { Tensor, DeviceBuffer, tensor, zeros, type DType, type Device, type HostData } from './tensor.js';
export { ops, SCORER_PARAM_NAMES, FOURIER_FEATURES, scorerShapes, type ScorerParamName, type OpOptions, type ScorerParams, type AdamWOptions, type MatmulOptions, type OutOptions, type TopkResult, type GumbelTopkResult, type GeluKind, type SoftmaxOptions, type AttentionOptions, type AttentionResult } from './ops.js';
export { info, memoryStats, deviceMemory, releaseMemory, setBackend, getBackend, setNumThreads, setEmulatorSchedule, type Backend, type Info, type MemoryStats, type DeviceMemory } from './backend.js';

import { Tensor } from './tensor.js';

/** A copy of `t` on the CUDA device. */
export function toDevice(t: Tensor): Tensor {
  return t.toDevice();
}

/** A copy of `t` in host memory (`t` itself when it is already there). */
export function toHost(t: Tensor): Tensor {
  return t.toHost();
}

// ---- the LLaVA runtime and its pruners ------------------------------------------------
export {
  loadVLM, VLM, PreparedPrompt, DecodeBatch, type PrepareRequest, type JoinHooks,
  type LoadVLMOptions, type GenerateRequest, type GenerateBatchOptions, type GenerateResult, type AnswerLogProbRequest, type AnswerLogProbResult,
  type LogitsRequest, type LogitsResult, type StreamEvent, type Timings, type ImageSource, type PromptSource, type PruneOptions,
} from './model/vlm.js';
export { parseLlavaConfig, loadLlavaConfig, type LlavaConfig, type VisionConfig, type TextConfig } from './model/config.js';
export { SafetensorsFile, Checkpoint, writeSafetensors, type TensorInfo } from './model/safetensors.js';
export { preprocessImage, loadProcessorConfig, parseProcessorConfig, type ProcessorConfig, type ImageInput, type RawImage } from './model/processor.js';
export { TextTokenizer, buildPrompt, encodePrompt, type PromptTemplate } from './model/tokenizer.js';
export { FixedPruner, numKeepFor, QUERY_POOLINGS, type Pruner, type PrunePoint, type StagedPoint, type PruneContext, type AttentionSource, type QueryPooling } from './prune/pruner.js';
export { RandomPruner } from './prune/heuristics/random.js';
export { FastVPruner } from './prune/heuristics/fastv.js';
export { UniformPruner } from './prune/heuristics/uniform.js';
export { NormPruner } from './prune/heuristics/norm.js';
export { VISIONZIP_CONTEXTUAL, VisionZipMergePruner, VisionZipPruner, type VisionZipOptions } from './prune/heuristics/visionzip.js';
export { PyramidDropPruner, pyramidLambda, type PyramidDropOptions } from './prune/heuristics/pyramiddrop.js';
export { DivPrunePruner } from './prune/heuristics/divprune.js';
export { CDPrunerPruner, type CDPrunerOptions } from './prune/heuristics/cdpruner.js';
export { makePruner, PRUNER_NAMES, type PrunerName, type MakePrunerOptions } from './prune/registry.js';
export { GripPruner, GRIP_FORMAT, type GripSettings, type GripInitOptions } from './prune/grip.js';
export { greedyKeep, sampleKeep, keepLogProb, type SequentialPolicy } from './prune/sequential.js';
export { cosineSimilarities } from './prune/similarity.js';

// The trainers are the entry grip-vlm/train (lib/train/index.ts); the shapes
// testbed, the evaluation and the demo are grip-vlm/testbed (lib/testbed.ts).

// ---- serving (grip serve) ------------------------------------------------------------------
export { startServer, type ServeOptions, type GripServer } from './serve/server.js';
