// context.ts — what every shared stage runs with: the decoder of the loaded
// family, the layout of its visual tokens, the backend and the ops.
import type { ResolvedBackend } from '../../backend.js';
import type { TextConfig } from '../config.js';
import type { VisualLayout } from '../family.js';
import type { Kernels } from '../kernels.js';
import type { TextWeights } from '../weights.js';

export interface Runtime {
  readonly text: { readonly config: TextConfig; readonly weights: TextWeights };
  readonly layout: VisualLayout;
  readonly backend: ResolvedBackend;
  readonly k: Kernels;
}

/** The options object the ops take from a runtime and a signal. */
export function opOptions(rt: Runtime, signal: AbortSignal | undefined): { backend: ResolvedBackend; k: Kernels; signal: AbortSignal | undefined } {
  return { backend: rt.backend, k: rt.k, signal };
}
