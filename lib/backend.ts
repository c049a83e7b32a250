// backend.ts — which backend runs an op: per call (`{ backend }`), else the
// global default (setBackend), else 'auto' = CUDA when the addon was built
// with it and a device is visible, otherwise the CPU.
import { GripError } from './errors.js';
import { native, type NativeMemoryStats } from './native.js';
import { check } from './validate.js';

/**
 * 'auto' | 'cpu' | 'cuda', plus 'emu': the CUDA kernels run on grip's SIMT
 * emulator on the CPU (each CUDA thread a fiber) — for testing the .cu code
 * on a machine without a GPU; slow.
 */
export type Backend = 'auto' | 'cpu' | 'cuda' | 'emu';
export type ResolvedBackend = 'cpu' | 'cuda' | 'emu';

export interface Info {
  version: string;
  /** The backend 'auto' resolves to on this machine. */
  backend: 'cpu' | 'cuda';
  cuda: { compiled: boolean; devices: number };
  /** The widest SIMD level the CPU kernels use: 'avx512_bf16' | 'avx512' | 'avx2' | 'scalar'. */
  simd: string;
  /** The kernel of q8_0 weights (8-bit Linear): 'amx_int8' (prefill of 16+ rows on AMX tiles) | 'avx512_vnni' | 'avx_vnni' | 'avx2' | 'scalar'. */
  int8Kernel: string;
  threads: number;
}

let defaultBackend: Backend = 'auto';
let cudaUsable: boolean | undefined;

export function cudaAvailable(): boolean {
  if (cudaUsable === undefined) {
    const i = native().info();
    cudaUsable = i.cudaCompiled && i.cudaDevices > 0;
  }
  return cudaUsable;
}

export function info(): Info {
  const i = native().info();
  return {
    version: i.version,
    backend: cudaAvailable() ? 'cuda' : 'cpu',
    cuda: { compiled: i.cudaCompiled, devices: i.cudaDevices },
    simd: i.simd,
    int8Kernel: i.q8Kernel,
    threads: i.threads,
  };
}

export type MemoryStats = NativeMemoryStats;

/**
 * What the addon holds natively now (process-wide, every worker thread
 * included): live device buffers and pending async ops. Host tensors are
 * JS ArrayBuffers (process.memoryUsage().arrayBuffers). A soak checks these
 * return to their baseline.
 */
export function memoryStats(): MemoryStats {
  return native().memoryStats();
}

/** The GPU's memory as its driver reports it: every process's allocations and CUDA contexts count. */
export interface DeviceMemory {
  freeBytes: number;
  totalBytes: number;
  /** totalBytes - freeBytes. */
  usedBytes: number;
}

/**
 * The current CUDA device's free and total memory (cudaMemGetInfo), or null
 * without a visible device. memoryStats().deviceBytes counts the addon's own
 * buffers; this also sees what the CUDA runtime allocates behind them.
 */
export function deviceMemory(): DeviceMemory | null {
  if (!cudaAvailable()) return null;
  const { freeBytes, totalBytes } = native().cudaMemInfo();
  return { freeBytes, totalBytes, usedBytes: totalBytes - freeBytes };
}

/**
 * Hands the C heap's free pages back to the system now (glibc
 * `malloc_trim`; false elsewhere, or when there were none). glibc keeps the
 * pages that freed buffers leave, so without this RSS stays at the
 * high-water mark of past bursts. The runtime does it itself, off the event
 * loop, when a KV cache is freed (at most every RELEASE_INTERVAL_MS), so a
 * service need not call this.
 */
export function releaseMemory(): boolean {
  lastRelease = performance.now();
  return native().releaseMemory(false);
}

/** Minimum time between the runtime's own heap trims (each walks the whole C heap: ~1 ms here, up to 5 ms seen). */
export const RELEASE_INTERVAL_MS = 250;
let lastRelease = -Infinity;

/** A heap trim on a libuv worker, unless one ran in the last RELEASE_INTERVAL_MS (never throws). */
export function releaseMemorySoon(): void {
  if (performance.now() - lastRelease < RELEASE_INTERVAL_MS) return;
  lastRelease = performance.now();
  native().releaseMemory(true).catch(() => {});
}

/** Sets the default backend of every op call that does not name one. */
export function setBackend(backend: Backend): void {
  check.oneOf(backend, 'backend', ['auto', 'cpu', 'cuda', 'emu']);
  if (backend === 'cuda') requireCuda();
  defaultBackend = backend;
}

export function getBackend(): Backend {
  return defaultBackend;
}

/** Threads the CPU ops use (1..256; 0 = the number of cores). */
export function setNumThreads(n: number): void {
  check.integer(n, 'threads', 0, 256);
  native().setNumThreads(n);
}

/** SIMT emulator thread order for backend 'emu' (tests): forward, reverse or seeded random. */
export function setEmulatorSchedule(schedule: 'forward' | 'reverse' | 'random', seed = 0): void {
  check.oneOf(schedule, 'schedule', ['forward', 'reverse', 'random']);
  check.integer(seed, 'seed', 0, Number.MAX_SAFE_INTEGER);
  native().emuSetSchedule(['forward', 'reverse', 'random'].indexOf(schedule), BigInt(seed));
}

export function requireCuda(): void {
  if (cudaAvailable()) return;
  const i = native().info();
  throw new GripError('ERR_GRIP_DEVICE', `expected a visible CUDA device for backend 'cuda' but received ${i.cudaCompiled ? 'none (this build has CUDA, but no GPU is visible)' : 'none (this build has no CUDA)'}`);
}

/** Resolves the backend of one call; `onDevice` is true when the inputs live on the GPU. */
export function resolveBackend(requested: Backend | undefined, onDevice: boolean): ResolvedBackend {
  const backend = requested ?? defaultBackend;
  check.oneOf(backend, 'backend', ['auto', 'cpu', 'cuda', 'emu']);
  if (onDevice) {
    if (backend === 'cpu' || backend === 'emu') {
      throw new GripError('ERR_GRIP_DEVICE', `expected host (cpu) tensors for backend '${backend}' but received cuda tensors`);
    }
    return 'cuda';
  }
  if (backend === 'cuda') {
    requireCuda();
    return 'cuda';
  }
  if (backend === 'auto') return cudaAvailable() ? 'cuda' : 'cpu';
  return backend;
}

export const BACKEND_CODE: Readonly<Record<ResolvedBackend, number>> = { cpu: 0, cuda: 1, emu: 2 };
