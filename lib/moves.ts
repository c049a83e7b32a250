// moves.ts — the few tensor moves made between native ops, by the runtime
// (model/) and the pruners (prune/) alike: free reshapes (views over the
// same storage), row-range writes, row repeats and ragged row gathers, each
// one native op so the same code runs on the CPU and on CUDA. The ops come
// in as an argument (ops, or the runtime's sync/async Kernels table).
import type { ResolvedBackend } from './backend.js';
import type { ops as opTable } from './ops.js';
import { Tensor, numel, zeros, type Device } from './tensor.js';

/** The ops these moves call. */
type MoveOps = Pick<typeof opTable, 'cacheWrite' | 'gatherRows'>;

/** The same storage under another shape (same number of elements). */
export function view(t: Tensor, shape: readonly number[]): Tensor {
  if (numel(shape) !== t.size) throw new Error(`internal: view of [${t.shape.join(', ')}] as [${shape.join(', ')}]`);
  return new Tensor(t.dtype, shape, t.data, t.device);
}

/** Where a backend keeps its tensors. */
export function deviceOf(backend: ResolvedBackend): Device {
  return backend === 'cuda' ? 'cuda' : 'cpu';
}

/** An i32 tensor on `device`. */
export function int32Tensor(values: Int32Array, shape: readonly number[], device: Device): Tensor {
  const t = new Tensor('i32', shape, values, 'cpu');
  return device === 'cuda' ? t.toDevice() : t;
}

/**
 * dst[b, start[b] + i, :] = src[b, i, :] for i < count[b]: dst [B,S,D], src
 * [B,T,D]. The KV-cache write with one head, in place on dst.
 */
export async function writeRows(ops: MoveOps, dst: Tensor, src: Tensor, start: ArrayLike<number>, count: ArrayLike<number>, backend: ResolvedBackend): Promise<void> {
  const [B, S, D] = dst.shape as [number, number, number];
  const T = src.shape[1]!;
  await ops.cacheWrite(view(dst, [B, 1, S, D]), view(src, [B, T, 1, D]), start, count, { backend });
}

/** [G, ...shape] made of G copies of a tensor whose first extent is 1. */
export async function repeatRows(ops: MoveOps, t: Tensor, G: number, backend: ResolvedBackend): Promise<Tensor> {
  const rowSize = t.size;
  const out = await ops.gatherRows(view(t, [1, 1, rowSize]), int32Tensor(new Int32Array(G), [1, G], t.device), { backend });
  return view(out, [G, ...t.shape.slice(1)]);
}

/** rows[b, k] = x[b, indices[b][k]] for ragged per-row index lists (padding rows are zeros). */
export async function gatherRagged(ops: MoveOps, x: Tensor, indices: readonly ArrayLike<number>[], backend: ResolvedBackend): Promise<Tensor> {
  const B = indices.length;
  const K = Math.max(0, ...indices.map((row) => row.length));
  const flat = new Int32Array(B * K).fill(-1);
  indices.forEach((row, b) => flat.set(row, b * K));
  return ops.gatherRows(x, int32Tensor(flat, [B, K], x.device), { backend });
}

/** A zero f32 tensor on `device`. */
export function zerosOn(shape: readonly number[], device: Device): Tensor {
  return zeros(shape, 'f32', device);
}
