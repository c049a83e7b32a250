// native.ts — loads the addon with node-gyp-build (prebuilds/<platform>-<arch>
// in the published package, build/Release in a source checkout), or the file
// the environment variable GRIP_ADDON names (the sanitizer build of
// `npm run test:asan`), and hands it the GripError class. The only file that
// knows the addon's raw signatures.
import { createRequire } from 'node:module';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GripError } from './errors.js';

/** A raw tensor as the addon reads it (lib/tensor.ts Tensor satisfies it). */
export interface NativeTensor {
  dtype: string;
  shape: readonly number[];
  device: string;
  data: unknown;
}

export interface NativeInfo {
  version: string;
  simd: string;
  q8Kernel: string;
  threads: number;
  cudaCompiled: boolean;
  cudaDevices: number;
}

/** What the addon holds natively now, process-wide (memoryStats()). */
export interface NativeMemoryStats {
  /** Bytes of live CUDA device buffers (DeviceBuffer), and their number. */
  deviceBytes: number;
  deviceBuffers: number;
  /** Async op calls queued or running (their arguments stay referenced until they settle). */
  pendingOps: number;
  /** The process's C heap (glibc mallinfo2, every thread's arena; -1 elsewhere): bytes in use, and free bytes it keeps. */
  mallocInUseBytes: number;
  /** Heap trims made so far (releaseMemory and the runtime's own after a request). */
  heapTrims: number;
  /** Live decoder plans (fused decoder layers) and the bytes of their workspaces. */
  decoderPlans: number;
  decoderWorkspaceBytes: number;
  mallocFreeBytes: number;
}

/** The addon's exports. `mode` = backend code (0 cpu, 1 cuda, 2 emu) | 4 when async. */
export interface NativeAddon {
  init(errorClass: typeof GripError): void;
  info(): NativeInfo;
  memoryStats(): NativeMemoryStats;
  releaseMemory(async: false): boolean;
  releaseMemory(async: true): Promise<void>;
  setNumThreads(n: number): void;
  emuSetSchedule(schedule: number, seed: bigint): void;
  cudaAlloc(bytes: number): object;
  cudaFree(handle: object): void;
  cudaMemInfo(): { freeBytes: number; totalBytes: number };
  cudaCopy(handle: object, host: ArrayBufferView, toDevice: boolean): void;
  scoreTokens(mode: number, x: NativeTensor, query: NativeTensor, keepRatio: NativeTensor,
    params: Record<string, NativeTensor>, scores: NativeTensor): Promise<void> | undefined;
  scoreTokensBackward(mode: number, x: NativeTensor, query: NativeTensor, keepRatio: NativeTensor,
    params: Record<string, NativeTensor>, dScores: NativeTensor,
    grads: Record<string, NativeTensor>): Promise<void> | undefined;
  topk(mode: number, scores: NativeTensor, k: Int32Array, indices: NativeTensor,
    values: NativeTensor): Promise<void> | undefined;
  gumbelTopk(mode: number, logits: NativeTensor, k: number, samples: number, seed: bigint,
    indices: NativeTensor, logProb: NativeTensor): Promise<void> | undefined;
  plackettLuceLogProb(mode: number, logits: NativeTensor, indices: NativeTensor,
    logProb: NativeTensor): Promise<void> | undefined;
  plackettLuceBackward(mode: number, logits: NativeTensor, indices: NativeTensor,
    dLogProb: NativeTensor, dLogits: NativeTensor): Promise<void> | undefined;
  gatherRows(mode: number, x: NativeTensor, indices: NativeTensor,
    out: NativeTensor): Promise<void> | undefined;
  compactKV(mode: number, cache: NativeTensor, keep: NativeTensor,
    out: NativeTensor): Promise<void> | undefined;
  compactKVInPlace(mode: number, cache: NativeTensor, keep: NativeTensor,
    newLengths: Int32Array): Promise<void> | undefined;
  adamw(mode: number, param: NativeTensor, grad: NativeTensor, m: NativeTensor, v: NativeTensor,
    step: number, lr: number, beta1: number, beta2: number, eps: number,
    weightDecay: number): Promise<void> | undefined;
  matmul(mode: number, a: NativeTensor, b: NativeTensor, transB: boolean,
    out: NativeTensor): Promise<void> | undefined;
  linear(mode: number, x: NativeTensor, weight: NativeTensor, bias: NativeTensor | null,
    out: NativeTensor): Promise<void> | undefined;
  quantizeQ8_0(mode: number, x: NativeTensor, out: NativeTensor): Promise<void> | undefined;
  layerNorm(mode: number, x: NativeTensor, weight: NativeTensor, bias: NativeTensor, eps: number,
    out: NativeTensor): Promise<void> | undefined;
  rmsNorm(mode: number, x: NativeTensor, weight: NativeTensor, eps: number,
    out: NativeTensor): Promise<void> | undefined;
  rope(mode: number, x: NativeTensor, positions: NativeTensor, theta: number,
    out: NativeTensor): Promise<void> | undefined;
  cacheWrite(mode: number, cache: NativeTensor, src: NativeTensor, start: Int32Array,
    count: Int32Array): Promise<void> | undefined;
  attention(mode: number, q: NativeTensor, k: NativeTensor, v: NativeTensor, causal: boolean,
    scale: number, qLen: Int32Array | null, kvLen: Int32Array | null, probRows: Int32Array | null,
    out: NativeTensor, probs: NativeTensor | null): Promise<void> | undefined;
  /** kind: 0 erf, 1 tanh, 2 quick. */
  gelu(mode: number, x: NativeTensor, kind: number, out: NativeTensor): Promise<void> | undefined;
  siluMul(mode: number, gate: NativeTensor, up: NativeTensor, out: NativeTensor): Promise<void> | undefined;
  add(mode: number, a: NativeTensor, b: NativeTensor, out: NativeTensor): Promise<void> | undefined;
  softmax(mode: number, x: NativeTensor, log: boolean, out: NativeTensor): Promise<void> | undefined;
  embedding(mode: number, table: NativeTensor, ids: NativeTensor, out: NativeTensor): Promise<void> | undefined;
  /** A plan over decoder layers and a KV cache (grip_decoder_layers); it keeps `layers` referenced until freed. */
  decoderPlan(mode: number, layers: readonly NativeDecoderLayer[], numHeads: number, numKvHeads: number,
    headDim: number, intermediateSize: number, rmsNormEps: number, ropeTheta: number): object;
  /** Layers [from, to) of the plan on x [B,T,D]; lengths [(to-from)*B] updated in place. */
  decoderRun(mode: number, plan: object, x: NativeTensor, positions: NativeTensor, tokens: Int32Array,
    lengths: Int32Array, from: number, to: number): Promise<void> | undefined;
  decoderPlanFree(plan: object): void;
}

/** One decoder layer's weights and KV cache, as decoderPlan takes them. */
export interface NativeDecoderLayer {
  inputNorm: NativeTensor; postNorm: NativeTensor;
  q: NativeTensor; k: NativeTensor; v: NativeTensor; o: NativeTensor;
  gate: NativeTensor; up: NativeTensor; down: NativeTensor;
  qBias: NativeTensor | null; kBias: NativeTensor | null; vBias: NativeTensor | null;
  keys: NativeTensor; values: NativeTensor;
}

/** The package root: the nearest folder above this file whose package.json is grip-vlm's. */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest)) {
      try {
        if (JSON.parse(readFileSync(manifest, 'utf8')).name === 'grip-vlm') return dir;
      } catch {
        // not ours; keep walking up
      }
    }
    const parent = dirname(dir);
    if (parent === dir) throw new GripError('ERR_GRIP_IO', 'expected the grip-vlm package root for the native addon but received none above ' + fileURLToPath(import.meta.url));
    dir = parent;
  }
}

let addon: NativeAddon | undefined;

export function native(): NativeAddon {
  if (addon === undefined) {
    const require = createRequire(import.meta.url);
    const override = process.env.GRIP_ADDON;
    if (override !== undefined && override !== '') {
      // A path relative to the working directory, as a shell user means it.
      const path = resolve(override);
      try {
        addon = require(path) as NativeAddon;
      } catch (cause) {
        throw new GripError('ERR_GRIP_IO', `expected a loadable native addon for GRIP_ADDON but received ${path}: ${(cause as Error).message}`);
      }
    } else {
      const load = require('node-gyp-build') as (dir: string) => NativeAddon;
      const root = packageRoot();
      try {
        addon = load(root);
      } catch (cause) {
        throw new GripError('ERR_GRIP_IO', `expected a built native addon (run \`npm run build:native\`) for grip-vlm in ${root} but received: ${(cause as Error).message}`);
      }
    }
    addon.init(GripError);
  }
  return addon;
}
