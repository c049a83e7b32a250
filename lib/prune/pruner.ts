// pruner.ts — the contract between the runtime and a visual-token pruner.
// The runtime stops at the prune point (before the LLM, or at the input of
// decoder layer K), hands the pruner the visual token states, the pooled text
// query and the keep ratio (and, if asked, attention to the visual tokens),
// and continues with the tokens the pruner keeps.
import { GripError } from '../errors.js';
import type { ResolvedBackend } from '../backend.js';
import type { Tensor } from '../tensor.js';

/** 'pre-llm': on the projected visual tokens; { layer: K }: on the hidden states entering decoder layer K (1 <= K < layers). */
export type PrunePoint = 'pre-llm' | { layer: number };

/**
 * Pruning in stages inside the LLM (PyramidDrop): at each layer of `layers`
 * (ascending, each in [1, L)) the pruner keeps some of the visual tokens that
 * reached it; `select` is called once per stage with `ctx.stage` set, and
 * chooses each stage's count itself (ctx.numKeep is ceil(ρ · N_stage)).
 */
export interface StagedPoint {
  layers: readonly number[];
}

/**
 * Attention a pruner can ask for, averaged over heads (and over query rows),
 * restricted to the visual tokens:
 * - 'last-token': from the last prompt token at decoder layer K-1 (FastV);
 * - 'text-tokens': from every text token after the image at layer K-1 (the warm-up teacher);
 * - 'cls': from the vision tower's CLS token at the feature layer (VisionZip-style).
 * 'last-token' and 'text-tokens' need an in-LLM point.
 */
export const ATTENTION_SOURCES = ['last-token', 'text-tokens', 'cls'] as const;
export type AttentionSource = (typeof ATTENTION_SOURCES)[number];

/**
 * How the runtime builds PruneContext.query from the text after the image, at
 * the prune point (pre-LLM: the token embeddings):
 * - 'mean-text-after-image' (default): the mean of those rows;
 * - 'last-token': the last prompt token's row, which at an in-LLM point has
 *   already read the question (the query FastV's attention comes from).
 */
export const QUERY_POOLINGS = ['mean-text-after-image', 'last-token'] as const;
export type QueryPooling = (typeof QUERY_POOLINGS)[number];

export interface PruneContext {
  /** [B, N, D] f32 visual token states at the prune point (projected features pre-LLM, hidden states in-LLM). */
  visual: Tensor;
  /** [B, D] f32 the text after the image (the question) at the prune point, pooled as the pruner's needs.query says (default: the mean). */
  query: Tensor;
  /** Keep ratio per row, in (0, 1]. */
  keepRatio: Float32Array;
  /** Tokens to keep per row: ceil(keepRatio · N), at least 1. */
  numKeep: Int32Array;
  /** The visual tokens' grid (rows x cols = N), for spatial pruners. */
  grid: { rows: number; cols: number };
  /** [B, N] when the pruner asked for `needs.attention`: each row sums to the attention mass on the image. */
  attention?: Float32Array;
  /**
   * When the pruner asked for `needs.text`: the text after the image token by
   * token at the prune point (pre-LLM: its embeddings), [B, T, D] f32 with row
   * b valid for its first count[b] tokens.
   */
  text?: { states: Tensor; count: Int32Array };
  /** For a staged pruner: which stage this is (N is then the tokens that reached it; grid is 1 x N after the first). */
  stage?: { index: number; layers: readonly number[]; numLayers: number };
  backend: ResolvedBackend;
  signal?: AbortSignal | undefined;
}

export interface Pruner {
  readonly name: string;
  readonly point: PrunePoint | StagedPoint;
  readonly needs?: { attention?: AttentionSource; query?: QueryPooling; text?: boolean };
  /** Kept visual token indices per row, ascending, numKeep[b] of them. */
  select(ctx: PruneContext): Promise<Int32Array[]>;
  /**
   * Optional, for merging pruners (VisionZip's contextual tokens): states that
   * replace the kept tokens' states, per row null (the states stay) or
   * kept[b].length x D f32 values in the order of kept[b]. The runtime calls it
   * after `select` with the same context and writes them over the kept rows
   * before the LLM goes on; positions stay the kept tokens' own.
   */
  merge?(ctx: PruneContext, kept: readonly Int32Array[]): Promise<(Float32Array | null)[]>;
}

/** ceil(keepRatio · N) clamped to [1, N]; the tiny slack stops 0.3·10 from becoming 4. */
export function numKeepFor(keepRatio: number, N: number): number {
  return Math.min(N, Math.max(1, Math.ceil(keepRatio * N - 1e-9)));
}

/** The in-LLM layer of a point, or 0 for 'pre-llm'; checks the range. */
export function pruneLayer(point: PrunePoint, numLayers: number, what = 'pruner.point'): number {
  if (point === 'pre-llm') return 0;
  if (typeof point !== 'object' || point === null || !Number.isInteger(point.layer) || point.layer < 1 || point.layer >= numLayers) {
    throw new GripError('ERR_GRIP_RANGE', `expected 'pre-llm' or { layer: K } with K in [1, ${numLayers - 1}] for ${what} but received ${JSON.stringify(point)}`);
  }
  return point.layer;
}

/** The prune layers of a point: [] for 'pre-llm', [K] for { layer: K }, the stages of a StagedPoint; checks the range. */
export function pruneLayers(point: PrunePoint | StagedPoint, numLayers: number, what = 'pruner.point'): number[] {
  if (typeof point !== 'object' || point === null || !('layers' in point)) {
    const K = pruneLayer(point as PrunePoint, numLayers, what);
    return K === 0 ? [] : [K];
  }
  const layers = point.layers;
  if (!Array.isArray(layers) || layers.length === 0 || layers.some((K, i) => !Number.isInteger(K) || K < 1 || K >= numLayers || (i > 0 && K <= layers[i - 1]!))) {
    throw new GripError('ERR_GRIP_RANGE', `expected { layers: [K1, K2, ...] } ascending with each K in [1, ${numLayers - 1}] for ${what} but received ${JSON.stringify(point)}`);
  }
  return [...layers];
}

/**
 * Checks what a pruner returned: per row, 1..N distinct ascending indices in
 * [0, N) (numKeep is what the runtime asked for; a fixed pruner may differ).
 */
export function checkKeepSets(name: string, sets: unknown, rows: number, N: number): Int32Array[] {
  if (!Array.isArray(sets) || sets.length !== rows) {
    throw new GripError('ERR_GRIP_SHAPE', `expected ${rows} keep-sets (one per row) from pruner "${name}" but received ${Array.isArray(sets) ? sets.length : typeof sets}`);
  }
  return sets.map((set: unknown, b) => {
    if (!(set instanceof Int32Array) || set.length < 1 || set.length > N) {
      throw new GripError('ERR_GRIP_SHAPE', `expected an Int32Array of 1..${N} indices for row ${b} from pruner "${name}" but received ${set instanceof Int32Array ? `${set.length} indices` : typeof set}`);
    }
    for (let i = 0; i < set.length; i++) {
      if (!(set[i]! >= 0 && set[i]! < N) || (i > 0 && set[i]! <= set[i - 1]!)) {
        throw new GripError('ERR_GRIP_RANGE', `expected ascending distinct indices in [0, ${N}) for row ${b} from pruner "${name}" but received ${set[i]} at [${i}]`);
      }
    }
    return set;
  });
}

/** Checks what a pruner's `merge` returned: per row null or kept[b].length x D f32 values. */
export function checkMergedStates(name: string, states: unknown, kept: readonly Int32Array[], D: number): (Float32Array | null)[] {
  if (!Array.isArray(states) || states.length !== kept.length) {
    throw new GripError('ERR_GRIP_SHAPE', `expected ${kept.length} merged-state rows (one per row, null for none) from pruner "${name}" but received ${Array.isArray(states) ? states.length : typeof states}`);
  }
  return states.map((row: unknown, b) => {
    if (row === null) return null;
    const want = kept[b]!.length * D;
    if (!(row instanceof Float32Array) || row.length !== want) {
      throw new GripError('ERR_GRIP_SHAPE', `expected null or a Float32Array of ${kept[b]!.length} x ${D} = ${want} values for merged row ${b} from pruner "${name}" but received ${row instanceof Float32Array ? `${row.length} values` : typeof row}`);
    }
    return row;
  });
}

/** Keeps exactly the given visual tokens (per row), whatever the ratio: for experiments and conformance tests. */
export class FixedPruner implements Pruner {
  readonly name = 'fixed';
  readonly point: PrunePoint;
  private readonly sets: Int32Array[];
  constructor(point: PrunePoint, keepSets: readonly ArrayLike<number>[]) {
    this.point = point;
    this.sets = keepSets.map((s) => Int32Array.from(s));
  }
  async select(ctx: PruneContext): Promise<Int32Array[]> {
    if (this.sets.length !== ctx.numKeep.length) {
      throw new GripError('ERR_GRIP_SHAPE', `expected ${ctx.numKeep.length} keep-sets for the fixed pruner but received ${this.sets.length}`);
    }
    return this.sets;
  }
}
