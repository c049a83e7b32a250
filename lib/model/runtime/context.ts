// context.ts — what every shared stage runs with: the decoder of the loaded
// family, the layout of its visual tokens, the backend and the ops.
import type { ResolvedBackend } from '../../backend.js';
import { GripError } from '../../errors.js';
import type { TextConfig } from '../config.js';
import type { VisualLayout } from '../family.js';
import type { Kernels } from '../kernels.js';
import type { KVCache, MRope } from '../llama.js';
import type { TextWeights } from '../weights.js';
import type { Row } from './types.js';

export interface Runtime {
  /**
   * The decoder; `slidingWindow` (Mistral) bounds the positions a request may
   * span (checkWindow); `mrope` (Qwen2-VL) gives a batch's rows their 3D
   * position ids, kept on the batch's KV cache.
   */
  readonly text: {
    readonly config: TextConfig; readonly weights: TextWeights; readonly slidingWindow?: number | undefined;
    readonly mrope?: ((rows: readonly Row[]) => MRope) | undefined;
  };
  readonly layout: VisualLayout;
  readonly backend: ResolvedBackend;
  readonly k: Kernels;
  readonly decoder: 'fused' | 'ops';
}

/** The options object the ops take from a runtime and a signal. */
export function opOptions(rt: Runtime, signal: AbortSignal | undefined): { backend: ResolvedBackend; k: Kernels; signal: AbortSignal | undefined; decoder: 'fused' | 'ops' } {
  return { backend: rt.backend, k: rt.k, signal, decoder: rt.decoder };
}

/** The batch's M-RoPE table on its cache; renumbered positions have no 3D ids to map to. */
export function attachMRope(rt: Runtime, cache: KVCache, rows: readonly Row[], renumber: boolean): void {
  if (!rt.text.mrope) return;
  if (renumber) {
    throw new GripError('ERR_GRIP_UNSUPPORTED', 'expected renumberPositions false (M-RoPE keeps each kept token\'s original 3D position ids) for the request but received true');
  }
  cache.mrope = rt.text.mrope(rows);
}

/**
 * Refuses a batch that would span more positions than the decoder's sliding
 * window: the attention op has no window mask, and inside the window the mask
 * hides nothing (every key is fewer than slidingWindow positions back), so
 * this is exactly the range where the runtime computes what Mistral does.
 * `positions`: the prompt rows of the unpruned sequence plus the cache rows
 * reserved after it (new tokens, teacher-forced answers).
 */
export function checkWindow(rt: Runtime, prompt: number, reserved: number): void {
  const window = rt.text.slidingWindow;
  if (window !== undefined && prompt + reserved > window) {
    throw new GripError('ERR_GRIP_UNSUPPORTED',
      `expected at most ${window} positions (text_config.sliding_window; the runtime has no sliding-window mask) for the prompt and new tokens but received ${prompt + reserved} (${prompt} prompt + ${reserved} new)`);
  }
}
