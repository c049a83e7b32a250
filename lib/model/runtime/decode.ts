// decode.ts — greedy decoding after a prefill: one token per active row per
// step through every layer, rows stopping at EOS (when asked) or at their
// own token budget. The cache is freed however the loop ends.
import { lmHead, runDecoder } from '../llama.js';
import { deviceOf, gatherRagged, int32Tensor, view } from '../../moves.js';
import { opOptions, type Runtime } from './context.js';
import type { Prefilled } from './types.js';

export interface DecodeOptions {
  /** New tokens per row (0: none). */
  maxNew: readonly number[];
  stopAtEos: readonly boolean[];
  eos: ReadonlySet<number>;
  signal: AbortSignal | undefined;
  /** Called with each generated token as soon as it is chosen (streaming). */
  onToken?: ((row: number, token: number) => void) | undefined;
  /** Per row: once aborted, the row stops at the next step with the tokens it has (the others go on). */
  rowSignals?: readonly (AbortSignal | undefined)[] | undefined;
}

export async function greedyDecode(rt: Runtime, state: Prefilled, options: DecodeOptions): Promise<Int32Array[]> {
  const { maxNew, stopAtEos, eos, signal } = options;
  const { config, weights } = rt.text;
  const B = maxNew.length, D = config.hiddenSize, V = config.vocabSize;
  const o = opOptions(rt, signal);
  const dev = deviceOf(rt.backend);
  const out: number[][] = Array.from({ length: B }, () => []);
  const done = maxNew.map((m) => m === 0);
  try {
    let hidden = view(await gatherRagged(rt.k, state.x, Array.from(state.length, (len) => [len - 1]), rt.backend), [B, D]);
    const position = state.nextPosition.slice();
    while (!done.every(Boolean)) {
      const logits = (await lmHead(weights, config, hidden, o)).toHost().host as Float32Array;
      const next = new Int32Array(B);
      for (let b = 0; b < B; b++) {
        if (!done[b] && options.rowSignals?.[b]?.aborted) done[b] = true;
        if (done[b]) continue;
        const token = argmax(logits, b * V, V);
        out[b]!.push(token);
        next[b] = token;
        options.onToken?.(b, token);
        if (out[b]!.length >= maxNew[b]! || (stopAtEos[b] && eos.has(token))) done[b] = true;
      }
      if (done.every(Boolean)) break;
      const active = Int32Array.from(done, (d) => (d ? 0 : 1));
      const x = await rt.k.embedding(weights.embed, int32Tensor(next, [B, 1], dev), o);
      await runDecoder(weights, config, x, int32Tensor(position.slice(), [B, 1], dev), active, state.cache, { from: 0, to: config.numLayers }, o);
      for (let b = 0; b < B; b++) position[b]! += active[b]!;
      hidden = view(x, [B, D]);
    }
  } finally {
    state.cache.dispose();
  }
  return out.map((tokens) => Int32Array.from(tokens));
}

/** Index of the largest of values[offset .. offset + n) (the first on ties). */
export function argmax(values: Float32Array, offset: number, n: number): number {
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
