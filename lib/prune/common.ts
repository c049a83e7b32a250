// common.ts — what every pruner (GRIP and the heuristics) shares: the checks
// of its options and of the context it is handed, the backend for an op on
// host arrays, and a per-row top-k on the native op.
import type { ResolvedBackend } from '../backend.js';
import { GripError } from '../errors.js';
import { ops } from '../ops.js';
import { describe, tensor, type Tensor } from '../tensor.js';
import { check } from '../validate.js';
import type { PruneContext, PrunePoint } from './pruner.js';

/** The options object of a pruner constructor (undefined reads as {}). */
export function checkOptions<T extends object>(options: T | undefined, name: string): T {
  if (options === undefined) return {} as T;
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    check.fail('ERR_GRIP_RANGE', 'an options object', `the ${name} pruner`, describe(options));
  }
  return options;
}

/** 'pre-llm' or { layer: K } with an integer K >= 1; the runtime checks K < layers when it runs. */
export function checkPoint(point: unknown, what: string): PrunePoint {
  if (point === 'pre-llm') return point;
  const layer = typeof point === 'object' && point !== null ? (point as { layer?: unknown }).layer : undefined;
  if (typeof layer !== 'number' || !Number.isInteger(layer) || layer < 1) {
    const received = typeof point === 'object' && point !== null && !Array.isArray(point) ? JSON.stringify(point) : describe(point);
    check.fail('ERR_GRIP_RANGE', "'pre-llm' or { layer: K } with an integer K >= 1", what, received);
  }
  return { layer };
}

/**
 * Checks what a pruner reads from its context and returns the extents:
 * B rows (numKeep.length), N = rows x cols tokens, D the state width
 * (visual [B,N,D] f32; not read when `withStates` is false), 1 <= numKeep[b] <= N.
 */
export function contextShape(ctx: PruneContext, name: string, withStates = true): { B: number; N: number; D: number } {
  if (typeof ctx !== 'object' || ctx === null) check.fail('ERR_GRIP_RANGE', 'a PruneContext', `the ${name} pruner`, describe(ctx));
  if (!(ctx.numKeep instanceof Int32Array)) check.fail('ERR_GRIP_RANGE', 'an Int32Array', 'ctx.numKeep', describe(ctx.numKeep));
  const grid = ctx.grid;
  if (typeof grid !== 'object' || grid === null) check.fail('ERR_GRIP_RANGE', 'a grid { rows, cols }', 'ctx.grid', describe(grid));
  check.integer(grid.rows, 'ctx.grid.rows', 1, 0x7fffffff);
  check.integer(grid.cols, 'ctx.grid.cols', 1, 0x7fffffff);
  const B = ctx.numKeep.length, N = grid.rows * grid.cols;
  ctx.numKeep.forEach((k, b) => check.integer(k, `ctx.numKeep[${b}]`, 1, N));
  if (!withStates) return { B, N, D: 0 };
  check.tensor(ctx.visual, 'ctx.visual', '[B,N,D]', ['f32'], [B, N]);
  return { B, N, D: ctx.visual.shape[2]! };
}

/**
 * The backend for an op on a tensor where it lies: CUDA for a device tensor;
 * for a host one the emulator when the runtime emulates, else the CPU (a
 * host tensor is not sent to the GPU and back for one small op).
 */
export function backendFor(tensor: Tensor | Float32Array, backend: ResolvedBackend): ResolvedBackend {
  if (!(tensor instanceof Float32Array) && tensor.device === 'cuda') return 'cuda';
  return backend === 'emu' ? 'emu' : 'cpu';
}

/**
 * Per row b, the numKeep[b] largest of scores [B, N] (host values, or a
 * tensor on the host or the device), ascending by index; ties go to the
 * lower index. The native top-k pads rows with a smaller k: each row is cut
 * to its own k.
 */
export async function topkRows(scores: Float32Array | Tensor, B: number, N: number, ctx: Pick<PruneContext, 'numKeep' | 'backend' | 'signal'>): Promise<Int32Array[]> {
  const input = scores instanceof Float32Array ? tensor(scores, [B, N]) : scores;
  const { indices } = await ops.topk(input, ctx.numKeep, { backend: backendFor(scores, ctx.backend), ...(ctx.signal ? { signal: ctx.signal } : {}) });
  const maxK = indices.shape[1]!;
  const host = indices.toHost().host as Int32Array;
  if (indices.device === 'cuda') indices.dispose();
  return Array.from(ctx.numKeep, (k, b) => host.slice(b * maxK, b * maxK + k));
}

/** ctx.attention as [B, N] host values, checked (a pruner that declared `needs.attention` gets it from the runtime). */
export function attentionOf(ctx: PruneContext, B: number, N: number, name: string, source: string): Float32Array {
  const attention = ctx.attention;
  if (!(attention instanceof Float32Array) || attention.length !== B * N) {
    const received = attention === undefined ? 'none' : attention instanceof Float32Array ? `${attention.length} values` : describe(attention);
    throw new GripError('ERR_GRIP_SHAPE', `expected ${source} attention [${B}, ${N}] (${B * N} values) for ctx.attention of the ${name} pruner but received ${received}`);
  }
  return attention;
}
