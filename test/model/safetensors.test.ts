// safetensors.test.ts — the safetensors reader/writer and checkpoint directories:
// round trips, the byte layout of the reference implementation, odd data
// alignments, sharded indexes, reads that touch only the tensor's bytes, and a
// corpus of malformed files, each with its exact GripError.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdir, mkdtemp, open, readdir, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GripError } from '../../lib/errors.ts';
import { Tensor, tensor, zeros } from '../../lib/tensor.ts';
import { Checkpoint, SafetensorsFile, writeSafetensors } from '../../lib/model/safetensors.ts';
import { expectError } from '../helpers.ts';

const test = suite('safetensors');
let root = '';
let counter = 0;
test.before(async () => {
  root = await mkdtemp(join(tmpdir(), 'grip-safetensors-'));
});
test.after(async () => {
  await rm(root, { recursive: true, force: true });
});

/** A fresh path (or directory) under the suite's temp dir. */
const fresh = (name: string) => join(root, `${counter++}-${name}`);

/** Runs fn (sync throw or rejected Promise) and checks the GripError's code and message. */

/** The bytes of a file: u64 header length (the header's own unless given), header text or bytes, data. */
function fileBytes(header: unknown, data: Uint8Array | number = 0, headerLength?: number | bigint): Uint8Array {
  const json = header instanceof Uint8Array ? header : new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
  const payload = typeof data === 'number' ? new Uint8Array(data) : data;
  const out = new Uint8Array(8 + json.length + payload.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerLength ?? json.length), true);
  out.set(json, 8);
  out.set(payload, 8 + json.length);
  return out;
}

async function writeRaw(path: string, bytes: Uint8Array): Promise<string> {
  await writeFile(path, bytes);
  return path;
}

const bytesOf = (t: Tensor) => {
  const h = t.host;
  return new Uint8Array(h.buffer, h.byteOffset, h.byteLength);
};

// ---- round trips --------------------------------------------------------------------

test('f32, f16, bf16 and i32 tensors round-trip bit for bit, names sorted', async () => {
  const tensors: Record<string, Tensor> = {
    'w.f32': tensor(Float32Array.of(1.5, -0, NaN, Infinity, -3.25, 1e-40), [2, 3]),
    'w.f16': tensor(Uint16Array.of(0x3c00, 0x8000, 0x7e00, 0xfc00), [4], 'f16'),
    'w.bf16': tensor(Uint16Array.of(0x3f80, 0xc000, 0x7fc1, 0x0001), [2, 2], 'bf16'),
    ids: tensor(Int32Array.of(-1, 2 ** 31 - 1), [2]),
    scalar: tensor([7], []),
    empty: zeros([0, 3]),
  };
  const path = fresh('round.safetensors');
  await writeSafetensors(path, tensors);
  const file = await SafetensorsFile.open(path);
  try {
    assert.equal(file.names, ['empty', 'ids', 'scalar', 'w.bf16', 'w.f16', 'w.f32']);
    assert.equal(file.info('w.bf16'), { dtype: 'BF16', shape: [2, 2], byteLength: 8 });
    assert.equal(file.info('scalar'), { dtype: 'F32', shape: [], byteLength: 4 });
    assert.equal(file.metadata, {});
    for (const [name, want] of Object.entries(tensors)) {
      const got = await file.read(name);
      assert.is(got.dtype, want.dtype, `${name} dtype`);
      assert.equal([...got.shape], [...want.shape], `${name} shape`);
      assert.equal(bytesOf(got), bytesOf(want), `${name} bytes`);
    }
  } finally {
    await file.close();
  }
});

test('metadata round-trips and the header is space-padded to a multiple of 8 bytes', async () => {
  const path = fresh('meta.safetensors');
  await writeSafetensors(path, { x: tensor([1, 2, 3], [3]) }, { format: 'pt', note: 'ünïcode "quoted"' });
  const raw = await readFile(path);
  const headerLength = Number(raw.readBigUInt64LE(0));
  assert.is(headerLength % 8, 0, `header length ${headerLength}`);
  const header = raw.subarray(8, 8 + headerLength).toString('utf8');
  assert.ok(/^\{.*\} *$/.test(header), `header ${JSON.stringify(header)}`);
  const file = await SafetensorsFile.open(path);
  assert.equal(file.metadata, { format: 'pt', note: 'ünïcode "quoted"' });
  assert.equal([...(await file.read('x')).toFloat32()], [1, 2, 3]);
  await file.close();
});

test('the writer lays a file out byte for byte as the reference implementation does', async () => {
  // safetensors.numpy.save({"a": np.zeros(2, np.float32)}) and the same with metadata={"k": "v"}.
  const expected = (header: string) => {
    const padded = header.padEnd(Math.ceil(header.length / 8) * 8, ' ');
    return fileBytes(padded, 8);
  };
  const path = fresh('ref.safetensors');
  await writeSafetensors(path, { a: zeros([2]) });
  assert.equal(new Uint8Array(await readFile(path)), expected('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}'));
  await writeSafetensors(path, { a: zeros([2]) }, { k: 'v' });
  assert.equal(new Uint8Array(await readFile(path)), expected('{"__metadata__":{"k":"v"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}'));
});

test('f32 data at every byte alignment in the file reads correctly', async () => {
  const values = Float32Array.of(1.25, -2.5, 3.75);
  const half = new Uint8Array(Uint16Array.of(0x3c00).buffer);
  for (let pad = 0; pad < 8; pad++) {
    // An F16 scalar first puts the F32 tensor 2 bytes into the data region; `pad` spaces move the region.
    const header = JSON.stringify({
      h: { dtype: 'F16', shape: [], data_offsets: [0, 2] },
      w: { dtype: 'F32', shape: [3], data_offsets: [2, 14] },
    }) + ' '.repeat(pad);
    const data = new Uint8Array(14);
    data.set(half, 0);
    data.set(new Uint8Array(values.buffer), 2);
    const path = await writeRaw(fresh(`align${pad}.safetensors`), fileBytes(header, data));
    const file = await SafetensorsFile.open(path);
    const w = await file.read('w');
    assert.equal([...w.toFloat32()], [...values], `pad ${pad} (f32 at file offset ${8 + header.length + 2})`);
    assert.equal([...(await file.read('h')).host], [0x3c00], `pad ${pad}`);
    await file.close();
  }
});

test('writeSafetensors replaces a file atomically and leaves no temp file', async () => {
  const dir = fresh('atomic');
  await mkdir(dir);
  const path = join(dir, 'model.safetensors');
  await writeSafetensors(path, { a: tensor([1], [1]) });
  await writeSafetensors(path, { b: tensor([2, 3], [2]) });
  assert.equal(await readdir(dir), ['model.safetensors']);
  const file = await SafetensorsFile.open(path);
  assert.equal(file.names, ['b']);
  await file.close();
});

test('writeSafetensors rejects bad arguments, and an unwritable place is ERR_GRIP_IO', async () => {
  const path = fresh('bad.safetensors');
  await expectError(() => writeSafetensors(path, { a: [1, 2] as never }), 'ERR_GRIP_SHAPE', 'expected a Tensor for tensors["a"] but received an array');
  await expectError(() => writeSafetensors(path, null as never), 'ERR_GRIP_SHAPE', 'expected an object of name -> Tensor for tensors but received null');
  await expectError(() => writeSafetensors(path, { a: zeros([1]) }, { step: 3 as never }), 'ERR_GRIP_RANGE', 'expected a string for metadata["step"] but received number 3');
  await expectError(() => writeSafetensors(path, { __metadata__: zeros([1]) }), 'ERR_GRIP_RANGE', 'expected a tensor name other than "__metadata__" for tensors but received "__metadata__"');
  const missingDir = join(fresh('nowhere'), 'x.safetensors');
  await expectError(() => writeSafetensors(missingDir, { a: zeros([1]) }), 'ERR_GRIP_IO', `expected a writable file for ${missingDir} but received ENOENT: no such file or directory`);
});

// ---- reading -------------------------------------------------------------------------

test('reading one tensor reads only its bytes, not the rest of a 256 MiB file', async () => {
  const bigBytes = 2 ** 28;
  const header = JSON.stringify({
    small: { dtype: 'F32', shape: [4], data_offsets: [0, 16] },
    big: { dtype: 'F32', shape: [bigBytes / 4], data_offsets: [16, 16 + bigBytes] },
  });
  const path = await writeRaw(fresh('sparse.safetensors'), fileBytes(header, new Uint8Array(Float32Array.of(1, 2, 3, 4).buffer)));
  await truncate(path, 8 + header.length + 16 + bigBytes); // sparse: no disk used
  // Count the bytes every FileHandle.read returns while the file is opened and one tensor read.
  const probe = await open(path, 'r');
  const proto = Object.getPrototypeOf(probe) as { read: (...args: unknown[]) => Promise<{ bytesRead: number }> };
  await probe.close();
  const original = proto.read;
  let bytesRead = 0;
  proto.read = async function (this: unknown, ...args: unknown[]) {
    const result = await original.apply(this, args);
    bytesRead += result.bytesRead;
    return result;
  };
  try {
    const file = await SafetensorsFile.open(path);
    assert.equal([...(await file.read('small')).toFloat32()], [1, 2, 3, 4]);
    assert.equal(file.info('big').byteLength, bigBytes);
    await file.close();
  } finally {
    proto.read = original;
  }
  assert.is(bytesRead, 8 + header.length + 16, 'bytes read: the length field, the header and the one tensor');
});

test('an aborted signal rejects the read with its reason; a non-signal is ERR_GRIP_RANGE', async () => {
  const path = fresh('abort.safetensors');
  await writeSafetensors(path, { a: zeros([4]) });
  const file = await SafetensorsFile.open(path);
  const controller = new AbortController();
  controller.abort(new Error('stop'));
  const error = await file.read('a', { signal: controller.signal }).then(() => null, (e: unknown) => e);
  assert.ok(error instanceof Error && error.message === 'stop', `got ${String(error)}`);
  await expectError(() => file.read('a', { signal: 'x' as never }), 'ERR_GRIP_RANGE', 'expected an AbortSignal for options.signal but received the string "x"');
  await file.close();
});

test('a tensor name not in the file is ERR_GRIP_FORMAT listing some names', async () => {
  const path = fresh('names.safetensors');
  await writeSafetensors(path, { a: zeros([1]), b: zeros([1]), c: zeros([1]), d: zeros([1]) });
  const file = await SafetensorsFile.open(path);
  assert.ok(file.has('a') && !file.has('z'));
  await expectError(() => file.read('z'), 'ERR_GRIP_FORMAT', `expected a tensor named "z" in ${path} but received none among 4 tensors ("a", "b", "c", ...)`);
  await expectError(() => file.info('z'), 'ERR_GRIP_FORMAT', `expected a tensor named "z" in ${path} but received none among 4 tensors ("a", "b", "c", ...)`);
  await file.close();
});

test('a read after close is ERR_GRIP_IO; close is idempotent', async () => {
  const path = fresh('closed.safetensors');
  await writeSafetensors(path, { a: zeros([1]) });
  const file = await SafetensorsFile.open(path);
  await file.close();
  await file.close();
  await expectError(() => file.read('a'), 'ERR_GRIP_IO', `expected an open file for reading tensor "a" but received a closed SafetensorsFile (${path})`);
});

test('a file truncated after it was opened is ERR_GRIP_FORMAT on read', async () => {
  const path = fresh('cut.safetensors');
  await writeSafetensors(path, { w: tensor([1, 2, 3, 4], [4]) });
  const file = await SafetensorsFile.open(path);
  const dataStart = 8 + Number((await readFile(path)).readBigUInt64LE(0));
  await truncate(path, dataStart + 4);
  await expectError(() => file.read('w'), 'ERR_GRIP_FORMAT',
    `expected 16 bytes at offset ${dataStart} for tensor "w" in ${path} but received 4 (the file ends there: was it truncated after it was opened?)`);
  await file.close();
});

test('other dtypes are accepted in the header, and reading them is ERR_GRIP_UNSUPPORTED', async () => {
  const header = {
    ids: { dtype: 'I64', shape: [2], data_offsets: [0, 16] },
    mask: { dtype: 'BOOL', shape: [3], data_offsets: [16, 19] },
    q: { dtype: 'F4', shape: [4], data_offsets: [19, 21] },
    future: { dtype: 'Q4_K', shape: [7], data_offsets: [21, 30] },
  };
  const path = await writeRaw(fresh('dtypes.safetensors'), fileBytes(header, 30));
  const file = await SafetensorsFile.open(path);
  assert.equal(file.info('ids'), { dtype: 'I64', shape: [2], byteLength: 16 });
  assert.equal(file.info('q'), { dtype: 'F4', shape: [4], byteLength: 2 });
  await expectError(() => file.read('ids'), 'ERR_GRIP_UNSUPPORTED', `expected F32, F16, BF16 or I32 for the dtype of tensor "ids" in ${path} but received I64`);
  await expectError(() => file.read('mask'), 'ERR_GRIP_UNSUPPORTED', `expected F32, F16, BF16 or I32 for the dtype of tensor "mask" in ${path} but received BOOL`);
  await expectError(() => file.read('future'), 'ERR_GRIP_UNSUPPORTED', `expected F32, F16, BF16 or I32 for the dtype of tensor "future" in ${path} but received Q4_K`);
  await file.close();
});

// ---- malformed files: one case each, exact code and message ---------------------------

const F32x4 = { dtype: 'F32', shape: [4], data_offsets: [0, 16] };
interface Malformed {
  name: string;
  /** The file's bytes, or a function that makes the file at `path` itself. */
  make: Uint8Array | ((path: string) => Promise<void>);
  code: string;
  message: (path: string) => string;
}
const MALFORMED: Malformed[] = [
  { name: 'a file shorter than a header length and a header', make: new Uint8Array(5), code: 'ERR_GRIP_FORMAT',
    message: (p) => `expected at least 10 bytes (an 8-byte header length and a JSON header) for ${p} but received a file of 5 bytes` },
  { name: 'a header length larger than the file', make: fileBytes('{}', 6, 1000), code: 'ERR_GRIP_FORMAT',
    message: (p) => `expected a header length in [2, 8] bytes for ${p} but received 1000` },
  { name: 'a header length of 0', make: fileBytes('{}', 6, 0), code: 'ERR_GRIP_FORMAT',
    message: (p) => `expected a header length in [2, 8] bytes for ${p} but received 0` },
  { name: 'a header length of 2^64 - 1', make: fileBytes('{}', 6, 2n ** 64n - 1n), code: 'ERR_GRIP_FORMAT',
    message: (p) => `expected a header length in [2, 8] bytes for ${p} but received 18446744073709551615` },
  { name: 'a header length over 100 MB (in a file that is larger)',
    make: async (p) => { await writeFile(p, fileBytes('{}', 0, 100_000_001)); await truncate(p, 100_000_100); },
    code: 'ERR_GRIP_FORMAT', message: (p) => `expected a header length in [2, 100000000] bytes for ${p} but received 100000001` },
  { name: 'a header that is not JSON', make: fileBytes('{"a": nope}'), code: 'ERR_GRIP_FORMAT',
    message: (p) => `expected a JSON object for the header of ${p} but received invalid JSON starting "{\\"a\\": nope}"` },
  { name: 'a header that is not UTF-8', make: fileBytes(Uint8Array.of(0x7b, 0xff, 0x7d)), code: 'ERR_GRIP_FORMAT',
    message: (p) => `expected UTF-8 text for the header of ${p} but received invalid UTF-8` },
  { name: 'a JSON array header', make: fileBytes('[1, 2]'), code: 'ERR_GRIP_FORMAT',
    message: (p) => `expected a JSON object for the header of ${p} but received an array` },
  { name: 'a tensor entry that is not an object', make: fileBytes({ x: 3 }), code: 'ERR_GRIP_FORMAT',
    message: (p) => `expected an object {dtype, shape, data_offsets} for tensor "x" in ${p} but received number 3` },
  { name: 'a missing dtype', make: fileBytes({ x: { shape: [4], data_offsets: [0, 16] } }, 16), code: 'ERR_GRIP_FORMAT',
    message: (p) => `expected a string for the dtype of tensor "x" in ${p} but received undefined` },
  { name: 'a negative shape extent', make: fileBytes({ x: { ...F32x4, shape: [2, -1] } }, 16), code: 'ERR_GRIP_FORMAT',
    message: (p) => `expected an array of non-negative integers for the shape of tensor "x" in ${p} but received [2, -1]` },
  { name: 'a fractional shape extent', make: fileBytes({ x: { ...F32x4, shape: [1.5] } }, 16), code: 'ERR_GRIP_FORMAT',
    message: (p) => `expected an array of non-negative integers for the shape of tensor "x" in ${p} but received [1.5]` },
  { name: 'a shape that is not a list', make: fileBytes({ x: { ...F32x4, shape: '4' } }, 16), code: 'ERR_GRIP_FORMAT',
    message: (p) => `expected an array of non-negative integers for the shape of tensor "x" in ${p} but received the string "4"` },
  { name: 'data_offsets that are not two integers', make: fileBytes({ x: { ...F32x4, data_offsets: [0] } }, 16), code: 'ERR_GRIP_FORMAT',
    message: (p) => `expected two non-negative integers [begin, end] for the data_offsets of tensor "x" in ${p} but received [0]` },
  { name: 'data_offsets with end < begin', make: fileBytes({ x: { ...F32x4, shape: [0], data_offsets: [8, 4] } }, 16), code: 'ERR_GRIP_FORMAT',
    message: (p) => `expected begin <= end for the data_offsets of tensor "x" in ${p} but received [8, 4]` },
  { name: 'a byte length that does not match the shape', make: fileBytes({ x: { ...F32x4, data_offsets: [0, 12] } }, 16), code: 'ERR_GRIP_FORMAT',
    message: (p) => `expected 16 bytes (F32 [4]) for the data_offsets of tensor "x" in ${p} but received [0, 12] (12 bytes)` },
  { name: 'data_offsets outside the data region', make: fileBytes({ x: F32x4 }, 8), code: 'ERR_GRIP_FORMAT',
    message: (p) => `expected data_offsets inside the data region (0..8) for tensor "x" in ${p} but received [0, 16]` },
  { name: 'a file truncated right after its header', make: fileBytes({ x: F32x4 }), code: 'ERR_GRIP_FORMAT',
    message: (p) => `expected data_offsets inside the data region (0..0) for tensor "x" in ${p} but received [0, 16]` },
  { name: 'overlapping data_offsets',
    make: fileBytes({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }, 12),
    code: 'ERR_GRIP_FORMAT', message: (p) => `expected non-overlapping data_offsets for tensor "b" in ${p} but received [4, 12], which overlaps tensor "a" at [0, 8]` },
  { name: 'a metadata value that is not a string', make: fileBytes({ __metadata__: { step: 3 } }), code: 'ERR_GRIP_FORMAT',
    message: (p) => `expected a string for __metadata__["step"] in ${p} but received number 3` },
  { name: 'metadata that is not an object', make: fileBytes({ __metadata__: ['a'] }), code: 'ERR_GRIP_FORMAT',
    message: (p) => `expected an object of strings for __metadata__ in ${p} but received an array` },
  { name: 'a missing file', make: async () => undefined, code: 'ERR_GRIP_IO',
    message: (p) => `expected a readable safetensors file for ${p} but received ENOENT: no such file or directory` },
  { name: 'a directory', make: (p) => mkdir(p), code: 'ERR_GRIP_IO',
    message: (p) => `expected a regular file for ${p} but received a directory` },
];

for (const bad of MALFORMED) {
  test(`malformed: ${bad.name} is ${bad.code}`, async () => {
    const path = fresh('bad.safetensors');
    if (bad.make instanceof Uint8Array) await writeFile(path, bad.make);
    else await bad.make(path);
    await expectError(() => SafetensorsFile.open(path), bad.code, bad.message(path));
  });
}

test('empty tensors overlap nothing, and holes between tensors are allowed', async () => {
  const header = {
    a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] },
    e: { dtype: 'F32', shape: [0], data_offsets: [2, 2] },
    b: { dtype: 'F32', shape: [1], data_offsets: [8, 12] },
  };
  const data = new Uint8Array(Float32Array.of(5, 0, 6).buffer);
  const file = await SafetensorsFile.open(await writeRaw(fresh('holes.safetensors'), fileBytes(header, data)));
  assert.equal([...(await file.read('b')).toFloat32()], [6]);
  assert.is((await file.read('e')).size, 0);
  await file.close();
});

test('random corruptions of a valid file give a GripError or a valid file, never another error', async () => {
  const path = fresh('fuzz-src.safetensors');
  await writeSafetensors(path, { a: tensor([1, 2, 3], [3]), b: tensor([1, 2], [2], 'bf16'), c: tensor(Int32Array.of(4), [1]) }, { k: 'v' });
  const good = new Uint8Array(await readFile(path));
  const headerEnd = 8 + Number(new DataView(good.buffer).getBigUint64(0, true));
  let state = 12345;
  const random = (n: number) => {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    return state % n;
  };
  const target = fresh('fuzz.safetensors');
  const outcomes = { opened: 0, rejected: 0 };
  for (let i = 0; i < 300; i++) {
    let bytes = good.slice();
    const kind = i % 3;
    if (kind === 0) bytes[random(headerEnd)] = random(256); // any byte of the length or header
    else if (kind === 1) bytes = bytes.slice(0, random(bytes.length)); // truncation
    else {
      // a digit of the header changed: offsets and shapes that still parse
      const digits = [...bytes.subarray(8, headerEnd).keys()].filter((j) => bytes[8 + j]! >= 0x30 && bytes[8 + j]! <= 0x39);
      bytes[8 + digits[random(digits.length)]!] = 0x30 + random(10);
    }
    await writeFile(target, bytes);
    try {
      const file = await SafetensorsFile.open(target);
      try {
        for (const name of file.names) await file.read(name).catch((e: unknown) => { if (!(e instanceof GripError)) throw e; });
      } finally {
        await file.close();
      }
      outcomes.opened++;
    } catch (e) {
      assert.ok(e instanceof GripError, `case ${i} (kind ${kind}): expected a GripError but got ${String(e)}`);
      outcomes.rejected++;
    }
  }
  assert.ok(outcomes.rejected > 100, `rejected ${outcomes.rejected} of 300`);
});

// ---- checkpoint directories ---------------------------------------------------------------

async function shardedDir(weightMap: Record<string, unknown>, shards: Record<string, Record<string, Tensor>>, index?: unknown): Promise<string> {
  const dir = fresh('sharded');
  await mkdir(dir);
  for (const [file, tensors] of Object.entries(shards)) await writeSafetensors(join(dir, file), tensors);
  const text = typeof index === 'string' ? index : JSON.stringify(index ?? { metadata: { total_size: 0 }, weight_map: weightMap });
  await writeFile(join(dir, 'model.safetensors.index.json'), text);
  return dir;
}

const S1 = 'model-00001-of-00002.safetensors', S2 = 'model-00002-of-00002.safetensors';

test('a sharded checkpoint joins its shards by the index', async () => {
  const dir = await shardedDir({ 'a.weight': S1, 'b.weight': S2, 'c.bias': S2 },
    { [S1]: { 'a.weight': tensor([1, 2], [2]) }, [S2]: { 'b.weight': tensor([3], [1], 'f16'), 'c.bias': tensor([4, 5, 6], [3]) } });
  const checkpoint = await Checkpoint.open(dir);
  assert.equal(checkpoint.names, ['a.weight', 'b.weight', 'c.bias']);
  assert.equal(checkpoint.files.map((f) => f.path), [join(dir, S1), join(dir, S2)]);
  assert.equal(checkpoint.info('b.weight'), { dtype: 'F16', shape: [1], byteLength: 2 });
  assert.equal([...(await checkpoint.read('c.bias')).toFloat32()], [4, 5, 6]);
  assert.equal([...(await checkpoint.read('a.weight')).toFloat32()], [1, 2]);
  assert.ok(checkpoint.has('a.weight') && !checkpoint.has('z'));
  await expectError(() => checkpoint.read('z'), 'ERR_GRIP_FORMAT', `expected a tensor named "z" in ${dir} but received none among 3 tensors ("a.weight", "b.weight", "c.bias")`);
  await checkpoint.close();
});

test('a checkpoint of one model.safetensors, or of one other *.safetensors file', async () => {
  for (const file of ['model.safetensors', 'pruner.safetensors']) {
    const dir = fresh('single');
    await mkdir(dir);
    await writeSafetensors(join(dir, file), { w: tensor([1, 2], [2]) });
    await writeFile(join(dir, 'config.json'), '{}');
    const checkpoint = await Checkpoint.open(dir);
    assert.equal(checkpoint.names, ['w'], file);
    assert.equal([...(await checkpoint.read('w')).toFloat32()], [1, 2], file);
    await checkpoint.close();
  }
});

test('model.safetensors wins over an index in the same directory (as in transformers)', async () => {
  const dir = await shardedDir({ x: S1 }, { [S1]: { x: zeros([1]) } });
  await writeSafetensors(join(dir, 'model.safetensors'), { y: zeros([1]) });
  const checkpoint = await Checkpoint.open(dir);
  assert.equal(checkpoint.names, ['y']);
  await checkpoint.close();
});

test('a directory with no weights, several unindexed files, or none at all is ERR_GRIP_IO', async () => {
  const empty = fresh('empty');
  await mkdir(empty);
  await expectError(() => Checkpoint.open(empty), 'ERR_GRIP_IO', `expected model.safetensors or model.safetensors.index.json in ${empty} but received neither`);
  const several = fresh('several');
  await mkdir(several);
  await writeSafetensors(join(several, 'a.safetensors'), { a: zeros([1]) });
  await writeSafetensors(join(several, 'b.safetensors'), { b: zeros([1]) });
  await expectError(() => Checkpoint.open(several), 'ERR_GRIP_IO',
    `expected model.safetensors or model.safetensors.index.json in ${several} but received neither, and 2 other .safetensors files ("a.safetensors", "b.safetensors") with no index to join them`);
  const missing = fresh('missing');
  await expectError(() => Checkpoint.open(missing), 'ERR_GRIP_IO', `expected a readable checkpoint directory for ${missing} but received ENOENT: no such file or directory`);
});

const INDEX = 'model.safetensors.index.json';
const BAD_INDEXES: { name: string; dir: () => Promise<string>; code: string; message: (dir: string) => string }[] = [
  { name: 'an index naming a missing shard', dir: () => shardedDir({ a: S1, b: S2 }, { [S1]: { a: zeros([1]) } }), code: 'ERR_GRIP_IO',
    message: (d) => `expected an existing file for shard "${S2}" of ${join(d, INDEX)} but received none in ${d}` },
  { name: 'an index with path traversal', dir: () => shardedDir({ a: '../outside.safetensors' }, {}), code: 'ERR_GRIP_FORMAT',
    message: (d) => `expected a file name inside the checkpoint directory for weight_map["a"] in ${join(d, INDEX)} but received "../outside.safetensors"` },
  { name: 'an index with an absolute shard path', dir: () => shardedDir({ a: '/etc/passwd' }, {}), code: 'ERR_GRIP_FORMAT',
    message: (d) => `expected a file name inside the checkpoint directory for weight_map["a"] in ${join(d, INDEX)} but received "/etc/passwd"` },
  { name: 'a tensor in two shards', dir: () => shardedDir({ a: S1, b: S2 }, { [S1]: { a: zeros([1]), b: zeros([1]) }, [S2]: { b: zeros([1]) } }),
    code: 'ERR_GRIP_FORMAT', message: (d) => `expected tensor "b" in one shard for ${join(d, INDEX)} but received it in "${S1}" and "${S2}"` },
  { name: 'a shard without a tensor the index assigns to it', dir: () => shardedDir({ a: S1, b: S1 }, { [S1]: { a: zeros([1]) } }),
    code: 'ERR_GRIP_FORMAT', message: (d) => `expected tensor "b" in ${join(d, S1)} (as ${join(d, INDEX)} maps it) but received a shard without it` },
  { name: 'a weight_map that is not an object', dir: () => shardedDir({}, {}, { weight_map: [S1] }), code: 'ERR_GRIP_FORMAT',
    message: (d) => `expected an object {tensor: shard file} for weight_map in ${join(d, INDEX)} but received an array` },
  { name: 'a shard name that is not a string', dir: () => shardedDir({ a: 1 }, {}), code: 'ERR_GRIP_FORMAT',
    message: (d) => `expected a shard file name for weight_map["a"] in ${join(d, INDEX)} but received number 1` },
  { name: 'an index that is not JSON', dir: () => shardedDir({}, {}, '{"weight_map": {'), code: 'ERR_GRIP_FORMAT',
    message: (d) => `expected a JSON object for ${join(d, INDEX)} but received invalid JSON starting "{\\"weight_map\\": {"` },
  { name: 'a malformed shard', dir: async () => {
    const d = await shardedDir({ a: S1 }, {});
    await writeFile(join(d, S1), fileBytes('[]'));
    return d;
  }, code: 'ERR_GRIP_FORMAT', message: (d) => `expected a JSON object for the header of ${join(d, S1)} but received an array` },
];

for (const bad of BAD_INDEXES) {
  test(`malformed checkpoint: ${bad.name} is ${bad.code}`, async () => {
    const dir = await bad.dir();
    await expectError(() => Checkpoint.open(dir), bad.code, bad.message(dir));
  });
}

test.run();
