// prefill.ts — the prefill with the pruning hook. Around the prune point a
// prefill has two stages:
//   stage A (runToPoint): T_before ++ V ++ T_after at positions 0..S-1 (or
//            only the pre-LLM keep-sets, at their original positions)
//            through layers [0, K);
//   prune:   the pruner picks visual tokens from the states at the point;
//   stage B (runFromPoint): the kept rows (original position ids unless
//            renumbered) through layers [K, L); layers < K keep their full
//            KV cache or have it compacted to the kept positions.
import { GripError } from '../../errors.js';
import { Tensor } from '../../tensor.js';
import type { VisualLayout } from '../family.js';
import { check } from '../../validate.js';
import { QUERY_POOLINGS, checkKeepSets, checkMergedStates, numKeepFor, pruneLayers, type AttentionSource, type PruneContext, type Pruner, type QueryPooling } from '../../prune/pruner.js';
import { KVCache, runDecoder, type DecoderOutputs } from '../llama.js';
import { deviceOf, gatherRagged, int32Tensor, view, writeRows, zerosOn } from '../../moves.js';
import { compactCaches } from './compact.js';
import { attachMRope, checkWindow, opOptions, type Runtime } from './context.js';
import { embedIds, poolText, textQuery, textTokens } from './query.js';
import { assembleSequence, attentionToImage, keptPositions, keptRows, probeRowsOf, visualRows, type SequenceLayout } from './sequence.js';
import type { Prefilled, PreparedStage, Row } from './types.js';

const now = () => performance.now();

/** N per row: each row's own count of visual tokens (its image's layout). */
export function visualCounts(rows: readonly Row[]): Int32Array {
  return Int32Array.from(rows, (r) => r.pixels.layout.numImageTokens);
}

export interface RunToPointOptions {
  rows: readonly Row[];
  /** [B, max N, D] all visual tokens of each row (row b valid up to its own N). */
  visual: Tensor;
  /** Pre-LLM keep-sets, or null for all visual tokens. */
  keep: readonly Int32Array[] | null;
  renumber: boolean;
  /** K: layers [0, K) run (0: none). */
  toLayer: number;
  /** Cache rows reserved after the prompt (new tokens, teacher-forced answers). */
  extraCapacity: number;
  /** Attention to the visual tokens to read at layer K - 1. */
  probe?: AttentionSource | undefined;
  /** A merging pruner's states, written over the kept visual rows. */
  replace?: Replacement | undefined;
  signal: AbortSignal | undefined;
}

/** A merging pruner's states as [B, maxKept, D] and, per row, how many kept rows they replace (0: none). */
export interface Replacement {
  states: Tensor;
  count: Int32Array;
}

export interface AtPoint {
  /** [B, S, D] hidden states entering layer K. */
  x: Tensor;
  seq: SequenceLayout;
  cache: KVCache;
  /** [B, N] the probed attention, when asked for. */
  attention: Float32Array | undefined;
}

/** Stage A: builds T_before ++ visual ++ T_after per row, allocates the cache, and runs layers [0, K). */
export async function runToPoint(rt: Runtime, o: RunToPointOptions): Promise<AtPoint> {
  const { rows, visual, keep, signal } = o;
  const B = rows.length, N = visualCounts(rows), { config, weights } = rt.text, D = config.hiddenSize;
  const dev = deviceOf(rt.backend);
  const seq = assembleSequence({ before: rows.map((r) => r.before.length), after: rows.map((r) => r.after.length), numVisual: N, keep, renumber: o.renumber });
  checkWindow(rt, Math.max(...seq.fullLen), o.extraCapacity);
  const { before: nb, after: na, visualCount } = seq;
  const x = zerosOn([B, seq.width, D], dev);
  const before = await embedIds(rt, rows.map((r) => r.before), signal);
  const after = await embedIds(rt, rows.map((r) => r.after), signal);
  if (before) await writeRows(rt.k, x, before, new Int32Array(B), nb, rt.backend);
  await writeRows(rt.k, x, keep ? await gatherRagged(rt.k, visual, keep, rt.backend) : visual, nb, visualCount, rt.backend);
  if (o.replace) await writeRows(rt.k, x, o.replace.states, nb, o.replace.count, rt.backend);
  if (after) await writeRows(rt.k, x, after, nb.map((n, b) => n + visualCount[b]!), na, rt.backend);
  const cache = new KVCache(B, Math.max(...seq.fullLen) + o.extraCapacity, config, dev);
  attachMRope(rt, cache, rows, o.renumber);
  let attention: Float32Array | undefined;
  if (o.toLayer > 0) {
    const probeRows = o.probe === 'last-token' || o.probe === 'text-tokens' ? probeRowsOf(o.probe, nb, N, seq.fullLen) : undefined;
    const probs = await runDecoder(weights, config, x, int32Tensor(seq.positions, [B, seq.width], dev), seq.length, cache, { from: 0, to: o.toLayer }, {
      ...opOptions(rt, signal), probe: probeRows && { layer: o.toLayer - 1, rows: probeRows.union },
    });
    if (probeRows) attention = attentionToImage(probs!.toHost().host as Float32Array, probs!.shape, probeRows, nb, N);
  }
  return { x, seq, cache, attention };
}

export interface RunFromPointOptions {
  /** Stage A's result. */
  at: Pick<AtPoint, 'x' | 'cache'> & { seq: Pick<SequenceLayout, 'before' | 'fullLen' | 'numVisual'> };
  /** Kept visual token indices per row. */
  kept: Int32Array[];
  /** K: layers [K, L) run. */
  fromLayer: number;
  cachePolicy: 'keep' | 'compact';
  renumber: boolean;
  /** A merging pruner's states, written over the kept visual rows at layer K. */
  replace?: Replacement | undefined;
  /** runDecoder's outputs for the last layer: 'last' when only each row's last position is read next (default 'all'). */
  outputs?: DecoderOutputs | undefined;
  signal: AbortSignal | undefined;
}

/** Stage B: gathers the kept rows at layer K (compacting caches of layers < K per policy) and runs layers [K, L). */
export async function runFromPoint(rt: Runtime, o: RunFromPointOptions): Promise<Prefilled> {
  const { at, kept, signal } = o;
  const B = kept.length, { config, weights } = rt.text;
  const rows = keptRows(kept, at.seq.before, at.seq.fullLen, at.seq.numVisual);
  const length = Int32Array.from(rows, (l) => l.length);
  const S = Math.max(...length);
  const t0 = now();
  const xKept = await gatherRagged(rt.k, at.x, rows, rt.backend);
  if (o.replace) await writeRows(rt.k, xKept, o.replace.states, at.seq.before, o.replace.count, rt.backend);
  if (o.cachePolicy === 'compact') await compactCaches(rt, at.cache, rows, o.fromLayer, signal);
  const positions = keptPositions(rows, o.renumber, S);
  await runDecoder(weights, config, xKept, int32Tensor(positions, [B, S], deviceOf(rt.backend)), length, at.cache, { from: o.fromLayer, to: config.numLayers }, { ...opOptions(rt, signal), outputs: o.outputs });
  return { cache: at.cache, x: xKept, length, positions, nextPosition: o.renumber ? length.slice() : Int32Array.from(at.seq.fullLen), kept, pruneMs: 0, prefillMs: now() - t0 };
}

export interface PrefillKeptOptions {
  rows: readonly Row[];
  visual: Tensor;
  /** Pre-LLM keep-sets (checked), or null for all visual tokens. */
  keep: Int32Array[] | null;
  renumber: boolean;
  extraCapacity: number;
  replace?: Replacement | undefined;
  /** runDecoder's outputs for the last layer: 'last' when only each row's last position is read next (default 'all'). */
  outputs?: DecoderOutputs | undefined;
  signal: AbortSignal | undefined;
}

/** A whole prefill of given pre-LLM keep-sets (or of everything): one pass through every layer. */
export async function prefillKept(rt: Runtime, o: PrefillKeptOptions): Promise<Prefilled> {
  const t0 = now();
  const L = rt.text.config.numLayers;
  const a = await runToPoint(rt, { rows: o.rows, visual: o.visual, keep: o.keep, renumber: o.renumber, toLayer: 0, extraCapacity: o.extraCapacity, replace: o.replace, signal: o.signal });
  const B = o.rows.length;
  await runDecoder(rt.text.weights, rt.text.config, a.x, int32Tensor(a.seq.positions, [B, a.seq.width], deviceOf(rt.backend)), a.seq.length, a.cache, { from: 0, to: L }, { ...opOptions(rt, o.signal), outputs: o.outputs });
  return {
    cache: a.cache, x: a.x, length: a.seq.length, positions: a.seq.positions,
    nextPosition: o.keep && o.renumber ? a.seq.length.slice() : a.seq.fullLen.slice(),
    kept: o.keep ?? Array.from(a.seq.numVisual, (N) => Int32Array.from({ length: N }, (_, i) => i)),
    pruneMs: 0, prefillMs: now() - t0,
  };
}

export interface PrefillOptions {
  rows: readonly Row[];
  visual: Tensor;
  pruner: Pruner | undefined;
  keepRatio: Float32Array;
  clsAttention?: Float32Array | undefined;
  cachePolicy: 'keep' | 'compact';
  renumber: boolean;
  extraCapacity: number;
  /** How each image's tokens are handed to the pruner (default: all of them, one budget). */
  parts?: SelectionParts | undefined;
  /** runDecoder's outputs for the last layer: 'last' when only each row's last position is read next (default 'all'). */
  outputs?: DecoderOutputs | undefined;
  signal: AbortSignal | undefined;
}

/** The prefill of a batch with its pruner (if any) at the pruner's point. */
export async function prefill(rt: Runtime, o: PrefillOptions): Promise<Prefilled> {
  const { pruner, rows, visual, signal } = o;
  const N = visualCounts(rows), L = rt.text.config.numLayers;
  const layers = pruner ? pruneLayers(pruner.point, L) : [];
  if (pruner && layers.length > 1) return prefillStaged(rt, o, pruner, layers);
  const K = layers[0] ?? 0;
  const source = pruner?.needs?.attention;
  const pooling = pruner?.needs?.query ?? 'mean-text-after-image';
  if (pruner) check.oneOf(pooling, `pruner "${pruner.name}" needs.query`, QUERY_POOLINGS);
  if (pruner && source !== undefined && source !== 'cls' && K === 0) {
    throw new GripError('ERR_GRIP_UNSUPPORTED', `expected an in-LLM point ({ layer: K }) for a pruner that needs '${source}' attention but received 'pre-llm' (pruner "${pruner.name}")`);
  }
  const context = (states: Tensor, query: Tensor, attention: Float32Array | undefined, text: PruneContext['text']): PruneContext => ({
    visual: states, query, keepRatio: o.keepRatio, ...(text ? { text } : {}),
    numKeep: Int32Array.from(o.keepRatio, (r, b) => numKeepFor(r, N[b]!)),
    grid: rows[0]!.pixels.layout.grid, backend: rt.backend, signal,
    ...(attention ? { attention } : {}),
  });
  const parts = o.parts ?? { imageNewline: 'prune', budget: 'image' };
  const run = { renumber: o.renumber, extraCapacity: o.extraCapacity, outputs: o.outputs, signal };
  if (!pruner) return prefillKept(rt, { rows, visual, keep: null, ...run });
  if (K === 0) {
    const t0 = now();
    const query = await textQuery(rt, rows, pooling, signal);
    const after = pruner.needs?.text ? await embedIds(rt, rows.map((r) => r.after), signal) : null;
    const counts = Int32Array.from(rows, (r) => r.after.length);
    const text = pruner.needs?.text ? { states: after ?? zerosOn([rows.length, 0, visual.shape[2]!], deviceOf(rt.backend)), count: counts } : undefined;
    const ctx = context(visual, query, source === 'cls' ? o.clsAttention : undefined, text);
    const { kept, ...selection } = await select(rt, pruner, ctx, rows, parts);
    const replace = replacementOf({ kept, ...selection }, visual.shape[2]!, visual.device);
    const pruneMs = now() - t0;
    return { ...(await prefillKept(rt, { rows, visual, keep: kept, replace, ...run })), pruneMs };
  }
  const t0 = now();
  const at = await runToPoint(rt, { rows, visual, keep: null, renumber: false, toLayer: K, extraCapacity: o.extraCapacity, probe: source, signal });
  const t1 = now();
  const states = await gatherRagged(rt.k, at.x, visualRows(at.seq.before, N), rt.backend);
  const query = await poolText(rt, at.x, at.seq.before.map((n, b) => n + N[b]!), at.seq.after, pooling);
  const text = pruner.needs?.text ? await textTokens(rt, at.x, at.seq.before.map((n, b) => n + N[b]!), at.seq.after) : undefined;
  const ctx = context(states, query, source === 'cls' ? o.clsAttention : at.attention, text);
  const { kept, ...selection } = await select(rt, pruner, ctx, rows, parts);
  const replace = replacementOf({ kept, ...selection }, states.shape[2]!, states.device);
  const t2 = now();
  const b = await runFromPoint(rt, { at, kept, fromLayer: K, cachePolicy: o.cachePolicy, renumber: o.renumber, replace, outputs: o.outputs, signal });
  return { ...b, pruneMs: t2 - t1, prefillMs: t1 - t0 + b.prefillMs };
}

/** How an image's tokens are handed to the pruner (PruneOptions.imageNewline, .budget). */
export interface SelectionParts {
  imageNewline: 'prune' | 'keep';
  budget: 'image' | 'tile';
}

/** One call's worth of a row: these tokens (indices into the row's N) on this grid, keeping this many. */
export interface SelectionPart {
  tokens: Int32Array;
  grid: { rows: number; cols: number };
  numKeep: number;
}

/**
 * A row's tokens split as the options say: kept outright (`fixed`), and the
 * parts the pruner chooses in. 'image' budget: one part, ceil(ρ N) tokens
 * (with newlines kept, they count in it and the pruner picks the rest, at
 * least 1, among the patches, as a 1 x M sequence). 'tile' budget: each region
 * with ceil(ρ n) of its n tokens on its own grid, the newlines one more
 * region unless kept.
 */
export function partsOf(layout: VisualLayout, keepRatio: number, o: SelectionParts): { fixed: Int32Array; parts: SelectionPart[] } {
  const N = layout.numImageTokens;
  const newlines = layout.newlines ?? new Int32Array(0);
  const keepNewlines = o.imageNewline === 'keep' && newlines.length > 0;
  const fixed = keepNewlines ? newlines : new Int32Array(0);
  if (o.budget === 'tile' && layout.regions !== undefined) {
    const regions = [...layout.regions];
    if (!keepNewlines && newlines.length > 0) regions.push({ grid: { rows: 1, cols: newlines.length }, tokens: newlines });
    return { fixed, parts: regions.filter((r) => r.tokens.length > 0).map((r) => ({ tokens: r.tokens, grid: r.grid, numKeep: numKeepFor(keepRatio, r.tokens.length) })) };
  }
  const all = Int32Array.from({ length: N }, (_, i) => i);
  if (!keepNewlines) return { fixed, parts: [{ tokens: all, grid: layout.grid, numKeep: numKeepFor(keepRatio, N) }] };
  const isNewline = new Uint8Array(N);
  for (const i of newlines) isNewline[i] = 1;
  const patches = all.filter((i) => isNewline[i] === 0);
  const numKeep = Math.min(patches.length, Math.max(1, numKeepFor(keepRatio, N) - newlines.length));
  return { fixed, parts: [{ tokens: patches, grid: { rows: 1, cols: patches.length }, numKeep }] };
}

/**
 * The pruner's keep-sets, checked. A batch whose rows share one layout and
 * hand the pruner all their tokens is one call (LLaVA-1.5 always). Otherwise
 * (rows of different LLaVA-NeXT grids, kept newlines, a per-tile budget) the
 * pruner gets each row's parts one by one, each with its own grid and only
 * its own tokens, so it never sees padding; the keep-set is the union of the
 * fixed tokens and each part's choice.
 */
async function select(rt: Runtime, pruner: Pruner, ctx: PruneContext, rows: readonly Row[], o: SelectionParts): Promise<Selection> {
  const layouts = rows.map((r) => r.pixels.layout);
  const split = layouts.map((l, b) => partsOf(l, ctx.keepRatio[b]!, o));
  const whole = split.every((p, b) => p.fixed.length === 0 && p.parts.length === 1 && p.parts[0]!.tokens.length === layouts[b]!.numImageTokens);
  const first = layouts[0]!;
  const same = layouts.every((l) => l.numImageTokens === first.numImageTokens && l.grid.rows === first.grid.rows && l.grid.cols === first.grid.cols);
  if (whole && same && ctx.visual.shape[1] === first.numImageTokens) {
    const kept = checkKeepSets(pruner.name, await pruner.select(ctx), ctx.numKeep.length, first.numImageTokens);
    const states = pruner.merge ? checkMergedStates(pruner.name, await pruner.merge(ctx, kept), kept, ctx.visual.shape[2]!) : undefined;
    return { kept, states };
  }
  const [B, width, D] = ctx.visual.shape as [number, number, number];
  const flat = view(ctx.visual, [1, B * width, D]);
  const out: Int32Array[] = [];
  // A merging pruner merges within each part; the row's states are then put in kept order.
  const host = pruner.merge ? (ctx.visual.device === 'cuda' ? ctx.visual.toHost() : ctx.visual).host as Float32Array : undefined;
  const mergedRows: (Float32Array | null)[] = [];
  for (let b = 0; b < B; b++) {
    const stateOf = new Map<number, Float32Array>();
    const query = view(await gatherRagged(rt.k, view(ctx.query, [1, B, D]), [[b]], rt.backend), [1, D]);
    const kept = Array.from(split[b]!.fixed);
    for (const part of split[b]!.parts) {
      const one: PruneContext = {
        visual: await gatherRagged(rt.k, flat, [part.tokens.map((i) => b * width + i)], rt.backend),
        query, keepRatio: ctx.keepRatio.subarray(b, b + 1), numKeep: Int32Array.of(part.numKeep),
        grid: part.grid, backend: ctx.backend, signal: ctx.signal,
        ...(ctx.text ? { text: await textTokens(rt, view(ctx.text.states, [1, B * ctx.text.states.shape[1]!, D]), [b * ctx.text.states.shape[1]!], [ctx.text.count[b]!]) } : {}),
        ...(ctx.attention ? { attention: Float32Array.from(part.tokens, (i) => ctx.attention![b * width + i]!) } : {}),
      };
      const [set] = checkKeepSets(pruner.name, await pruner.select(one), 1, part.tokens.length);
      for (const i of set!) kept.push(part.tokens[i]!);
      if (pruner.merge) {
        const [m] = checkMergedStates(pruner.name, await pruner.merge(one, [set!]), [set!], D);
        if (m) set!.forEach((i, slot) => stateOf.set(part.tokens[i]!, m.subarray(slot * D, (slot + 1) * D)));
      }
    }
    const sorted = Int32Array.from(kept).sort();
    out.push(sorted);
    if (host) {
      const row = new Float32Array(sorted.length * D);
      sorted.forEach((i, slot) => row.set(stateOf.get(i) ?? host.subarray((b * width + i) * D, (b * width + i + 1) * D), slot * D));
      mergedRows.push(stateOf.size > 0 ? row : null);
    }
  }
  return { kept: out, states: host ? mergedRows : undefined };
}

/** What `select` hands back: the keep-sets and, for a merging pruner, the kept tokens' states per row (null: unchanged). */
interface Selection {
  kept: Int32Array[];
  states: (Float32Array | null)[] | undefined;
}

/** Whether a batch hands its pruner every token of one shared layout in one call (LLaVA-1.5 always). */
function wholeAndSame(rows: readonly Row[], keepRatio: Float32Array, o: SelectionParts): boolean {
  const layouts = rows.map((r) => r.pixels.layout), first = layouts[0]!;
  return layouts.every((l, b) => {
    const p = partsOf(l, keepRatio[b]!, o);
    return p.fixed.length === 0 && p.parts.length === 1 && p.parts[0]!.tokens.length === l.numImageTokens
      && l.numImageTokens === first.numImageTokens && l.grid.rows === first.grid.rows && l.grid.cols === first.grid.cols;
  });
}

/** A merging pruner's states as the [B, maxKept, D] replacement the prefill writes, or undefined when nothing merged. */
function replacementOf(selection: Selection, D: number, device: 'cpu' | 'cuda'): Replacement | undefined {
  const { kept, states } = selection;
  if (!states || states.every((r) => r === null)) return undefined;
  const K = Math.max(...kept.map((k) => k.length));
  const host = new Float32Array(kept.length * K * D);
  states.forEach((r, b) => r && host.set(r, b * K * D));
  const t = new Tensor('f32', [kept.length, K, D], host, 'cpu');
  return { states: device === 'cuda' ? t.toDevice() : t, count: Int32Array.from(states, (r, b) => (r ? kept[b]!.length : 0)) };
}

/**
 * Pruning in stages (a StagedPoint, PyramidDrop): layers [0, K1) on the full
 * sequence, then at each stage layer K_s the pruner keeps some of the visual
 * tokens that reached it, and the kept rows run to the next stage's layer,
 * where the attention the pruner needs is read at layer K_{s+1} - 1. Kept
 * tokens keep their positions; a 'compact' cache policy compacts the caches
 * of layers < K_s at each stage. Every row of the batch has one layout, one
 * keep ratio and keeps one count per stage, so the visual tokens stay a
 * [B, N_s] block.
 */
async function prefillStaged(rt: Runtime, o: PrefillOptions, pruner: Pruner, layers: number[]): Promise<Prefilled> {
  const { rows, visual, signal } = o;
  const B = rows.length, { config, weights } = rt.text, L = config.numLayers;
  const dev = deviceOf(rt.backend);
  const source = pruner.needs?.attention;
  const pooling = pruner.needs?.query ?? 'mean-text-after-image';
  check.oneOf(pooling, `pruner "${pruner.name}" needs.query`, QUERY_POOLINGS);
  if (source === 'cls') throw new GripError('ERR_GRIP_UNSUPPORTED', `expected 'last-token' or 'text-tokens' attention (or none) for a staged pruner but received 'cls' (pruner "${pruner.name}")`);
  if (o.keepRatio.some((r) => r !== o.keepRatio[0])) {
    throw new GripError('ERR_GRIP_UNSUPPORTED', `expected one keep ratio for every row of a batch with a staged pruner but received ${Array.from(o.keepRatio).join(', ')} (pruner "${pruner.name}")`);
  }
  if (!wholeAndSame(rows, o.keepRatio, o.parts ?? { imageNewline: 'prune', budget: 'image' })) {
    throw new GripError('ERR_GRIP_UNSUPPORTED', `expected rows of one layout that hand the pruner all their tokens for a staged pruner but received different layouts, kept newlines or a per-tile budget (pruner "${pruner.name}")`);
  }
  const N = rows[0]!.pixels.layout.numImageTokens;
  const t0 = now();
  const at = await runToPoint(rt, { rows, visual, keep: null, renumber: false, toLayer: layers[0]!, extraCapacity: o.extraCapacity, probe: source, signal });
  const { before, after } = at.seq;
  let x = at.x, attention = at.attention, n = N, pruneMs = 0;
  let length = Int32Array.from(at.seq.fullLen);
  let positions: Int32Array[] = Array.from(length, (len) => Int32Array.from({ length: len }, (_, i) => i));
  let kept: Int32Array[] = rows.map(() => Int32Array.from({ length: N }, (_, i) => i));
  let flat = at.seq.positions;
  for (let s = 0; s < layers.length; s++) {
    const t1 = now();
    const states = await gatherRagged(rt.k, x, visualRows(before, n), rt.backend);
    const query = await poolText(rt, x, before.map((nb) => nb + n), after, pooling);
    const sets = await pruner.select({
      visual: states, query, keepRatio: o.keepRatio, numKeep: Int32Array.from(o.keepRatio, (r) => numKeepFor(r, n)),
      grid: n === N ? rows[0]!.pixels.layout.grid : { rows: 1, cols: n }, backend: rt.backend, signal,
      stage: { index: s, layers, numLayers: L }, ...(attention ? { attention } : {}),
      ...(pruner.needs?.text ? { text: await textTokens(rt, x, before.map((nb) => nb + n), after) } : {}),
    });
    const chosen = checkKeepSets(pruner.name, sets, B, n);
    if (chosen.some((c) => c.length !== chosen[0]!.length)) {
      throw new GripError('ERR_GRIP_SHAPE', `expected the same number of kept tokens in every row at stage ${s} from pruner "${pruner.name}" but received ${chosen.map((c) => c.length).join(', ')}`);
    }
    kept = chosen.map((c, b) => c.map((i) => kept[b]![i]!));
    const keepRows = keptRows(chosen, before, length, n);
    pruneMs += now() - t1;
    const xKept = await gatherRagged(rt.k, x, keepRows, rt.backend);
    if (o.cachePolicy === 'compact') await compactCaches(rt, at.cache, keepRows, layers[s]!, signal);
    positions = keepRows.map((r, b) => (o.renumber ? Int32Array.from(r, (_, i) => i) : r.map((i) => positions[b]![i]!)));
    length = Int32Array.from(keepRows, (r) => r.length);
    n = chosen[0]!.length;
    const S = Math.max(...length);
    flat = new Int32Array(B * S);
    positions.forEach((p, b) => flat.set(p, b * S));
    const to = layers[s + 1] ?? L;
    const probeRows = s + 1 < layers.length && (source === 'last-token' || source === 'text-tokens') ? probeRowsOf(source, before, n, length) : undefined;
    const probs = await runDecoder(weights, config, xKept, int32Tensor(flat, [B, S], dev), length, at.cache, { from: layers[s]!, to }, {
      ...opOptions(rt, signal), probe: probeRows && { layer: to - 1, rows: probeRows.union }, outputs: to === L ? o.outputs : 'all',
    });
    attention = probeRows ? attentionToImage(probs!.toHost().host as Float32Array, probs!.shape, probeRows, before, n) : undefined;
    x = xKept;
  }
  return { cache: at.cache, x, length, positions: flat, nextPosition: o.renumber ? length.slice() : Int32Array.from(at.seq.fullLen), kept, pruneMs, prefillMs: now() - t0 - pruneMs };
}

export interface PrepareAtPointOptions {
  row: Row;
  /** [1, N, D] the projected visual tokens. */
  projected: Tensor;
  clsAttention: Float32Array | undefined;
  /** K (0: pre-LLM). */
  layer: number;
  attention: AttentionSource | undefined;
  /** For a pre-LLM point: the layer whose attention is read as if pruning there. */
  attentionLayer: number;
  pooling: QueryPooling;
  answerCapacity: number;
  signal: AbortSignal | undefined;
}

/** What a pruner sees at the point for one row, and (in-LLM) the stage A work answerLogProb reuses. */
export async function prepareAtPoint(rt: Runtime, o: PrepareAtPointOptions): Promise<{ states: Tensor; query: Tensor; attention: Float32Array | undefined; stage: PreparedStage | undefined }> {
  const { row, projected, signal } = o;
  const N = row.pixels.layout.numImageTokens;
  const llmSource = o.attention === 'cls' ? undefined : o.attention;
  let attention = o.attention === 'cls' ? o.clsAttention : undefined;
  if (o.layer === 0) {
    const query = await textQuery(rt, [row], o.pooling, signal);
    if (llmSource) {
      const a = await runToPoint(rt, { rows: [row], visual: projected, keep: null, renumber: false, toLayer: o.attentionLayer, extraCapacity: 0, probe: llmSource, signal });
      a.cache.dispose();
      attention = a.attention;
    }
    return { states: projected, query, attention, stage: undefined };
  }
  const a = await runToPoint(rt, { rows: [row], visual: projected, keep: null, renumber: false, toLayer: o.layer, extraCapacity: o.answerCapacity, probe: llmSource, signal });
  const states = await gatherRagged(rt.k, a.x, visualRows(a.seq.before, N), rt.backend);
  const query = await poolText(rt, a.x, [a.seq.before[0]! + N], [a.seq.after[0]!], o.pooling);
  if (llmSource) attention = a.attention;
  return { states, query, attention, stage: { x: a.x, cache: a.cache, fullLen: a.seq.fullLen[0]!, answerCapacity: o.answerCapacity } };
}
