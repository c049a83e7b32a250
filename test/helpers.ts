// helpers.ts — shared test plumbing: seeded data, dtype rounding (written
// here, independently of lib/tensor.ts), the error metric and the backend table.
import * as assert from 'uvu/assert';
import { GripError, info, setEmulatorSchedule, tensor, scorerShapes, type Backend, type ScorerParams, type Tensor } from '../lib/index.ts';
import { PARAM_NAMES, type RefParams } from './ref/scorer.ts';

// ---- seeded data ----------------------------------------------------------------

/** mulberry32: small, fast, deterministic. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** n uniform values in [-scale, scale), already rounded to f32. */
export function uniform(r: () => number, n: number, scale = 1): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (2 * r() - 1) * scale;
  return out;
}

// ---- f16 / bf16 rounding (test-side, by arithmetic rather than bit tricks) -------

/** Value of IEEE half bits. */
export function halfValue(bits: number): number {
  const s = bits & 0x8000 ? -1 : 1, e = (bits >> 10) & 31, m = bits & 1023;
  if (e === 31) return m ? NaN : s * Infinity;
  return e === 0 ? s * m * 2 ** -24 : s * (1024 + m) * 2 ** (e - 25);
}

/** Value of bfloat16 bits. */
export function bf16Value(bits: number): number {
  const f = new Float32Array(1);
  new Uint32Array(f.buffer)[0] = (bits & 0xffff) << 16;
  return f[0]!;
}

/** The float values a tensor of dtype f32/f16/bf16 holds, as float64. */
export function valuesOf(t: Tensor): Float64Array {
  const h = t.toHost().host;
  if (t.dtype === 'f16') return Float64Array.from(h as Uint16Array, halfValue);
  if (t.dtype === 'bf16') return Float64Array.from(h as Uint16Array, bf16Value);
  return Float64Array.from(h as Float32Array | Int32Array);
}

// ---- error metric -------------------------------------------------------------------

/**
 * Normalised error max|a-b| / max(1, max|ref|) over the finite reference
 * entries; a non-finite reference entry must be matched exactly (else Infinity).
 */
export function normErr(actual: ArrayLike<number>, ref: ArrayLike<number>): number {
  if (actual.length !== ref.length) return Infinity;
  let maxDiff = 0, maxRef = 1;
  for (let i = 0; i < ref.length; i++) {
    const a = actual[i]!, b = ref[i]!;
    if (!Number.isFinite(b)) {
      if (!Object.is(a, b) && !(Number.isNaN(a) && Number.isNaN(b))) return Infinity;
      continue;
    }
    if (!Number.isFinite(a)) return Infinity;
    maxDiff = Math.max(maxDiff, Math.abs(a - b));
    maxRef = Math.max(maxRef, Math.abs(b));
  }
  return maxDiff / maxRef;
}

/** First index where the two arrays differ (Object.is), or -1. */
export function firstDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return i;
  return -1;
}

/** Describes the first mismatch for an assertion message. */
export function diffText(a: ArrayLike<number>, b: ArrayLike<number>): string {
  const i = firstDiff(a, b);
  if (i < 0) return 'identical';
  if (a.length !== b.length) return `length ${a.length} vs ${b.length}`;
  return `first difference at [${i}]: ${a[i]} vs ${b[i]}`;
}

// ---- scorer params ---------------------------------------------------------------

export interface ScorerCase {
  params: ScorerParams;
  ref: RefParams;
}

/** Random scorer params with O(1) scores: weights scaled by 1/sqrt(fan-in). */
export function scorerParams(r: () => number, D: number, H: number, R: number): ScorerCase {
  const shapes = scorerShapes(D, H, R);
  const scale: Record<(typeof PARAM_NAMES)[number], number> = {
    lnWeight: 1, lnBias: 0.3, w1: 1 / Math.sqrt(D), b1: 0.3, filmW: 0.2, filmB: 0.2, w2: 1 / Math.sqrt(H), b2: 0.5, wq: 1 / Math.sqrt(D), wk: 1 / Math.sqrt(D),
  };
  const params = {} as Record<(typeof PARAM_NAMES)[number], Tensor>;
  const ref = {} as RefParams;
  for (const name of PARAM_NAMES) {
    const n = shapes[name].shape.reduce((a, b) => a * b, 1);
    let data = uniform(r, n, scale[name]);
    if (name === 'lnWeight') data = data.map((v) => 1 + 0.5 * v);
    params[name] = tensor(data, shapes[name].shape);
    ref[name] = Float64Array.from(data);
  }
  return { params, ref };
}

// ---- backends ------------------------------------------------------------------------

export interface BackendRun {
  /** Name in test titles: cpu, emu:forward, emu:reverse, emu:random, cuda. */
  name: string;
  backend: Exclude<Backend, 'auto'>;
  schedule?: 'forward' | 'reverse' | 'random';
  /** Why the cases of this backend are skipped here, or null when they run. */
  skip: string | null;
}

export const EMU_RANDOM_SEED = 20240611;
const hasCuda = info().backend === 'cuda';
// GRIP_TEST_BACKENDS=cpu,emu narrows the table (development only; skipped cases are reported).
const only = process.env.GRIP_TEST_BACKENDS?.split(',').map((s) => s.trim());

function skipReason(backend: string): string | null {
  if (only && !only.includes(backend)) return `GRIP_TEST_BACKENDS=${process.env.GRIP_TEST_BACKENDS}`;
  if (backend === 'cuda' && !hasCuda) {
    // `npm run test:cuda` sets GRIP_REQUIRE_CUDA: there a missing GPU is a failure, not a skip.
    if (process.env.GRIP_REQUIRE_CUDA === '1') throw new Error('GRIP_REQUIRE_CUDA=1 but no CUDA device is visible (info().backend is cpu)');
    return 'no visible CUDA device (info().backend is cpu)';
  }
  return null;
}

export const BACKENDS: readonly BackendRun[] = [
  { name: 'cpu', backend: 'cpu', skip: skipReason('cpu') },
  { name: 'emu:forward', backend: 'emu', schedule: 'forward', skip: skipReason('emu') },
  { name: 'emu:reverse', backend: 'emu', schedule: 'reverse', skip: skipReason('emu') },
  { name: 'emu:random', backend: 'emu', schedule: 'random', skip: skipReason('emu') },
  { name: 'cuda', backend: 'cuda', skip: skipReason('cuda') },
];

/** Options for one call on `run` (sets the emulator schedule first). */
export function on(run: BackendRun): { backend: Exclude<Backend, 'auto'> } {
  if (run.schedule) setEmulatorSchedule(run.schedule, run.schedule === 'random' ? EMU_RANDOM_SEED : 0);
  return { backend: run.backend };
}

const reported = new Set<string>();
/** Prints once per file and reason why some backends' cases are skipped. */
export function reportSkips(file: string): void {
  for (const run of BACKENDS) {
    if (run.skip && !reported.has(`${file}:${run.skip}:${run.backend}`)) {
      reported.add(`${file}:${run.skip}:${run.backend}`);
      console.log(`[${file}] skipping ${run.backend} cases: ${run.skip}`);
    }
  }
}

/** Catches the error thrown (sync) or rejected (async) by fn. */
export async function caught(fn: () => unknown): Promise<any> {
  try {
    await fn();
  } catch (e) {
    return e;
  }
  throw new Error('expected an error, but the call succeeded');
}

/** Asserts that fn fails with a GripError of this code and this exact message (or matching this pattern). */
export async function expectError(fn: () => unknown, code: string, message: string | RegExp): Promise<void> {
  let error: unknown;
  try {
    await fn();
  } catch (e) {
    error = e;
  }
  assert.ok(error !== undefined, `expected ${code} "${message}" but the call succeeded`);
  assert.ok(error instanceof GripError, `expected a GripError but got ${String(error)}`);
  if (typeof message === 'string') assert.is(error.message, message);
  else assert.match(error.message, message);
  assert.is(error.code, code, `code (message: ${error.message})`);
}

/** max |a - b| / max |b|: the relative error the conformance tests bound (1e-4 against the float64 references). */
export function relErr(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  assert.is(actual.length, expected.length, 'lengths differ');
  let diff = 0, scale = 0;
  for (let i = 0; i < expected.length; i++) {
    diff = Math.max(diff, Math.abs(actual[i]! - expected[i]!));
    scale = Math.max(scale, Math.abs(expected[i]!));
  }
  return diff / scale;
}
