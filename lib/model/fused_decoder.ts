// fused_decoder.ts — runDecoder's CPU path: a range of decoder layers as one
// native call (grip_decoder_layers) on a plan made once per KV cache, so a
// decode step costs one binding call per layer range instead of ~14 per
// layer (docs/llamacpp.md "Per-token overhead"). The plan holds the native
// views of the layers' weights and of the cache; it is rebuilt when the
// cache's tensors or the weights change, and freed with the cache.
import { BACKEND_CODE, type ResolvedBackend } from '../backend.js';
import { native, type NativeDecoderLayer } from '../native.js';
import type { Tensor } from '../tensor.js';
import type { TextConfig } from './config.js';
import type { Kernels } from './kernels.js';
import type { TextWeights } from './weights.js';

/** The cache's side of a plan: what its views were made from. */
interface PlanSource {
  readonly keys: readonly Tensor[];
  readonly values: readonly Tensor[];
  lengths: Int32Array[];
}

export class DecoderPlan {
  private handle: object | null;
  private readonly keys: Tensor[];
  private readonly values: Tensor[];

  constructor(readonly weights: TextWeights, cache: PlanSource, readonly backend: ResolvedBackend, config: TextConfig) {
    this.keys = [...cache.keys];
    this.values = [...cache.values];
    const layers: NativeDecoderLayer[] = weights.layers.map((L, l) => ({
      inputNorm: L.inputNorm, postNorm: L.postNorm,
      q: L.q.weight, k: L.k.weight, v: L.v.weight, o: L.o.weight,
      gate: L.gate.weight, up: L.up.weight, down: L.down.weight,
      qBias: L.q.bias, kBias: L.k.bias, vBias: L.v.bias,
      keys: cache.keys[l]!, values: cache.values[l]!,
    }));
    this.handle = native().decoderPlan(BACKEND_CODE[backend], layers, config.numHeads, config.numKvHeads, config.headDim,
      config.intermediateSize, config.rmsNormEps, config.ropeTheta);
  }

  /** Whether the plan still views these weights and exactly these cache tensors. */
  matches(weights: TextWeights, cache: PlanSource, backend: ResolvedBackend): boolean {
    if (this.handle === null || weights !== this.weights || backend !== this.backend) return false;
    for (let l = 0; l < this.keys.length; l++) {
      if (cache.keys[l] !== this.keys[l] || cache.values[l] !== this.values[l]) return false;
    }
    return true;
  }

  /**
   * Layers [from, to) on x [B,T,D] (cpu), new tokens of row b at
   * positions[b, 0..tokens[b]); the cache lengths of those layers advance
   * by tokens. Async kernels: the whole range in one call off the event
   * loop; sync kernels: one call per layer with a yield between (as the
   * per-op path yields), so no stretch on the loop is longer than a layer.
   */
  async run(x: Tensor, positions: Tensor, tokens: Int32Array, cache: PlanSource, from: number, to: number, k: Kernels, signal: AbortSignal | undefined): Promise<void> {
    const B = tokens.length;
    const step = k.mode === 'sync' ? 1 : to - from;
    for (let l = from; l < to; l += step) {
      const end = Math.min(to, l + step);
      if (k.mode === 'sync') await k.yield();
      signal?.throwIfAborted();
      const lengths = new Int32Array((end - l) * B);
      for (let i = l; i < end; i++) lengths.set(cache.lengths[i]!, (i - l) * B);
      const mode = BACKEND_CODE[this.backend] | (k.mode === 'async' ? 4 : 0);
      await native().decoderRun(mode, this.handle!, x, positions, tokens, lengths, l, end);
      for (let i = l; i < end; i++) cache.lengths[i] = lengths.slice((i - l) * B, (i - l + 1) * B);
    }
    signal?.throwIfAborted();
  }

  /** Frees the plan's workspace and its references to the tensors now. */
  free(): void {
    if (this.handle === null) return;
    native().decoderPlanFree(this.handle);
    this.handle = null;
  }
}
