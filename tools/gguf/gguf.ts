// gguf.ts — a small GGUF v3 writer (the file format of llama.cpp): metadata
// key/values, tensor infos, then the tensor data, each piece aligned to 32
// bytes. Tensor types F32, F16, BF16 and Q8_0 (blocks of 32 values: an f16
// scale, then 32 int8). Only what tools/gguf/convert.ts needs; the layout is
// that of ggml's gguf.cpp (docs: ggml/docs/gguf.md).
import { open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { GripError } from '../../lib/errors.ts';
import { ops } from '../../lib/ops.ts';
import { dequantizeQ8_0 as dequantizeBlocks, f32ToBf16, f32ToF16, tensor } from '../../lib/tensor.ts';

export const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
export const GGUF_VERSION = 3;
export const GGUF_ALIGNMENT = 32;

/** ggml_type ids (ggml.h). */
export const GGML_TYPE = { F32: 0, F16: 1, Q8_0: 8, BF16: 30 } as const;
export type GgmlTypeName = keyof typeof GGML_TYPE;

/** Values per block and bytes per block of each type. */
const BLOCK: Record<GgmlTypeName, { values: number; bytes: number }> = {
  F32: { values: 1, bytes: 4 }, F16: { values: 1, bytes: 2 }, BF16: { values: 1, bytes: 2 }, Q8_0: { values: 32, bytes: 34 },
};

/** gguf_type ids of metadata values. */
const VALUE = { UINT8: 0, INT8: 1, UINT16: 2, INT16: 3, UINT32: 4, INT32: 5, FLOAT32: 6, BOOL: 7, STRING: 8, ARRAY: 9, UINT64: 10, INT64: 11, FLOAT64: 12 } as const;

/** A metadata value with its GGUF type spelled out (JS numbers alone do not say u32 or f32). */
export type GgufValue =
  | { type: 'u32' | 'i32' | 'f32' | 'u64'; value: number }
  | { type: 'bool'; value: boolean }
  | { type: 'string'; value: string }
  | { type: 'string[]'; value: readonly string[] }
  | { type: 'f32[]'; value: Float32Array }
  | { type: 'i32[]'; value: Int32Array };

export interface GgufTensor {
  name: string;
  /** Row-major shape as in safetensors ([out, in] for a matrix); GGUF stores it reversed (ne[0] = the last dim). */
  shape: readonly number[];
  type: GgmlTypeName;
  /** The encoded bytes (see encodeTensor). */
  data: Uint8Array;
}

export const u32 = (value: number): GgufValue => ({ type: 'u32', value });
export const f32 = (value: number): GgufValue => ({ type: 'f32', value });
export const str = (value: string): GgufValue => ({ type: 'string', value });

/** Bytes of n values of `type` (n a multiple of the block size). */
export function tensorBytes(type: GgmlTypeName, n: number): number {
  const block = BLOCK[type];
  if (n % block.values !== 0) {
    throw new GripError('ERR_GRIP_SHAPE', `expected a row length that is a multiple of ${block.values} for ${type} but received ${n} values`);
  }
  return (n / block.values) * block.bytes;
}

/**
 * Encodes f32 values as `type`. f16/bf16 round to nearest even. Q8_0 as
 * ggml's quantize_row_q8_0_ref: per block of 32, d = max|x| / 127, q =
 * round(x / d) (half away from zero), d stored as f16 (ops.quantizeQ8_0,
 * the quantiser of loadVLM weights 'int8', so both emit the same bytes). `values.length` must
 * be a multiple of 32 for Q8_0 (blocks run along rows, so the row length must).
 */
export function encodeTensor(values: Float32Array, type: GgmlTypeName): Uint8Array {
  const out = new Uint8Array(tensorBytes(type, values.length));
  const n = values.length;
  if (type === 'F32') {
    out.set(new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
  } else if (type === 'F16' || type === 'BF16') {
    const half = new Uint16Array(out.buffer);
    const round = type === 'F16' ? f32ToF16 : f32ToBf16;
    for (let i = 0; i < n; i++) half[i] = round(values[i]!);
  } else {
    // The runtime's quantiser (native/cpu/q8_0.cc), the one loadVLM weights 'int8' uses: blocks are independent, so n/32 rows of 32.
    out.set(ops.quantizeQ8_0Sync(tensor(values, [n / 32, 32]), { backend: 'cpu' }).host as Uint8Array);
  }
  return out;
}

/** The f32 values a Q8_0 tensor stands for (d · q, d widened from f16), as llama.cpp dequantizes them. */
export const dequantizeQ8_0 = dequantizeBlocks;

/** Little-endian byte builder for the header. */
class Bytes {
  private chunks: Uint8Array[] = [];
  length = 0;
  private push(chunk: Uint8Array): void {
    this.chunks.push(chunk);
    this.length += chunk.length;
  }
  private fixed(bytes: number, write: (view: DataView) => void): void {
    const chunk = new Uint8Array(bytes);
    write(new DataView(chunk.buffer));
    this.push(chunk);
  }
  u32(v: number): void { this.fixed(4, (d) => d.setUint32(0, v, true)); }
  i32(v: number): void { this.fixed(4, (d) => d.setInt32(0, v, true)); }
  u64(v: number): void { this.fixed(8, (d) => d.setBigUint64(0, BigInt(v), true)); }
  f32(v: number): void { this.fixed(4, (d) => d.setFloat32(0, v, true)); }
  u8(v: number): void { this.fixed(1, (d) => d.setUint8(0, v)); }
  string(s: string): void {
    const bytes = new TextEncoder().encode(s);
    this.u64(bytes.length);
    this.push(bytes);
  }
  raw(bytes: Uint8Array): void { this.push(bytes); }
  pad(alignment: number): void {
    const rest = this.length % alignment;
    if (rest !== 0) this.push(new Uint8Array(alignment - rest));
  }
  concat(): Uint8Array {
    const out = new Uint8Array(this.length);
    let at = 0;
    for (const c of this.chunks) {
      out.set(c, at);
      at += c.length;
    }
    return out;
  }
}

function writeValue(b: Bytes, key: string, v: GgufValue): void {
  b.string(key);
  switch (v.type) {
    case 'u32': b.u32(VALUE.UINT32); b.u32(v.value); break;
    case 'i32': b.u32(VALUE.INT32); b.i32(v.value); break;
    case 'f32': b.u32(VALUE.FLOAT32); b.f32(v.value); break;
    case 'u64': b.u32(VALUE.UINT64); b.u64(v.value); break;
    case 'bool': b.u32(VALUE.BOOL); b.u8(v.value ? 1 : 0); break;
    case 'string': b.u32(VALUE.STRING); b.string(v.value); break;
    case 'string[]': b.u32(VALUE.ARRAY); b.u32(VALUE.STRING); b.u64(v.value.length); for (const s of v.value) b.string(s); break;
    case 'f32[]': b.u32(VALUE.ARRAY); b.u32(VALUE.FLOAT32); b.u64(v.value.length); b.raw(new Uint8Array(v.value.buffer, v.value.byteOffset, v.value.byteLength).slice()); break;
    case 'i32[]': b.u32(VALUE.ARRAY); b.u32(VALUE.INT32); b.u64(v.value.length); b.raw(new Uint8Array(v.value.buffer, v.value.byteOffset, v.value.byteLength).slice()); break;
  }
}

/** The header: magic, version, counts, metadata, tensor infos, padded to the alignment. */
export function encodeHeader(metadata: Readonly<Record<string, GgufValue>>, tensors: readonly Pick<GgufTensor, 'name' | 'shape' | 'type'>[]): Uint8Array {
  const b = new Bytes();
  b.u32(GGUF_MAGIC);
  b.u32(GGUF_VERSION);
  b.u64(tensors.length);
  const entries = Object.entries(metadata);
  b.u64(entries.length);
  for (const [key, value] of entries) writeValue(b, key, value);
  let offset = 0;
  for (const t of tensors) {
    const n = t.shape.reduce((a, d) => a * d, 1);
    b.string(t.name);
    b.u32(t.shape.length);
    for (const d of [...t.shape].reverse()) b.u64(d);
    b.u32(GGML_TYPE[t.type]);
    b.u64(offset);
    offset += Math.ceil(tensorBytes(t.type, n) / GGUF_ALIGNMENT) * GGUF_ALIGNMENT;
  }
  b.pad(GGUF_ALIGNMENT);
  return b.concat();
}

/**
 * Writes a GGUF file atomically (temp file + rename). Tensors are produced one
 * at a time by `next` (so a 7B-shaped model never sits in memory twice): it
 * gets each declared tensor and returns its bytes.
 */
export async function writeGguf(
  path: string,
  metadata: Readonly<Record<string, GgufValue>>,
  tensors: readonly Pick<GgufTensor, 'name' | 'shape' | 'type'>[],
  next: (tensor: Pick<GgufTensor, 'name' | 'shape' | 'type'>) => Uint8Array | Promise<Uint8Array>,
): Promise<void> {
  const temp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  let handle: FileHandle | null = null;
  try {
    handle = await open(temp, 'w');
    const header = encodeHeader(metadata, tensors);
    await handle.write(header, 0, header.length, 0);
    let position = header.length;
    for (const t of tensors) {
      const data = await next(t);
      const expected = tensorBytes(t.type, t.shape.reduce((a, d) => a * d, 1));
      if (data.length !== expected) {
        throw new GripError('ERR_GRIP_SHAPE', `expected ${expected} bytes (${t.type} [${t.shape.join(', ')}]) for tensor "${t.name}" but received ${data.length}`);
      }
      await handle.write(data, 0, data.length, position);
      position += data.length;
      const pad = (GGUF_ALIGNMENT - (position % GGUF_ALIGNMENT)) % GGUF_ALIGNMENT;
      if (pad > 0) await handle.write(new Uint8Array(pad), 0, pad, position);
      position += pad;
    }
    await handle.close();
    handle = null;
    await rename(temp, path);
  } catch (error) {
    await handle?.close().catch(() => undefined);
    await unlink(temp).catch(() => undefined);
    if (error instanceof GripError) throw error;
    throw new GripError('ERR_GRIP_IO', `expected a writable file for ${path} but received ${(error as Error).message}`);
  }
}
