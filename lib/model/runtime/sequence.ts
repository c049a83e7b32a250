// sequence.ts — sequence assembly as plain index arithmetic (no ops, so it is
// tested on its own): where each row's text and visual tokens sit, their
// position ids, which rows survive an in-LLM prune, and the query rows of an
// attention probe.
//
// A row is T_before ++ V ++ T_after. Unpruned, row i sits at position i.
// Pruned (pre-LLM or at layer K), a kept visual token keeps the position it
// had in the full sequence and the text after the image keeps its own,
// unless renumbered (consecutive ids, for comparison).
//
// N, the visual tokens of a row, is one number for the whole batch (LLaVA) or
// one per row (LLaVA-NeXT: each image gets its own count); every function
// takes either.

/** Visual tokens per row: one count for every row, or one each. */
export type VisualCounts = number | ArrayLike<number>;

/** The count of row b. */
export function countOf(numVisual: VisualCounts, b: number): number {
  return typeof numVisual === 'number' ? numVisual : numVisual[b]!;
}

/** The largest count of B rows (the padded width of a [B, N, D] visual tensor). */
export function maxCount(numVisual: VisualCounts, B: number): number {
  return typeof numVisual === 'number' ? numVisual : Math.max(0, ...Array.from({ length: B }, (_, b) => numVisual[b]!));
}

/** One ragged batch laid out for the decoder. */
export interface SequenceLayout {
  /** Text tokens before the image, per row. */
  before: Int32Array;
  /** Text tokens after the image, per row. */
  after: Int32Array;
  /** Visual tokens in the sequence per row (the kept ones pre-LLM, else all N). */
  visualCount: Int32Array;
  /** N per row: the row's visual tokens before any prune. */
  numVisual: Int32Array;
  /** Rows of the sequence per row. */
  length: Int32Array;
  /** Rows of the unpruned sequence per row. */
  fullLen: Int32Array;
  /** max(length): the padded width S of the batch. */
  width: number;
  /** [B, S] row-major position ids (0 in padding). */
  positions: Int32Array;
}

export interface AssembleOptions {
  before: ArrayLike<number>;
  after: ArrayLike<number>;
  /** N: visual tokens per image, or per row. */
  numVisual: VisualCounts;
  /** Pre-LLM keep-sets (ascending indices < N), or null for all tokens. */
  keep: readonly Int32Array[] | null;
  renumber: boolean;
}

export function assembleSequence(o: AssembleOptions): SequenceLayout {
  const B = o.before.length;
  const before = Int32Array.from(o.before), after = Int32Array.from(o.after);
  const numVisual = Int32Array.from({ length: B }, (_, b) => countOf(o.numVisual, b));
  const visualCount = Int32Array.from({ length: B }, (_, b) => (o.keep ? o.keep[b]!.length : numVisual[b]!));
  const length = Int32Array.from({ length: B }, (_, b) => before[b]! + visualCount[b]! + after[b]!);
  const fullLen = Int32Array.from({ length: B }, (_, b) => before[b]! + numVisual[b]! + after[b]!);
  const width = Math.max(...length);
  const positions = new Int32Array(B * width);
  for (let b = 0; b < B; b++) {
    const p = positions.subarray(b * width, b * width + length[b]!);
    for (let i = 0; i < length[b]!; i++) p[i] = i;
    if (o.keep && !o.renumber) {
      const nb = before[b]!;
      o.keep[b]!.forEach((k, i) => { p[nb + i] = nb + k; });
      for (let j = 0; j < after[b]!; j++) p[nb + visualCount[b]! + j] = nb + numVisual[b]! + j;
    }
  }
  return { before, after, visualCount, numVisual, length, fullLen, width, positions };
}

/** Per row, the rows of the full sequence that survive a prune at layer K: all text, and the kept visual tokens. */
export function keptRows(kept: readonly Int32Array[], before: ArrayLike<number>, fullLen: ArrayLike<number>, numVisual: VisualCounts): Int32Array[] {
  return kept.map((set, b) => {
    const nb = before[b]!, N = countOf(numVisual, b), list = new Int32Array(fullLen[b]! - N + set.length);
    let n = 0;
    for (let i = 0; i < nb; i++) list[n++] = i;
    for (const k of set) list[n++] = nb + k;
    for (let i = nb + N; i < fullLen[b]!; i++) list[n++] = i;
    return list;
  });
}

/** [B, S] position ids of ragged kept rows: their original positions, or 0.. when renumbered. */
export function keptPositions(rows: readonly Int32Array[], renumber: boolean, width: number): Int32Array {
  const positions = new Int32Array(rows.length * width);
  rows.forEach((l, b) => positions.set(renumber ? l.map((_, i) => i) : l, b * width));
  return positions;
}

/** Per row, the indices of its N visual tokens in the full sequence. */
export function visualRows(before: ArrayLike<number>, numVisual: VisualCounts): Int32Array[] {
  return Array.from(before, (nb, b) => Int32Array.from({ length: countOf(numVisual, b) }, (_, i) => nb + i));
}

/** The query rows whose attention a probe needs: per batch row, and their union (shared by the batch). */
export function probeRowsOf(source: 'last-token' | 'text-tokens', before: ArrayLike<number>, numVisual: VisualCounts, fullLen: ArrayLike<number>): { perRow: number[][]; union: number[] } {
  const perRow = Array.from(fullLen, (len, b) => {
    if (source === 'last-token') return [len - 1];
    const rows: number[] = [];
    for (let i = before[b]! + countOf(numVisual, b); i < len; i++) rows.push(i);
    return rows.length > 0 ? rows : [len - 1];
  });
  const union = [...new Set(perRow.flat())].sort((p, q) => p - q);
  return { perRow, union };
}

/**
 * probs [B, H, R, T] (host) -> [B, max N]: the attention of each row's own
 * query rows to its visual tokens (columns before[b] .. before[b] + N_b - 1),
 * mean over heads and query rows (zeros past a row's own N_b).
 */
export function attentionToImage(probs: Float32Array, shape: readonly number[], rows: { perRow: number[][]; union: number[] }, before: ArrayLike<number>, numVisual: VisualCounts): Float32Array {
  const [B, H, R, T] = shape as [number, number, number, number];
  const width = maxCount(numVisual, B), out = new Float32Array(B * width);
  for (let b = 0; b < B; b++) {
    const mine = rows.perRow[b]!, N = countOf(numVisual, b);
    const weight = 1 / (H * mine.length);
    for (const q of mine) {
      const r = rows.union.indexOf(q);
      for (let h = 0; h < H; h++) {
        const base = ((b * H + h) * R + r) * T + before[b]!;
        for (let n = 0; n < N; n++) out[b * width + n]! += probs[base + n]! * weight;
      }
    }
  }
  return out;
}
