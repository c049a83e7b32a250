// tensor.ts — the Tensor type: dense row-major data on the host (a TypedArray)
// or on a CUDA device (a DeviceBuffer freed by dispose() or by the GC), and
// the checks of its shape and dtype (validate.ts, above this file, builds
// its checks on them: this file imports no checks).
import { GripError } from './errors.js';
import { native } from './native.js';

/**
 * Element types. 'q8_0' is the 8-bit weight format of Linear layers only
 * (ggml's Q8_0, CPU only): a [N, K] tensor (K % 32 == 0) stores per row K/32
 * blocks of 34 bytes, {f16 d little-endian, int8 q[32]}, standing for d * q
 * (native/cpu/q8_0.h). It is made by ops.quantizeQ8_0, never by zeros/tensor.
 */
export type DType = 'f32' | 'f16' | 'bf16' | 'i32' | 'q8_0';
/** The element types zeros() and tensor() build. */
export const DTYPES: readonly DType[] = ['f32', 'f16', 'bf16', 'i32'];
export type Device = 'cpu' | 'cuda';
/** Host storage: f32 in Float32Array, f16/bf16 bit patterns in Uint16Array, i32 in Int32Array, q8_0 blocks in Uint8Array. */
export type HostData = Float32Array | Uint16Array | Int32Array | Uint8Array;

/** Bytes per element (q8_0: 34 bytes per 32 values). */
export const DTYPE_BYTES: Readonly<Record<DType, number>> = { f32: 4, f16: 2, bf16: 2, i32: 4, q8_0: 34 / 32 };
export const Q8_0_BLOCK = 32;
export const Q8_0_BLOCK_BYTES = 34;

/** Bytes that `size` values of `dtype` take (q8_0: size a multiple of 32). */
export function storageBytes(dtype: DType, size: number): number {
  return dtype === 'q8_0' ? (size / Q8_0_BLOCK) * Q8_0_BLOCK_BYTES : size * DTYPE_BYTES[dtype];
}

/** Device memory owned by JS. */
export class DeviceBuffer {
  /** The addon's handle; null once disposed. */
  handle: object | null;
  readonly bytes: number;
  constructor(bytes: number) {
    this.handle = native().cudaAlloc(bytes);
    this.bytes = bytes;
  }
  dispose(): void {
    if (this.handle !== null) native().cudaFree(this.handle);
    this.handle = null;
  }
}

export class Tensor {
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly data: HostData | DeviceBuffer;
  readonly device: Device;

  constructor(dtype: DType, shape: readonly number[], data: HostData | DeviceBuffer, device: Device) {
    this.dtype = dtype;
    this.shape = Object.freeze([...shape]);
    this.data = data;
    this.device = device;
  }

  /** Number of elements. */
  get size(): number {
    return numel(this.shape);
  }

  get bytes(): number {
    return storageBytes(this.dtype, this.size);
  }

  /** Host data; throws for a device tensor (use toHost() first). */
  get host(): HostData {
    if (this.data instanceof DeviceBuffer) {
      throw new GripError('ERR_GRIP_DEVICE', 'expected a cpu tensor for host data but received a cuda tensor (call toHost() first)');
    }
    return this.data;
  }

  /** Frees device memory now (a host tensor has nothing to free). Idempotent. */
  dispose(): void {
    if (this.data instanceof DeviceBuffer) this.data.dispose();
  }

  /** A copy on the CUDA device. */
  toDevice(): Tensor {
    if (this.device === 'cuda') return this;
    const buffer = new DeviceBuffer(this.bytes);
    native().cudaCopy(buffer.handle!, this.host, true);
    return new Tensor(this.dtype, this.shape, buffer, 'cuda');
  }

  /** A copy in host memory (this tensor itself when it is already there). */
  toHost(): Tensor {
    if (!(this.data instanceof DeviceBuffer)) return this;
    const out = allocHost(this.dtype, this.size);
    if (this.data.handle === null) {
      throw new GripError('ERR_GRIP_DEVICE', 'expected a live device buffer for toHost but received a disposed one');
    }
    native().cudaCopy(this.data.handle, out, false);
    return new Tensor(this.dtype, this.shape, out, 'cpu');
  }

  /** The values as float32 (f16/bf16 widened), copied from the device if needed. */
  toFloat32(): Float32Array {
    const data = this.toHost().host;
    // Plain loops: TypedArray.from with a map function is slow and memory hungry at 100M elements.
    if (this.dtype === 'f16' || this.dtype === 'bf16') {
      const bits = data as Uint16Array, widen = this.dtype === 'f16' ? f16ToF32 : bf16ToF32;
      const out = new Float32Array(bits.length);
      for (let i = 0; i < bits.length; i++) out[i] = widen(bits[i]!);
      return out;
    }
    if (this.dtype === 'i32') return Float32Array.from(data as Int32Array);
    if (this.dtype === 'q8_0') return dequantizeQ8_0(data as Uint8Array);
    return Float32Array.from(data as Float32Array);
  }
}

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function allocHost(dtype: DType, size: number): HostData {
  if (dtype === 'f32') return new Float32Array(size);
  if (dtype === 'i32') return new Int32Array(size);
  if (dtype === 'q8_0') return new Uint8Array(storageBytes(dtype, size));
  return new Uint16Array(size);
}

/** A list of dimension extents: integers >= 0, at most 8 of them (check.shape). */
export function checkShape(shape: unknown, what: string): asserts shape is readonly number[] {
  const fail: (expected: string, received: string) => never = (expected, received) => {
    throw new GripError('ERR_GRIP_SHAPE', `expected ${expected} for ${what} but received ${received}`);
  };
  if (!Array.isArray(shape)) fail('an array of extents', describe(shape));
  if (shape.length > 8) fail('at most 8 dimensions', String(shape.length));
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0 || d > 0x7fffffff) fail('integer extents in [0, 2147483647]', `[${shape.join(', ')}]`);
  }
}

/** One of DTYPES (the message of check.oneOf). */
export function checkDType(dtype: unknown, what: string): asserts dtype is DType {
  if (!DTYPES.includes(dtype as DType)) {
    throw new GripError('ERR_GRIP_RANGE', `expected one of ${DTYPES.map((d) => `'${d}'`).join(', ')} for ${what} but received ${describe(dtype)}`);
  }
}

/** An all-zero tensor (on the host, or on the CUDA device). */
export function zeros(shape: readonly number[], dtype: DType = 'f32', device: Device = 'cpu'): Tensor {
  checkShape(shape, 'shape');
  checkDType(dtype, 'dtype');
  const host = new Tensor(dtype, shape, allocHost(dtype, numel(shape)), 'cpu');
  return device === 'cuda' ? host.toDevice() : host;
}

/**
 * A host tensor over `data` (no copy when `data` is already the storage type
 * of `dtype`). The dtype defaults from the array: Float32Array -> f32,
 * Int32Array -> i32, plain numbers -> f32. f16/bf16 from numbers or a
 * Float32Array are rounded to nearest even; a Uint16Array is taken as bits.
 */
export function tensor(data: HostData | ArrayLike<number>, shape: readonly number[], dtype?: DType): Tensor {
  checkShape(shape, 'shape');
  const type: DType = dtype ?? (data instanceof Int32Array ? 'i32' : 'f32');
  checkDType(type, 'dtype');
  if (data instanceof Uint16Array && type !== 'f16' && type !== 'bf16') {
    throw new GripError('ERR_GRIP_DTYPE', `expected f16 or bf16 for dtype of a Uint16Array but received ${type}`);
  }
  if (data == null || typeof (data as ArrayLike<number>).length !== 'number') {
    throw new GripError('ERR_GRIP_SHAPE', `expected a TypedArray or an array of numbers for data but received ${describe(data)}`);
  }
  const size = numel(shape);
  if (data.length !== size) {
    throw new GripError('ERR_GRIP_SHAPE', `expected ${size} elements (shape [${shape.join(', ')}]) for data but received ${data.length}`);
  }
  let storage: HostData;
  if (type === 'f32') storage = data instanceof Float32Array ? data : Float32Array.from(data);
  else if (type === 'i32') storage = data instanceof Int32Array ? data : Int32Array.from(data);
  else if (data instanceof Uint16Array) storage = data;
  else {
    const round = type === 'f16' ? f32ToF16 : f32ToBf16;
    storage = new Uint16Array(size);
    for (let i = 0; i < size; i++) storage[i] = round(data[i]!);
  }
  return new Tensor(type, shape, storage, 'cpu');
}

export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  if (Array.isArray(value)) return 'an array';
  if (ArrayBuffer.isView(value)) return value.constructor.name;
  if (value instanceof Tensor) return `a Tensor ${value.dtype} [${value.shape.join(', ')}]`;
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'string') return `the string "${value}"`;
  return `${typeof value} ${String(value)}`;
}

/** The f32 values q8_0 blocks stand for (d · q, d widened from f16), as llama.cpp dequantizes them. */
export function dequantizeQ8_0(data: Uint8Array): Float32Array {
  if (data.length % Q8_0_BLOCK_BYTES !== 0) throw new GripError('ERR_GRIP_SHAPE', `expected a multiple of 34 bytes for Q8_0 data but received ${data.length}`);
  const out = new Float32Array((data.length / Q8_0_BLOCK_BYTES) * Q8_0_BLOCK);
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const q = new Int8Array(data.buffer, data.byteOffset, data.byteLength);
  for (let at = 0, i = 0; at < data.length; at += Q8_0_BLOCK_BYTES) {
    const d = f16ToF32(view.getUint16(at, true));
    for (let j = 0; j < Q8_0_BLOCK; j++) out[i++] = Math.fround(d * q[at + 2 + j]!);
  }
  return out;
}

// ---- f16 / bf16 conversion (round to nearest even) ----------------------------

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

export function f32ToBf16(value: number): number {
  f32Scratch[0] = value;
  const bits = u32Scratch[0]!;
  if ((bits & 0x7fffffff) > 0x7f800000) return ((bits >>> 16) | 0x40) & 0xffff;
  return ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
}

export function bf16ToF32(bits: number): number {
  u32Scratch[0] = (bits & 0xffff) << 16;
  return f32Scratch[0]!;
}

export function f16ToF32(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >> 10) & 0x1f;
  const mant = bits & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

export function f32ToF16(value: number): number {
  f32Scratch[0] = value;
  const x = u32Scratch[0]!;
  const sign = (x >>> 16) & 0x8000;
  const abs = x & 0x7fffffff;
  if (abs > 0x7f800000) return sign | 0x7e00;
  if (abs >= 0x477ff000) return sign | 0x7c00;
  if (abs < 0x38800000) {
    if (abs < 0x33000000) return sign;
    const e = abs >>> 23;
    const m = (abs & 0x7fffff) | 0x800000;
    const shift = 126 - e;
    let r = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && r & 1)) r++;
    return sign | r;
  }
  let r = (abs >>> 13) - (112 << 10);
  const rem = abs & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && r & 1)) r++;
  return sign | r;
}
