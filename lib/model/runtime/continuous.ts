// continuous.ts — continuous batching: one decode batch whose rows join and
// leave between decode steps. A group of requests joins by its own prefill
// (one pruner per group, as generateBatch); its first tokens come from that
// prefill, and its KV cache is merged into the batch's. A row leaves at its
// end-of-sequence, its token budget or its signal, and its cache rows are
// dropped. Each step feeds every row's last token through all layers at
// once, so rows of different groups (and pruners) share the decode GEMMs.
// Each row computes what it computes alone (greedyDecode): the merge copies
// cache rows exactly and the ops are row-independent.
import type { Tensor } from '../../tensor.js';
import { KVCache, lmHead, runDecoder } from '../llama.js';
import { deviceOf, gatherRagged, int32Tensor, view } from '../../moves.js';
import { opOptions, type Runtime } from './context.js';
import { argmax } from './decode.js';
import type { Prefilled } from './types.js';

/** One row joining the batch. */
export interface JoiningRow {
  /** New tokens at most (0: it ends at once). */
  maxNew: number;
  stopAtEos: boolean;
  /** Once aborted, the row leaves at the next step with the tokens it has. */
  signal?: AbortSignal | undefined;
  onToken?: ((token: number) => void) | undefined;
  /** Called once when the row leaves: its generated tokens and how long it decoded. */
  onEnd: (tokens: Int32Array, decodeMs: number) => void;
}

interface LiveRow extends JoiningRow {
  tokens: number[];
  /** Position id of the token fed next. */
  position: number;
  joinedAt: number;
  ended: boolean;
}

export class DecodeBatch {
  private cache: KVCache | undefined;
  private rows: LiveRow[] = [];

  constructor(private readonly rt: Runtime, private readonly eos: ReadonlySet<number>) {}

  /** Rows decoding now. */
  get size(): number {
    return this.rows.length;
  }

  /**
   * Adds a prefilled group (its `state` is consumed): picks each row's
   * first token from the prefill, ends the rows that are already done, and
   * merges the others' cache into the batch's.
   */
  async join(state: Prefilled, rows: readonly JoiningRow[]): Promise<void> {
    const { rt } = this;
    const B = rows.length, D = rt.text.config.hiddenSize, V = rt.text.config.vocabSize;
    const joinedAt = performance.now();
    let live: LiveRow[];
    try {
      const last = view(await gatherRagged(rt.k, state.x, Array.from(state.length, (len) => [len - 1]), rt.backend), [B, D]);
      const logits = (await lmHead(rt.text.weights, rt.text.config, last, opOptions(rt, undefined))).toHost().host as Float32Array;
      live = rows.map((row, b) => ({ ...row, tokens: [], position: state.nextPosition[b]!, joinedAt, ended: false }));
      live.forEach((row, b) => {
        if (row.maxNew > 0 && !row.signal?.aborted) this.push(row, argmax(logits, b * V, V));
        else row.ended = true;
      });
    } catch (error) {
      state.cache.dispose();
      throw error;
    }
    const staying = live.flatMap((row, b) => (row.ended ? [] : [b]));
    try {
      if (staying.length > 0) {
        const parts = [{ cache: state.cache, rows: staying }];
        if (this.cache) parts.unshift({ cache: this.cache, rows: this.rows.map((_, b) => b) });
        const merged = await mergeCaches(rt, parts);
        this.cache?.dispose();
        this.cache = merged;
        this.rows = [...this.rows, ...staying.map((b) => live[b]!)];
      }
    } finally {
      // The group's own cache is copied into the batch's, or not needed: freed either way.
      state.cache.dispose();
    }
    for (const row of live) if (row.ended) this.end(row);
  }

  /** One decode step for every row; the rows that end leave. */
  async step(): Promise<void> {
    const { rt } = this;
    const { config, weights } = rt.text;
    for (const row of this.rows) if (row.signal?.aborted) row.ended = true;
    if (this.rows.some((r) => !r.ended)) {
      const B = this.rows.length, D = config.hiddenSize, V = config.vocabSize;
      const dev = deviceOf(rt.backend), o = opOptions(rt, undefined);
      const active = Int32Array.from(this.rows, (r) => (r.ended ? 0 : 1));
      const next = Int32Array.from(this.rows, (r) => r.tokens.at(-1)!);
      const x = await rt.k.embedding(weights.embed, int32Tensor(next, [B, 1], dev), o);
      await runDecoder(weights, config, x, int32Tensor(Int32Array.from(this.rows, (r) => r.position), [B, 1], dev), active, this.cache!, { from: 0, to: config.numLayers }, o);
      const logits = (await lmHead(weights, config, view(x, [B, D]), o)).toHost().host as Float32Array;
      this.rows.forEach((row, b) => {
        if (row.ended) return;
        row.position++;
        this.push(row, argmax(logits, b * V, V));
      });
    }
    await this.dropEnded();
  }

  /** Ends every row (with the tokens it has) and frees the cache. */
  dispose(): void {
    for (const row of this.rows) this.end(row);
    this.rows = [];
    this.cache?.dispose();
    this.cache = undefined;
  }

  private push(row: LiveRow, token: number): void {
    row.tokens.push(token);
    row.onToken?.(token);
    if (row.tokens.length >= row.maxNew || (row.stopAtEos && this.eos.has(token))) row.ended = true;
  }

  private end(row: LiveRow): void {
    row.ended = true;
    row.onEnd(Int32Array.from(row.tokens), performance.now() - row.joinedAt);
  }

  private async dropEnded(): Promise<void> {
    if (!this.rows.some((r) => r.ended)) return;
    const ended = this.rows.filter((r) => r.ended);
    const staying = this.rows.flatMap((r, b) => (r.ended ? [] : [b]));
    const old = this.cache!;
    this.cache = staying.length > 0 ? await mergeCaches(this.rt, [{ cache: old, rows: staying }]) : undefined;
    old.dispose();
    this.rows = staying.map((b) => this.rows[b]!);
    for (const row of ended) this.end(row);
  }
}

/**
 * One cache of the given rows of several caches, in order, at the largest
 * capacity among them: per layer, each part's rows are gathered into the
 * merged layout (zeros elsewhere) and the parts added (x + 0 is exact).
 */
export async function mergeCaches(rt: Runtime, parts: readonly { cache: KVCache; rows: readonly number[] }[]): Promise<KVCache> {
  const { config } = rt.text;
  const H = config.numKvHeads, Dh = config.headDim, L = config.numLayers;
  const B = parts.reduce((n, p) => n + p.rows.length, 0);
  const C = Math.max(...parts.map((p) => p.cache.capacity));
  const dev = deviceOf(rt.backend), o = { backend: rt.backend };
  const merged = new KVCache(B, C, config, dev, L);
  const indices: Tensor[] = [];
  let at = 0;
  for (const part of parts) {
    const Cp = part.cache.capacity;
    const index = new Int32Array(B * H * C).fill(-1);
    part.rows.forEach((row, r) => {
      for (let h = 0; h < H; h++) {
        const to = ((at + r) * H + h) * C, from = (row * H + h) * Cp;
        for (let t = 0; t < Cp; t++) index[to + t] = from + t;
      }
    });
    at += part.rows.length;
    indices.push(int32Tensor(index, [1, B * H * C], dev));
  }
  for (let l = 0; l < L; l++) {
    for (const which of ['keys', 'values'] as const) {
      let sum: Tensor | undefined;
      for (let p = 0; p < parts.length; p++) {
        const source = parts[p]!.cache[which][l]!;
        const rows = await rt.k.gatherRows(view(source, [1, source.size / Dh, Dh]), indices[p]!, o);
        if (sum === undefined) sum = rows;
        else {
          await rt.k.add(sum, rows, { ...o, out: sum });
          rows.dispose();
        }
      }
      merged[which][l] = view(sum!, [B, H, C, Dh]);
    }
    let row = 0;
    for (const part of parts) for (const r of part.rows) merged.lengths[l]![row++] = part.cache.lengths[l]![r]!;
  }
  for (const index of indices) index.dispose();
  return merged;
}
