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
import type { Tensor } from '../../tensor.js';
import { check } from '../../validate.js';
import { QUERY_POOLINGS, checkKeepSets, numKeepFor, pruneLayer, type AttentionSource, type PruneContext, type Pruner, type QueryPooling } from '../../prune/pruner.js';
import { KVCache, runDecoder } from '../llama.js';
import { deviceOf, gatherRagged, int32Tensor, writeRows, zerosOn } from '../../moves.js';
import { compactCaches } from './compact.js';
import { opOptions, type Runtime } from './context.js';
import { embedIds, poolText, textQuery } from './query.js';
import { assembleSequence, attentionToImage, keptPositions, keptRows, probeRowsOf, visualRows, type SequenceLayout } from './sequence.js';
import type { Prefilled, PreparedStage, Row } from './types.js';

const now = () => performance.now();

export interface RunToPointOptions {
  rows: readonly Row[];
  /** [B, N, D] all visual tokens of each row. */
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
  signal: AbortSignal | undefined;
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
  const B = rows.length, N = visual.shape[1]!, { config, weights } = rt.text, D = config.hiddenSize;
  const dev = deviceOf(rt.backend);
  const seq = assembleSequence({ before: rows.map((r) => r.before.length), after: rows.map((r) => r.after.length), numVisual: N, keep, renumber: o.renumber });
  const { before: nb, after: na, visualCount } = seq;
  const x = zerosOn([B, seq.width, D], dev);
  const before = await embedIds(rt, rows.map((r) => r.before), signal);
  const after = await embedIds(rt, rows.map((r) => r.after), signal);
  if (before) await writeRows(rt.k, x, before, new Int32Array(B), nb, rt.backend);
  await writeRows(rt.k, x, keep ? await gatherRagged(rt.k, visual, keep, rt.backend) : visual, nb, visualCount, rt.backend);
  if (after) await writeRows(rt.k, x, after, nb.map((n, b) => n + visualCount[b]!), na, rt.backend);
  const cache = new KVCache(B, Math.max(...seq.fullLen) + o.extraCapacity, config, dev);
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
  at: Pick<AtPoint, 'x' | 'cache'> & { seq: Pick<SequenceLayout, 'before' | 'fullLen'> };
  /** Kept visual token indices per row. */
  kept: Int32Array[];
  /** K: layers [K, L) run. */
  fromLayer: number;
  cachePolicy: 'keep' | 'compact';
  renumber: boolean;
  signal: AbortSignal | undefined;
}

/** Stage B: gathers the kept rows at layer K (compacting caches of layers < K per policy) and runs layers [K, L). */
export async function runFromPoint(rt: Runtime, o: RunFromPointOptions): Promise<Prefilled> {
  const { at, kept, signal } = o;
  const N = rt.layout.numImageTokens, B = kept.length, { config, weights } = rt.text;
  const rows = keptRows(kept, at.seq.before, at.seq.fullLen, N);
  const length = Int32Array.from(rows, (l) => l.length);
  const S = Math.max(...length);
  const t0 = now();
  const xKept = await gatherRagged(rt.k, at.x, rows, rt.backend);
  if (o.cachePolicy === 'compact') await compactCaches(rt, at.cache, rows, o.fromLayer, signal);
  const positions = keptPositions(rows, o.renumber, S);
  await runDecoder(weights, config, xKept, int32Tensor(positions, [B, S], deviceOf(rt.backend)), length, at.cache, { from: o.fromLayer, to: config.numLayers }, opOptions(rt, signal));
  return { cache: at.cache, x: xKept, length, positions, nextPosition: o.renumber ? length.slice() : Int32Array.from(at.seq.fullLen), kept, pruneMs: 0, prefillMs: now() - t0 };
}

export interface PrefillKeptOptions {
  rows: readonly Row[];
  visual: Tensor;
  /** Pre-LLM keep-sets (checked), or null for all visual tokens. */
  keep: Int32Array[] | null;
  renumber: boolean;
  extraCapacity: number;
  signal: AbortSignal | undefined;
}

/** A whole prefill of given pre-LLM keep-sets (or of everything): one pass through every layer. */
export async function prefillKept(rt: Runtime, o: PrefillKeptOptions): Promise<Prefilled> {
  const t0 = now();
  const N = o.visual.shape[1]!, L = rt.text.config.numLayers;
  const a = await runToPoint(rt, { rows: o.rows, visual: o.visual, keep: o.keep, renumber: o.renumber, toLayer: 0, extraCapacity: o.extraCapacity, signal: o.signal });
  const B = o.rows.length;
  await runDecoder(rt.text.weights, rt.text.config, a.x, int32Tensor(a.seq.positions, [B, a.seq.width], deviceOf(rt.backend)), a.seq.length, a.cache, { from: 0, to: L }, opOptions(rt, o.signal));
  return {
    cache: a.cache, x: a.x, length: a.seq.length, positions: a.seq.positions,
    nextPosition: o.keep && o.renumber ? a.seq.length.slice() : a.seq.fullLen.slice(),
    kept: o.keep ?? o.rows.map(() => Int32Array.from({ length: N }, (_, i) => i)),
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
  signal: AbortSignal | undefined;
}

/** The prefill of a batch with its pruner (if any) at the pruner's point. */
export async function prefill(rt: Runtime, o: PrefillOptions): Promise<Prefilled> {
  const { pruner, rows, visual, signal } = o;
  const N = visual.shape[1]!, L = rt.text.config.numLayers;
  const K = pruner ? pruneLayer(pruner.point, L) : 0;
  const source = pruner?.needs?.attention;
  const pooling = pruner?.needs?.query ?? 'mean-text-after-image';
  if (pruner) check.oneOf(pooling, `pruner "${pruner.name}" needs.query`, QUERY_POOLINGS);
  if (pruner && source !== undefined && source !== 'cls' && K === 0) {
    throw new GripError('ERR_GRIP_UNSUPPORTED', `expected an in-LLM point ({ layer: K }) for a pruner that needs '${source}' attention but received 'pre-llm' (pruner "${pruner.name}")`);
  }
  const context = (states: Tensor, query: Tensor, attention: Float32Array | undefined): PruneContext => ({
    visual: states, query, keepRatio: o.keepRatio,
    numKeep: Int32Array.from(o.keepRatio, (r) => numKeepFor(r, N)),
    grid: rt.layout.grid, backend: rt.backend, signal,
    ...(attention ? { attention } : {}),
  });
  const run = { renumber: o.renumber, extraCapacity: o.extraCapacity, signal };
  if (!pruner) return prefillKept(rt, { rows, visual, keep: null, ...run });
  if (K === 0) {
    const t0 = now();
    const query = await textQuery(rt, rows, pooling, signal);
    const kept = await select(pruner, context(visual, query, source === 'cls' ? o.clsAttention : undefined));
    const pruneMs = now() - t0;
    return { ...(await prefillKept(rt, { rows, visual, keep: kept, ...run })), pruneMs };
  }
  const t0 = now();
  const at = await runToPoint(rt, { rows, visual, keep: null, renumber: false, toLayer: K, extraCapacity: o.extraCapacity, probe: source, signal });
  const t1 = now();
  const states = await gatherRagged(rt.k, at.x, visualRows(at.seq.before, N), rt.backend);
  const query = await poolText(rt, at.x, at.seq.before.map((n) => n + N), at.seq.after, pooling);
  const kept = await select(pruner, context(states, query, source === 'cls' ? o.clsAttention : at.attention));
  const t2 = now();
  const b = await runFromPoint(rt, { at, kept, fromLayer: K, cachePolicy: o.cachePolicy, renumber: o.renumber, signal });
  return { ...b, pruneMs: t2 - t1, prefillMs: t1 - t0 + b.prefillMs };
}

/** The pruner's keep-sets, checked. */
async function select(pruner: Pruner, ctx: PruneContext): Promise<Int32Array[]> {
  const sets = await pruner.select(ctx);
  return checkKeepSets(pruner.name, sets, ctx.numKeep.length, ctx.grid.rows * ctx.grid.cols);
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
  const N = rt.layout.numImageTokens;
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
