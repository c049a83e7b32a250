// safetensors.ts — reads and writes the safetensors format (the Hugging Face
// weight files), and joins the files of a checkpoint directory (one file or a
// sharded index) into one name -> tensor view.
//
// Layout: u64 little-endian header length N, N bytes of UTF-8 JSON
// {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__"?: {..}},
// then the data region; offsets are relative to the start of the data region.
// The header is checked in full when a file is opened, so a read only has to
// fetch its bytes: one positioned read (a few for big tensors) straight into
// the memory of the tensor it returns, never the whole file.
//
// Data are little-endian, as the format says; on a big-endian host the bytes
// would need swapping, which is not done (Node runs little-endian everywhere
// we ship).
import { open, readdir, rename, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { syncDirectory, tempPathFor } from '../files.js';
import { GripError } from '../errors.js';
import { ioError, isRecord, jsonText, parseJsonObject, readJsonFile } from '../json.js';
import { Tensor, allocHost, describe, numel, type DType, type HostData } from '../tensor.js';
import { check } from '../validate.js';

/** What the header says about one tensor. `dtype` is the file's name for it (F32, BF16, I64, ...). */
export interface TensorInfo {
  dtype: string;
  shape: number[];
  byteLength: number;
}

export interface ReadOptions {
  /** Aborts the read: the Promise rejects with the signal's reason. */
  signal?: AbortSignal;
}

/** The reference implementation's bound on the header (a larger one is a hostile file, not a model). */
export const MAX_HEADER_BYTES = 100_000_000;
/** Reads and writes go in pieces of this size: under the 2 GiB a single syscall takes, and an abort is seen between pieces. */
const CHUNK_BYTES = 64 * 1024 * 1024;

/** Bits per element of every dtype the format defines, so any valid file passes the size checks. */
const DTYPE_BITS: ReadonlyMap<string, number> = new Map([
  ['BOOL', 8], ['U8', 8], ['I8', 8], ['F8_E5M2', 8], ['F8_E4M3', 8], ['F8_E8M0', 8],
  ['I16', 16], ['U16', 16], ['F16', 16], ['BF16', 16],
  ['I32', 32], ['U32', 32], ['F32', 32],
  ['I64', 64], ['U64', 64], ['F64', 64], ['C64', 64],
  ['F4', 4], ['F6_E2M3', 6], ['F6_E3M2', 6],
]);
/** File dtypes that load into a Tensor (f16/bf16 as raw bits in a Uint16Array). */
const LOADABLE: ReadonlyMap<string, DType> = new Map([['F32', 'f32'], ['F16', 'f16'], ['BF16', 'bf16'], ['I32', 'i32']]);
const STORED: Readonly<Record<Exclude<DType, 'q8_0'>, string>> = { f32: 'F32', f16: 'F16', bf16: 'BF16', i32: 'I32' };

const quote = (text: string) => JSON.stringify(text);

/** "none among 3 tensors ("a", "b", "c")": the tail of a missing-tensor message. */
function missingText(names: readonly string[]): string {
  const shown = names.slice(0, 3).map(quote).join(', ');
  const more = names.length > 3 ? ', ...' : '';
  return names.length === 0 ? 'none (the file has no tensors)' : `none among ${names.length} tensors (${shown}${more})`;
}

/** Fills `bytes` from `position`; a file that ends first is ERR_GRIP_FORMAT (it was cut short). */
async function readFully(handle: FileHandle, bytes: Uint8Array, position: number, what: string, path: string, signal?: AbortSignal): Promise<void> {
  let done = 0;
  while (done < bytes.length) {
    signal?.throwIfAborted();
    const length = Math.min(CHUNK_BYTES, bytes.length - done);
    let bytesRead: number;
    try {
      ({ bytesRead } = await handle.read(bytes, done, length, position + done));
    } catch (error) {
      throw ioError(error, `a readable file (${what})`, path);
    }
    if (bytesRead === 0) {
      throw new GripError('ERR_GRIP_FORMAT',
        `expected ${bytes.length} bytes at offset ${position} for ${what} in ${path} but received ${done} (the file ends there: was it truncated after it was opened?)`);
    }
    done += bytesRead;
  }
  signal?.throwIfAborted();
}

interface Entry {
  dtype: string;
  shape: number[];
  /** Offsets relative to the data region. */
  begin: number;
  end: number;
}

interface Header {
  entries: Map<string, Entry>;
  metadata: Record<string, string>;
  dataStart: number;
}

/** Reads and checks the header of an open file: every rule of the format, so reads can trust it. */
async function readHeader(handle: FileHandle, path: string, fileBytes: number): Promise<Header> {
  if (fileBytes < 10) {
    throw new GripError('ERR_GRIP_FORMAT',
      `expected at least 10 bytes (an 8-byte header length and a JSON header) for ${path} but received a file of ${fileBytes} bytes`);
  }
  const lengthBytes = new Uint8Array(8);
  await readFully(handle, lengthBytes, 0, 'the header length', path);
  const headerBytes = new DataView(lengthBytes.buffer).getBigUint64(0, true);
  const limit = Math.min(MAX_HEADER_BYTES, fileBytes - 8);
  if (headerBytes < 2n || headerBytes > BigInt(limit)) {
    throw new GripError('ERR_GRIP_FORMAT', `expected a header length in [2, ${limit}] bytes for ${path} but received ${headerBytes}`);
  }
  const headerLength = Number(headerBytes);
  const raw = new Uint8Array(headerLength);
  await readFully(handle, raw, 8, 'the header', path);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(raw);
  } catch {
    throw new GripError('ERR_GRIP_FORMAT', `expected UTF-8 text for the header of ${path} but received invalid UTF-8`);
  }
  const json = parseJsonObject(text, `the header of ${path}`);

  const dataStart = 8 + headerLength;
  const dataBytes = fileBytes - dataStart;
  const entries = new Map<string, Entry>();
  let metadata: Record<string, string> = {};
  for (const [name, value] of Object.entries(json)) {
    if (name === '__metadata__') {
      metadata = parseMetadata(value, path);
      continue;
    }
    entries.set(name, parseEntry(name, value, path, dataBytes));
  }

  // Ranges may leave holes but may not share bytes (empty tensors share nothing).
  const sorted = [...entries].filter(([, e]) => e.end > e.begin).sort(([, a], [, b]) => a.begin - b.begin || a.end - b.end);
  for (let i = 1; i < sorted.length; i++) {
    const [prevName, prev] = sorted[i - 1]!;
    const [name, entry] = sorted[i]!;
    if (entry.begin < prev.end) {
      throw new GripError('ERR_GRIP_FORMAT',
        `expected non-overlapping data_offsets for tensor ${quote(name)} in ${path} but received [${entry.begin}, ${entry.end}], which overlaps tensor ${quote(prevName)} at [${prev.begin}, ${prev.end}]`);
    }
  }
  return { entries, metadata, dataStart };
}

function parseMetadata(value: unknown, path: string): Record<string, string> {
  if (!isRecord(value)) {
    throw new GripError('ERR_GRIP_FORMAT', `expected an object of strings for __metadata__ in ${path} but received ${describe(value)}`);
  }
  const metadata: Record<string, string> = {};
  for (const [key, text] of Object.entries(value)) {
    if (typeof text !== 'string') {
      throw new GripError('ERR_GRIP_FORMAT', `expected a string for __metadata__[${quote(key)}] in ${path} but received ${describe(text)}`);
    }
    Object.defineProperty(metadata, key, { value: text, enumerable: true, writable: false }); // "__proto__" stays a key
  }
  return Object.freeze(metadata);
}

function parseEntry(name: string, value: unknown, path: string, dataBytes: number): Entry {
  const where = `tensor ${quote(name)} in ${path}`;
  const fail = (expected: string, what: string, received: string): never => {
    throw new GripError('ERR_GRIP_FORMAT', `expected ${expected} for ${what}${where} but received ${received}`);
  };
  if (!isRecord(value)) fail('an object {dtype, shape, data_offsets}', '', describe(value));
  const { dtype, shape, data_offsets: offsets } = value as Record<string, unknown>;
  if (typeof dtype !== 'string') fail('a string', 'the dtype of ', describe(dtype));
  if (!Array.isArray(shape)) fail('an array of non-negative integers', 'the shape of ', describe(shape));
  const dims = shape as unknown[];
  if (!dims.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)) {
    fail('an array of non-negative integers', 'the shape of ', jsonText(dims));
  }
  if (!Array.isArray(offsets)) fail('two non-negative integers [begin, end]', 'the data_offsets of ', describe(offsets));
  const pair = offsets as unknown[];
  if (pair.length !== 2 || !pair.every((o) => Number.isSafeInteger(o) && (o as number) >= 0)) {
    fail('two non-negative integers [begin, end]', 'the data_offsets of ', jsonText(pair));
  }
  const [begin, end] = pair as [number, number];
  if (end < begin) fail('begin <= end', 'the data_offsets of ', `[${begin}, ${end}]`);
  const bits = DTYPE_BITS.get(dtype as string);
  if (bits !== undefined) {
    // BigInt: a product of safe integers can pass 2^53.
    const wantBits = (dims as number[]).reduce((n, d) => n * BigInt(d), 1n) * BigInt(bits);
    if (wantBits !== BigInt(end - begin) * 8n) {
      const want = wantBits % 8n === 0n ? `${wantBits / 8n} bytes` : `${wantBits} bits`;
      fail(`${want} (${dtype} [${(dims as number[]).join(', ')}])`, 'the data_offsets of ', `[${begin}, ${end}] (${end - begin} bytes)`);
    }
  }
  if (end > dataBytes) fail(`data_offsets inside the data region (0..${dataBytes})`, '', `[${begin}, ${end}]`);
  return { dtype: dtype as string, shape: dims as number[], begin, end };
}

/** One safetensors file, open for positioned reads until close(). */
export class SafetensorsFile {
  readonly path: string;
  /** Tensor names, sorted. */
  readonly names: string[];
  /** The header's "__metadata__" (empty when absent). */
  readonly metadata: Record<string, string>;
  #handle: FileHandle | null;
  readonly #entries: Map<string, Entry>;
  readonly #dataStart: number;

  private constructor(path: string, handle: FileHandle, header: Header) {
    this.path = path;
    this.#handle = handle;
    this.#entries = header.entries;
    this.#dataStart = header.dataStart;
    this.metadata = header.metadata;
    this.names = [...header.entries.keys()].sort();
  }

  /** Opens `path` and checks its header; ERR_GRIP_IO when it cannot be read, ERR_GRIP_FORMAT when it is malformed. */
  static async open(path: string): Promise<SafetensorsFile> {
    if (typeof path !== 'string' || path === '') check.fail('ERR_GRIP_RANGE', 'a file path', 'path', describe(path));
    let handle: FileHandle;
    try {
      handle = await open(path, 'r');
    } catch (error) {
      throw ioError(error, 'a readable safetensors file', path);
    }
    try {
      const stats = await handle.stat().catch((error: unknown) => {
        throw ioError(error, 'a readable safetensors file', path);
      });
      if (!stats.isFile()) {
        throw new GripError('ERR_GRIP_IO', `expected a regular file for ${path} but received ${stats.isDirectory() ? 'a directory' : 'a special file'}`);
      }
      return new SafetensorsFile(path, handle, await readHeader(handle, path, stats.size));
    } catch (error) {
      await handle.close().catch(() => undefined);
      throw error;
    }
  }

  has(name: string): boolean {
    return this.#entries.has(name);
  }

  info(name: string): TensorInfo {
    const entry = this.#entry(name);
    return { dtype: entry.dtype, shape: [...entry.shape], byteLength: entry.end - entry.begin };
  }

  /**
   * The tensor `name` on the host: F32 -> f32, F16 -> f16, BF16 -> bf16 (raw
   * bits), I32 -> i32. Other dtypes are ERR_GRIP_UNSUPPORTED.
   */
  async read(name: string, options?: ReadOptions): Promise<Tensor> {
    const signal = options?.signal;
    check.signal(signal, 'options.signal');
    const entry = this.#entry(name);
    const dtype = LOADABLE.get(entry.dtype);
    if (dtype === undefined) {
      throw new GripError('ERR_GRIP_UNSUPPORTED',
        `expected F32, F16, BF16 or I32 for the dtype of tensor ${quote(name)} in ${this.path} but received ${entry.dtype}`);
    }
    signal?.throwIfAborted();
    const handle = this.#handle;
    if (handle === null) {
      throw new GripError('ERR_GRIP_IO', `expected an open file for reading tensor ${quote(name)} but received a closed SafetensorsFile (${this.path})`);
    }
    let data: HostData;
    try {
      data = allocHost(dtype, numel(entry.shape));
    } catch {
      throw new GripError('ERR_GRIP_RANGE',
        `expected a tensor that fits in host memory for tensor ${quote(name)} in ${this.path} but received ${entry.end - entry.begin} bytes`);
    }
    // A fresh ArrayBuffer is aligned for its element type whatever the file offset is.
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    await readFully(handle, bytes, this.#dataStart + entry.begin, `tensor ${quote(name)}`, this.path, signal);
    return new Tensor(dtype, entry.shape, data, 'cpu');
  }

  /** Closes the file; idempotent. Reads after this are ERR_GRIP_IO. */
  async close(): Promise<void> {
    const handle = this.#handle;
    this.#handle = null;
    await handle?.close();
  }

  #entry(name: string): Entry {
    const entry = this.#entries.get(name);
    if (entry === undefined) {
      throw new GripError('ERR_GRIP_FORMAT', `expected a tensor named ${quote(String(name))} in ${this.path} but received ${missingText(this.names)}`);
    }
    return entry;
  }
}

// ---- checkpoint directories -------------------------------------------------------

export const SINGLE_FILE = 'model.safetensors';
export const INDEX_FILE = 'model.safetensors.index.json';

/** A shard name from an index must stay in the checkpoint directory. */
function isBareFileName(name: string): boolean {
  return name !== '' && name !== '.' && name !== '..' && !/[\\/\0:]/.test(name) && basename(name) === name;
}

/**
 * The weights of a Hugging Face checkpoint directory: `model.safetensors`, a
 * sharded `model.safetensors.index.json`, or else its only `*.safetensors`
 * file (e.g. `pruner.safetensors`). Names are the index's when sharded.
 */
export class Checkpoint {
  readonly dir: string;
  /** Tensor names, sorted. */
  readonly names: string[];
  /** The open files (one, or one per shard in name order). */
  readonly files: readonly SafetensorsFile[];
  readonly #owner: Map<string, SafetensorsFile>;

  private constructor(dir: string, files: SafetensorsFile[], owner: Map<string, SafetensorsFile>) {
    this.dir = dir;
    this.files = files;
    this.#owner = owner;
    this.names = [...owner.keys()].sort();
  }

  static async open(dir: string): Promise<Checkpoint> {
    if (typeof dir !== 'string' || dir === '') check.fail('ERR_GRIP_RANGE', 'a directory path', 'dir', describe(dir));
    let entries: string[];
    try {
      entries = await readdir(dir);
    } catch (error) {
      throw ioError(error, 'a readable checkpoint directory', dir);
    }
    // model.safetensors wins over an index, as in transformers.
    let single: string | undefined;
    if (entries.includes(SINGLE_FILE)) single = SINGLE_FILE;
    else if (!entries.includes(INDEX_FILE)) {
      const candidates = entries.filter((name) => name.endsWith('.safetensors')).sort();
      if (candidates.length === 1) single = candidates[0];
      else {
        const others = candidates.length === 0 ? ''
          : `, and ${candidates.length} other .safetensors files (${candidates.slice(0, 3).map(quote).join(', ')}${candidates.length > 3 ? ', ...' : ''}) with no index to join them`;
        throw new GripError('ERR_GRIP_IO', `expected ${SINGLE_FILE} or ${INDEX_FILE} in ${dir} but received neither${others}`);
      }
    }
    if (single !== undefined) {
      const file = await SafetensorsFile.open(join(dir, single));
      return new Checkpoint(dir, [file], new Map(file.names.map((name) => [name, file])));
    }
    return Checkpoint.#openSharded(dir, new Set(entries));
  }

  static async #openSharded(dir: string, present: Set<string>): Promise<Checkpoint> {
    const indexPath = join(dir, INDEX_FILE);
    const weightMap = await readWeightMap(indexPath);
    const byShard = new Map<string, string[]>();
    for (const [name, shard] of weightMap) {
      if (!present.has(shard)) {
        throw new GripError('ERR_GRIP_IO', `expected an existing file for shard ${quote(shard)} of ${indexPath} but received none in ${dir}`);
      }
      const list = byShard.get(shard) ?? [];
      list.push(name);
      byShard.set(shard, list);
    }
    const files: SafetensorsFile[] = [];
    try {
      const owner = new Map<string, SafetensorsFile>();
      const ownerShard = new Map<string, string>();
      for (const shard of [...byShard.keys()].sort()) {
        const file = await SafetensorsFile.open(join(dir, shard));
        files.push(file);
        for (const name of byShard.get(shard)!) {
          if (!file.has(name)) {
            throw new GripError('ERR_GRIP_FORMAT',
              `expected tensor ${quote(name)} in ${file.path} (as ${indexPath} maps it) but received a shard without it`);
          }
          owner.set(name, file);
        }
        for (const name of file.names) {
          const first = ownerShard.get(name);
          if (first !== undefined) {
            throw new GripError('ERR_GRIP_FORMAT',
              `expected tensor ${quote(name)} in one shard for ${indexPath} but received it in ${quote(first)} and ${quote(shard)}`);
          }
          ownerShard.set(name, shard);
        }
      }
      return new Checkpoint(dir, files, owner);
    } catch (error) {
      await Promise.all(files.map((file) => file.close().catch(() => undefined)));
      throw error;
    }
  }

  has(name: string): boolean {
    return this.#owner.has(name);
  }

  info(name: string): TensorInfo {
    return this.#file(name).info(name);
  }

  read(name: string, options?: ReadOptions): Promise<Tensor> {
    try {
      return this.#file(name).read(name, options);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  async close(): Promise<void> {
    await Promise.all(this.files.map((file) => file.close()));
  }

  #file(name: string): SafetensorsFile {
    const file = this.#owner.get(name);
    if (file === undefined) {
      throw new GripError('ERR_GRIP_FORMAT', `expected a tensor named ${quote(String(name))} in ${this.dir} but received ${missingText(this.names)}`);
    }
    return file;
  }
}

/** The weight_map of an index file as [tensor, shard file] pairs, checked. */
async function readWeightMap(indexPath: string): Promise<[string, string][]> {
  const json = await readJsonFile(indexPath, 'index file');
  const map = json.weight_map;
  if (!isRecord(map)) {
    throw new GripError('ERR_GRIP_FORMAT', `expected an object {tensor: shard file} for weight_map in ${indexPath} but received ${describe(map)}`);
  }
  const pairs = Object.entries(map);
  for (const [name, shard] of pairs) {
    if (typeof shard !== 'string') {
      throw new GripError('ERR_GRIP_FORMAT', `expected a shard file name for weight_map[${quote(name)}] in ${indexPath} but received ${describe(shard)}`);
    }
    if (!isBareFileName(shard)) {
      throw new GripError('ERR_GRIP_FORMAT',
        `expected a file name inside the checkpoint directory for weight_map[${quote(name)}] in ${indexPath} but received ${quote(shard)}`);
    }
  }
  return pairs as [string, string][];
}

// ---- writing ---------------------------------------------------------------------

async function writeFully(handle: FileHandle, bytes: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < bytes.length) {
    const length = Math.min(CHUNK_BYTES, bytes.length - done);
    const { bytesWritten } = await handle.write(bytes, done, length, position + done);
    done += bytesWritten;
  }
}

/**
 * Writes `tensors` (host or device; f32, f16, bf16, i32) to `path` as
 * safetensors, atomically: a temp file in the same directory, fsync, rename.
 * Tensors go in name order; the header is padded with spaces to a multiple of
 * 8 bytes, as the reference implementation does.
 */
export async function writeSafetensors(path: string, tensors: Record<string, Tensor>, metadata?: Record<string, string>): Promise<void> {
  if (typeof path !== 'string' || path === '') check.fail('ERR_GRIP_RANGE', 'a file path', 'path', describe(path));
  if (!isRecord(tensors)) check.fail('ERR_GRIP_SHAPE', 'an object of name -> Tensor', 'tensors', describe(tensors));
  if (metadata !== undefined && !isRecord(metadata)) check.fail('ERR_GRIP_RANGE', 'an object of strings', 'metadata', describe(metadata));
  const metadataEntries = Object.entries(metadata ?? {});
  for (const [key, text] of metadataEntries) {
    if (typeof text !== 'string') check.fail('ERR_GRIP_RANGE', 'a string', `metadata[${quote(key)}]`, describe(text));
  }

  const names = Object.keys(tensors).sort();
  const parts: string[] = [];
  if (metadataEntries.length > 0) {
    parts.push(`"__metadata__":{${metadataEntries.map(([k, v]) => `${quote(k)}:${quote(v)}`).join(',')}}`);
  }
  const payloads: Uint8Array[] = [];
  let offset = 0;
  for (const name of names) {
    const value = tensors[name];
    if (name === '__metadata__') check.fail('ERR_GRIP_RANGE', 'a tensor name other than "__metadata__"', 'tensors', quote(name));
    if (!(value instanceof Tensor)) check.fail('ERR_GRIP_SHAPE', 'a Tensor', `tensors[${quote(name)}]`, describe(value));
    // safetensors has no block-quantised dtype.
    if (value.dtype === 'q8_0') check.fail('ERR_GRIP_DTYPE', 'f32, f16, bf16 or i32', `dtype of tensors[${quote(name)}]`, value.dtype);
    const data = value.toHost().host;
    if (data.byteLength !== value.bytes) {
      check.fail('ERR_GRIP_SHAPE', `${value.bytes} bytes (${value.dtype} [${value.shape.join(', ')}])`, `the data of tensors[${quote(name)}]`, String(data.byteLength));
    }
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    parts.push(`${quote(name)}:{"dtype":"${STORED[value.dtype]}","shape":[${value.shape.join(',')}],"data_offsets":[${offset},${offset + bytes.length}]}`);
    payloads.push(bytes);
    offset += bytes.length;
  }
  // Built by hand: JSON.stringify would move integer-like names ("0") to the front.
  const json = new TextEncoder().encode(`{${parts.join(',')}}`);
  const headerLength = Math.ceil(json.length / 8) * 8;
  const head = new Uint8Array(8 + headerLength).fill(0x20, 8);
  new DataView(head.buffer).setBigUint64(0, BigInt(headerLength), true);
  head.set(json, 8);

  const temp = tempPathFor(path);
  let handle: FileHandle | null = null;
  try {
    handle = await open(temp, 'wx');
    await writeFully(handle, head, 0);
    let position = head.length;
    for (const bytes of payloads) {
      await writeFully(handle, bytes, position);
      position += bytes.length;
    }
    await handle.sync();
    await handle.close();
    handle = null;
    await rename(temp, path);
  } catch (error) {
    await handle?.close().catch(() => undefined);
    await unlink(temp).catch(() => undefined);
    throw ioError(error, 'a writable file', path);
  }
  // The rename is durable once the directory is synced.
  await syncDirectory(dirname(path));
}
