// parsers.fuzz.ts — seeded mutation fuzzer over the file parsers: config.json,
// preprocessor_config.json, tokenizer.json / tokenizer_config.json, safetensors
// files, a GRIP checkpoint (grip.json + pruner.safetensors), a run's state.json
// and images through sharp. Each input starts from a valid file of the repo and
// mutates it (bit flips, byte insert/delete, truncation, JSON token splices,
// numbers replaced by huge/negative/NaN-ish values, safetensors header fields
// and length changed). The outcome must be a result or a GripError with a known
// code, within a time limit; anything else is a finding. Input j of parser P and
// seed S depends only on (S, P, j): `--parsers --parser P --input j` replays it.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { GripError } from '../../lib/errors.ts';
import { readJsonFile } from '../../lib/json.ts';
import { loadLlavaConfig } from '../../lib/model/config.ts';
import { familyOf } from '../../lib/model/families.ts';
import { parseLlavaNextConfig } from '../../lib/model/llava_next/config.ts';
import { parseLlavaNextProcessorConfig } from '../../lib/model/llava_next/processor.ts';
import { loadProcessorConfig, preprocessImage, type ProcessorConfig } from '../../lib/model/processor.ts';
import { parseQwenVLConfig } from '../../lib/model/qwen_vl/config.ts';
import { parseQwenVLProcessorConfig } from '../../lib/model/qwen_vl/processor.ts';
import { SafetensorsFile } from '../../lib/model/safetensors.ts';
import { TextTokenizer, buildPrompt } from '../../lib/model/tokenizer.ts';
import { GripPruner } from '../../lib/prune/grip.ts';
import { readRunState } from '../../lib/train/run.ts';
import { rng } from '../helpers.ts';

type Rand = () => number;
export interface ParserReport { inputs: number; ok: number; errors: Record<string, number>; maxMs: number }
export interface ParserFinding { seed: number; parser: string; input: number; mutation: string; problem: string }
export interface ParserFuzzOptions {
  seed: number;
  /** Inputs in all (round-robin over the parsers), or of `only`. */
  inputs: number;
  only?: string | undefined;
  /** Replays input `firstInput` of `only` (with inputs = 1), keeping its files. */
  firstInput?: number | undefined;
  /** Per-input limit; a slower input is a finding. */
  limitMs?: number;
  trace?: (line: string) => void;
  /** Called with the temp dir of a replayed input (its files are kept). */
  kept?: (dir: string) => void;
}

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../..');
const TINY = 'models/shapes-llava-tiny';
const CODES = new Set(['ERR_GRIP_SHAPE', 'ERR_GRIP_DTYPE', 'ERR_GRIP_RANGE', 'ERR_GRIP_DEVICE', 'ERR_GRIP_CUDA', 'ERR_GRIP_FORMAT', 'ERR_GRIP_IO', 'ERR_GRIP_UNSUPPORTED']);

const int = (r: Rand, lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
const pick = <T>(r: Rand, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;

// ---- byte-level mutations -------------------------------------------------------------

function randomBytes(r: Rand, n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = int(r, 0, 255);
  return b;
}

/** One byte-level mutation of `data` (never empty input unless truncated to 0). */
function mutateBytes(r: Rand, data: Buffer, within = data.length): { data: Buffer; what: string } {
  const n = data.length, span = Math.max(1, Math.min(within, n));
  const at = () => int(r, 0, span - 1);
  switch (pick(r, ['flip', 'flip', 'byte', 'insert', 'delete', 'truncate', 'splice', 'repeat'] as const)) {
    case 'flip': {
      const out = Buffer.from(data), flips = int(r, 1, 8), where: number[] = [];
      for (let i = 0; i < flips && n > 0; i++) { const p = at(); out[p]! ^= 1 << int(r, 0, 7); where.push(p); }
      return { data: out, what: `flip bits at ${where.join(',')}` };
    }
    case 'byte': {
      const out = Buffer.from(data), p = at(), v = pick(r, [0, 0xff, 0x7f, 0x80, 0x22, 0x5c, 0x7b, 0x5b, 0x2c, 0x30]);
      if (n > 0) out[p] = v;
      return { data: out, what: `byte ${p} = ${v}` };
    }
    case 'insert': {
      const p = at(), bytes = randomBytes(r, int(r, 1, 16));
      return { data: Buffer.concat([data.subarray(0, p), bytes, data.subarray(p)]), what: `insert ${bytes.length} bytes at ${p}` };
    }
    case 'delete': {
      const p = at(), count = int(r, 1, 32);
      return { data: Buffer.concat([data.subarray(0, p), data.subarray(p + count)]), what: `delete ${count} bytes at ${p}` };
    }
    case 'truncate': {
      const p = int(r, 0, Math.max(0, n - 1));
      return { data: data.subarray(0, p), what: `truncate to ${p} bytes` };
    }
    case 'splice': {
      const from = int(r, 0, Math.max(0, n - 1)), count = int(r, 1, 64), to = at();
      return { data: Buffer.concat([data.subarray(0, to), data.subarray(from, from + count), data.subarray(to)]), what: `copy ${count} bytes from ${from} to ${to}` };
    }
    default: {
      const p = at(), count = int(r, 1, 8), times = int(r, 2, 200);
      const chunk = data.subarray(p, p + count);
      return { data: Buffer.concat([data.subarray(0, p), ...Array(times).fill(chunk), data.subarray(p + count)]), what: `repeat ${count} bytes at ${p} x${times}` };
    }
  }
}

// ---- JSON-token mutations ---------------------------------------------------------------

const TOKEN = /"(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null|[{}[\]:,]|\s+|./gsu;
/** Values a number or a string is replaced by: huge, negative, fractional, NaN-ish, of another type. */
const NUMBERS = ['1e309', '-1e309', '-1', '-0', '0', '0.5', '1.5', '-2.5', '2147483648', '4294967297', '9007199254740993', '1e-400', '1e21', '-2147483649',
  '123456789012345678901234567890', 'NaN', 'Infinity', '"7"', '"NaN"', 'null', 'true', '[]', '{}', '[1e309]', '[-1, 2]'];
const STRINGS = ['""', '"\\u0000"', '"\\ud800"', '"__proto__"', '"constructor"', '"<image>"', '"{{ raise_exception(1) }}"', '"{% for x in y %}"', '"\\\\"', 'null', '0', '-1', '[]', '{}', '[""]', 'true'];

function mutateJson(r: Rand, text: string): { text: string; what: string } {
  const tokens = text.match(TOKEN) ?? [];
  const meaningful = tokens.map((t, i) => [t, i] as const).filter(([t]) => !/^\s+$/.test(t));
  if (meaningful.length === 0) return { text: `${text}{`, what: 'append {' };
  const numbers = meaningful.filter(([t]) => /^-?\d/.test(t)), strings = meaningful.filter(([t]) => t.startsWith('"'));
  const choose = (from: readonly (readonly [string, number])[]) => pick(r, from.length > 0 ? from : meaningful);
  const join = () => tokens.join('');
  switch (pick(r, ['number', 'number', 'number', 'string', 'string', 'splice', 'delete', 'swap', 'duplicateKey', 'nest', 'proto', 'long'] as const)) {
    case 'number': {
      const [t, i] = choose(numbers), v = pick(r, NUMBERS);
      tokens[i] = v;
      return { text: join(), what: `number #${i} ${t} -> ${v}` };
    }
    case 'string': {
      const [t, i] = choose(strings);
      const v = r() < 0.4 ? choose(strings)[0] : pick(r, STRINGS);
      tokens[i] = v;
      return { text: join(), what: `string #${i} ${t.slice(0, 30)} -> ${v.slice(0, 30)}` };
    }
    case 'splice': {
      const a = int(r, 0, tokens.length - 1), b = Math.min(tokens.length, a + int(r, 1, 12)), to = int(r, 0, tokens.length);
      tokens.splice(to, 0, ...tokens.slice(a, b));
      return { text: join(), what: `copy tokens ${a}..${b} to ${to}` };
    }
    case 'delete': {
      const [, i] = pick(r, meaningful), count = int(r, 1, 3);
      tokens.splice(i, count);
      return { text: join(), what: `delete ${count} tokens at ${i}` };
    }
    case 'swap': {
      const [, i] = pick(r, meaningful), [, j] = pick(r, meaningful);
      [tokens[i], tokens[j]] = [tokens[j]!, tokens[i]!];
      return { text: join(), what: `swap tokens ${i} and ${j}` };
    }
    case 'duplicateKey': {
      // "key": value -> "key": value, "key": OTHER (the last one wins in JSON.parse).
      const keys = meaningful.filter(([t, i]) => t.startsWith('"') && tokens.slice(i + 1).find((x) => !/^\s+$/.test(x)) === ':');
      if (keys.length === 0) return { text: `${text}}`, what: 'append }' };
      const [k, i] = pick(r, keys), v = pick(r, [...NUMBERS, ...STRINGS]);
      tokens.splice(i, 0, `${k}: ${v}, `);
      return { text: join(), what: `key ${k} first set to ${v}` };
    }
    case 'nest': {
      const [, i] = pick(r, meaningful), depth = pick(r, [2, 50, 5000]);
      tokens[i] = `${'['.repeat(depth)}${tokens[i]}${']'.repeat(depth)}`;
      return { text: join(), what: `token ${i} nested ${depth} deep` };
    }
    case 'proto': {
      const open = meaningful.filter(([t]) => t === '{');
      const [, i] = choose(open), key = pick(r, ['__proto__', 'constructor', 'toString', 'hasOwnProperty']);
      tokens[i] = `{"${key}": ${pick(r, ['{"x": 1}', 'null', '1', '[]', '"x"'])},`;
      return { text: join(), what: `key ${key} added at ${i}` };
    }
    default: {
      const [t, i] = choose(strings), v = `"${'x'.repeat(pick(r, [300, 70000]))}"`;
      tokens[i] = v;
      return { text: join(), what: `string #${i} ${t.slice(0, 30)} -> ${v.length - 2} x` };
    }
  }
}

/** A JSON file: token mutations (most), or byte-level ones. */
function mutateJsonFile(r: Rand, data: Buffer): { data: Buffer; what: string } {
  if (r() < 0.75) {
    const m = mutateJson(r, data.toString('utf8'));
    return { data: Buffer.from(m.text, 'utf8'), what: m.what };
  }
  return mutateBytes(r, data);
}

// ---- safetensors header mutations -----------------------------------------------------

const HEADER_DTYPES: unknown[] = ['F32', 'F16', 'BF16', 'I32', 'I64', 'F64', 'U8', 'BOOL', 'F4', 'F6_E2M3', 'C64', 'f32', 'X', '', 7, null];
const EXTENTS: unknown[] = [-1, 0, 1, 2, 1.5, 2 ** 31, 2 ** 32 + 1, 2 ** 53, 2 ** 53 + 2, 1e308, '4', null, [2]];
const OFFSETS: unknown[] = [-1, 0, 1, 3, 1.5, 2 ** 32, 2 ** 53, 2 ** 53 + 2, 1e308, '0', null];

function splitSafetensors(data: Buffer): { header: Record<string, unknown>; data: Buffer } | null {
  if (data.length < 8) return null;
  const length = Number(data.readBigUInt64LE(0));
  if (length > data.length - 8) return null;
  try {
    return { header: JSON.parse(data.subarray(8, 8 + length).toString('utf8')) as Record<string, unknown>, data: data.subarray(8 + length) };
  } catch {
    return null;
  }
}

function joinSafetensors(headerText: string, data: Buffer, length?: bigint): Buffer {
  const header = Buffer.from(headerText, 'utf8'), prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(length ?? BigInt(header.length));
  return Buffer.concat([prefix, header, data]);
}

function mutateSafetensors(r: Rand, file: Buffer): { data: Buffer; what: string } {
  const parsed = splitSafetensors(file);
  const kind = r();
  if (parsed === null || kind < 0.12) {
    // Bytes of the length field and the header (the data region is opaque to the parser).
    const headerEnd = parsed === null ? file.length : file.length - parsed.data.length;
    return mutateBytes(r, file, headerEnd);
  }
  const { header, data } = parsed;
  if (kind < 0.27) {
    // Token mutations of the header text, the length field fixed up (or not).
    const m = mutateJson(r, JSON.stringify(header));
    return { data: joinSafetensors(m.text, data), what: `header ${m.what}` };
  }
  if (kind < 0.37) {
    const length = BigInt(Buffer.byteLength(JSON.stringify(header)));
    const wrong = pick(r, [0n, 1n, 2n, length - 1n, length + 1n, length + BigInt(int(r, 2, 64)), BigInt(file.length), 1n << 32n, (1n << 32n) + length, 1n << 63n, (1n << 64n) - 1n]);
    return { data: joinSafetensors(JSON.stringify(header), data, wrong < 0n ? 0n : wrong), what: `header length ${length} -> ${wrong}` };
  }
  const names = Object.keys(header).filter((n) => n !== '__metadata__');
  const name = names.length > 0 ? pick(r, names) : '__none__';
  const entry = (header[name] ?? {}) as Record<string, unknown>;
  const shape = Array.isArray(entry.shape) ? [...(entry.shape as unknown[])] : [];
  const offsets = Array.isArray(entry.data_offsets) ? [...(entry.data_offsets as unknown[])] : [0, 0];
  let what: string;
  switch (pick(r, ['dtype', 'dtype', 'extent', 'extent', 'rank', 'offset', 'offset', 'shift', 'overlap', 'pastEnd', 'field', 'entry', 'rename', 'metadata', 'many', 'padding'] as const)) {
    case 'dtype': entry.dtype = pick(r, HEADER_DTYPES); what = `${name} dtype -> ${JSON.stringify(entry.dtype)}`; break;
    case 'extent': {
      const i = int(r, 0, Math.max(0, shape.length - 1));
      shape[i] = pick(r, EXTENTS); entry.shape = shape; what = `${name} shape[${i}] -> ${JSON.stringify(shape[i])}`; break;
    }
    case 'rank':
      if (r() < 0.5) shape.push(pick(r, [0, 1, 2, 3])); else shape.pop();
      entry.shape = r() < 0.15 ? pick(r, [null, 5, 'x', {}]) : shape; what = `${name} shape -> ${JSON.stringify(entry.shape)}`; break;
    case 'offset': {
      const i = int(r, 0, 1);
      offsets[i] = pick(r, OFFSETS);
      entry.data_offsets = r() < 0.1 ? [...offsets, 0] : r() < 0.1 ? offsets.slice(0, 1) : offsets;
      what = `${name} data_offsets -> ${JSON.stringify(entry.data_offsets)}`; break;
    }
    case 'shift': {
      const d = pick(r, [-8, -4, -1, 1, 2, 4, 8, 1024]);
      entry.data_offsets = offsets.map((o) => (typeof o === 'number' ? o + d : o)); what = `${name} data_offsets shifted by ${d}`; break;
    }
    case 'overlap': {
      const other = header[pick(r, names)] as Record<string, unknown> | undefined;
      entry.data_offsets = other?.data_offsets; entry.dtype = other?.dtype; entry.shape = other?.shape; what = `${name} takes another tensor's range`; break;
    }
    case 'pastEnd': {
      const end = data.length + pick(r, [1, 4, 4096]), len = (offsets[1] as number) - (offsets[0] as number);
      entry.data_offsets = [end - len, end]; what = `${name} data_offsets past the end (${end})`; break;
    }
    case 'field': {
      const key = pick(r, ['dtype', 'shape', 'data_offsets']);
      if (r() < 0.6) delete entry[key]; else entry[key] = pick(r, [null, 1, 'x', {}, [], true]);
      entry[pick(r, ['extra', '__proto__', 'offsets'])] = 1; what = `${name} field ${key} changed`; break;
    }
    case 'entry': header[name] = pick(r, [null, [], 5, 'x', true]); what = `${name} -> ${JSON.stringify(header[name])}`; break;
    case 'rename': {
      const to = pick(r, ['', '__metadata__', '__proto__', 'constructor', `${name}\u0000`, name.toUpperCase()]);
      delete header[name]; header[to] = entry; what = `${name} renamed ${JSON.stringify(to)}`; break;
    }
    case 'metadata': header.__metadata__ = pick(r, [null, [], 5, { format: 7 }, { format: null }, { __proto__: 'x' }, 'pt']); what = `__metadata__ -> ${JSON.stringify(header.__metadata__)}`; break;
    case 'many': {
      const count = pick(r, [1000, 20000]);
      for (let i = 0; i < count; i++) header[`extra.${i}`] = { dtype: 'F32', shape: [0], data_offsets: [0, 0] };
      what = `${count} empty tensors added`; break;
    }
    default: {
      const pad = pick(r, [' ', '\u0000', '\t', '\n', '\u00a0']).repeat(int(r, 1, 64));
      return { data: joinSafetensors(JSON.stringify(header) + pad, data), what: `header padded with ${pad.length} x ${JSON.stringify(pad[0])}` };
    }
  }
  if (name !== '__none__' && header[name] === undefined && !what.includes('renamed')) header[name] = entry;
  return { data: joinSafetensors(JSON.stringify(header), data), what };
}

// ---- the parsers -------------------------------------------------------------------------

interface Seed { path: string; data: Buffer; family?: string }
interface ParserSpec {
  name: string;
  /** Valid files of the repo the inputs start from (loaded once). */
  seeds(): Promise<Seed[]>;
  /** Writes the mutated input (and the files it needs) into `dir`, returns the mutation. */
  write(r: Rand, seed: Seed, dir: string): Promise<string>;
  /** Parses what is in `dir` (`r` continues the input's generator, for choices of the parse). */
  run(dir: string, seed: Seed, r: Rand): Promise<unknown>;
}

const repoFile = async (path: string, family?: string): Promise<Seed> => ({ path, data: await readFile(join(ROOT, path)), ...(family ? { family } : {}) });
const FIXTURES = ['tiny-llava', 'tiny-llava-new-names', 'tiny-llava-next', 'tiny-qwen2-vl', 'tiny-qwen2_5-vl'];
const familyOfFixture = (dir: string) => (dir.includes('next') ? 'llava_next' : dir.includes('qwen') ? 'qwen' : 'llava');

/** A JSON file mutated into `dir/name`, the other files of the seed's folder copied unmutated. */
function jsonParser(name: string, file: string, seedPaths: () => Array<[string, string?]>, run: ParserSpec['run'], companions: string[] = []): ParserSpec {
  return {
    name,
    seeds: () => Promise.all(seedPaths().map(([p, f]) => repoFile(p, f))),
    async write(r, seed, dir) {
      const m = mutateJsonFile(r, seed.data);
      await writeFile(join(dir, file), m.data);
      for (const c of companions) await writeFile(join(dir, c), await readFile(join(ROOT, dirname(seed.path), c)).catch(() => Buffer.from('{}')));
      return `${seed.path}: ${m.what}`;
    },
    run,
  };
}

let tinyProcessor: ProcessorConfig | undefined;
const smallImage = async () => sharp({ create: { width: 12, height: 9, channels: 3, background: { r: 200, g: 30, b: 90 } } }).png().toBuffer();
let probeImage: Buffer | undefined;

/** A parsed processor config is also used once, on a small image, unless its output would be large (memory, not a fault). */
async function probe(config: ProcessorConfig): Promise<void> {
  const side = Math.max(config.cropHeight, config.cropWidth, config.resizeShortestEdge);
  if (side > 512) return;
  probeImage ??= await smallImage();
  await preprocessImage(probeImage, config);
}

const SPECS: ParserSpec[] = [
  jsonParser('config', 'config.json', () => [[`${TINY}/config.json`], ...FIXTURES.map((f) => [`test/fixtures/${f}/config.json`] as [string])], async (dir) => {
    // As loadVLM: the family from `architectures`, then its parser.
    const family = (await familyOf(dir)).name;
    if (family === 'llava') return loadLlavaConfig(dir);
    const path = join(dir, 'config.json'), json = await readJsonFile(path, 'config.json');
    return family === 'llava_next' ? parseLlavaNextConfig(json, path) : parseQwenVLConfig(json, path);
  }),
  jsonParser('preprocessor', 'preprocessor_config.json', () => [[`${TINY}/preprocessor_config.json`, 'llava'], ...FIXTURES.map((f) => [`test/fixtures/${f}/preprocessor_config.json`, familyOfFixture(f)] as [string, string])], async (dir, seed) => {
    const path = join(dir, 'preprocessor_config.json');
    if (seed.family === 'llava') return probe(await loadProcessorConfig(dir));
    const json = await readJsonFile(path, 'preprocessor_config.json');
    if (seed.family === 'llava_next') return probe(parseLlavaNextProcessorConfig(json, path, 32));
    return parseQwenVLProcessorConfig(json, path);
  }),
  jsonParser('tokenizer', 'tokenizer.json', () => [[`${TINY}/tokenizer.json`], [`test/fixtures/tiny-llava/tokenizer.json`], [`test/fixtures/tiny-qwen2-vl/tokenizer.json`]], runTokenizer, ['tokenizer_config.json']),
  jsonParser('tokenizer_config', 'tokenizer_config.json', () => [[`${TINY}/tokenizer_config.json`], [`test/fixtures/tiny-llava/tokenizer_config.json`], [`test/fixtures/tiny-qwen2-vl/tokenizer_config.json`]], runTokenizer, ['tokenizer.json']),
  {
    name: 'safetensors',
    seeds: () => Promise.all([`${TINY}/grip/pruner.safetensors`, `${TINY}/grip/warmup/pruner.safetensors`, 'test/fixtures/tiny-llava/model.safetensors', 'test/fixtures/tiny-qwen2-vl/model.safetensors'].map((p) => repoFile(p))),
    async write(r, seed, dir) {
      const m = mutateSafetensors(r, seed.data);
      await writeFile(join(dir, 'model.safetensors'), m.data);
      return `${seed.path}: ${m.what}`;
    },
    async run(dir) {
      const file = await SafetensorsFile.open(join(dir, 'model.safetensors'));
      try {
        for (const name of file.names) {
          const info = file.info(name);
          if (['F32', 'F16', 'BF16', 'I32'].includes(info.dtype)) await file.read(name);
        }
      } finally {
        await file.close();
      }
    },
  },
  {
    // A GRIP checkpoint: grip.json mutated (mostly) or pruner.safetensors's header.
    name: 'grip',
    seeds: () => Promise.all([`${TINY}/grip`, `${TINY}/grip/warmup`].map(async (d) => ({ path: `${d}/grip.json`, data: await readFile(join(ROOT, d, 'grip.json')) }))),
    async write(r, seed, dir) {
      const pruner = await readFile(join(ROOT, dirname(seed.path), 'pruner.safetensors'));
      if (r() < 0.7) {
        const m = mutateJsonFile(r, seed.data);
        await writeFile(join(dir, 'grip.json'), m.data);
        await writeFile(join(dir, 'pruner.safetensors'), pruner);
        return `${seed.path}: ${m.what}`;
      }
      const m = mutateSafetensors(r, pruner);
      await writeFile(join(dir, 'grip.json'), seed.data);
      await writeFile(join(dir, 'pruner.safetensors'), m.data);
      return `${dirname(seed.path)}/pruner.safetensors: ${m.what}`;
    },
    run: (dir) => GripPruner.load(dir),
  },
  jsonParser('state', 'state.json', () => [[`${TINY}/grip/state.json`]], (dir) => readRunState(join(dir, 'state.json'))),
  {
    // Images through sharp: small PNG, JPEG, WebP, GIF and TIFF renderings of a picture of the repo.
    name: 'image',
    async seeds() {
      const picture = await readFile(join(ROOT, 'docs/demo-example.png'));
      const small = sharp(picture).resize(24, 18);
      const seeds: Seed[] = [{ path: 'docs/demo-example.png', data: picture }];
      for (const format of ['png', 'jpeg', 'webp', 'gif', 'tiff'] as const) {
        seeds.push({ path: `docs/demo-example.png as a 24x18 ${format}`, data: await small.clone().toFormat(format).toBuffer() });
      }
      return seeds;
    },
    async write(r, seed, dir) {
      const m = mutateBytes(r, seed.data);
      await writeFile(join(dir, 'image'), m.data);
      return `${seed.path}: ${m.what}`;
    },
    async run(dir, _seed, r) {
      tinyProcessor ??= await loadProcessorConfig(join(ROOT, TINY));
      // Half from a path, half from bytes: both decode paths.
      const path = join(dir, 'image');
      return preprocessImage(r() < 0.5 ? await readFile(path) : path, tinyProcessor);
    },
  },
];

async function runTokenizer(dir: string): Promise<unknown> {
  const tokenizer = await TextTokenizer.load(dir);
  const ids = tokenizer.encode(buildPrompt(tokenizer, 'What colour is the square?', { template: 'raw' }));
  return tokenizer.decode(ids);
}

export const PARSER_NAMES = SPECS.map((s) => s.name);

/** The generator of input `index` of `parser` under `seed`. */
function inputRng(seed: number, parser: string, index: number): Rand {
  let h = Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) >>> 0;
  for (let i = 0; i < parser.length; i++) h = Math.imul(h ^ parser.charCodeAt(i), 0x01000193) >>> 0;
  h = (h ^ Math.imul(index + 1, 0xc2b2ae35)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
  return rng(h ^ (h >>> 13));
}

const TIMEOUT = Symbol('timeout');

export async function fuzzParsers(o: ParserFuzzOptions): Promise<{ report: Record<string, ParserReport>; findings: ParserFinding[] }> {
  const specs = o.only === undefined ? SPECS : SPECS.filter((s) => s.name === o.only);
  if (specs.length === 0) throw new GripError('ERR_GRIP_RANGE', `expected one of ${PARSER_NAMES.join(', ')} for --parser but received ${o.only}`);
  const limitMs = o.limitMs ?? 2000;
  const report: Record<string, ParserReport> = {};
  const findings: ParserFinding[] = [];
  const seeds = new Map<string, Seed[]>();
  const dirs = new Map<string, string>();
  for (const s of specs) {
    report[s.name] = { inputs: 0, ok: 0, errors: {}, maxMs: 0 };
    seeds.set(s.name, await s.seeds());
    dirs.set(s.name, await mkdtemp(join(tmpdir(), `grip-fuzz-${s.name}-`)));
  }
  try {
    for (let i = 0; i < o.inputs; i++) {
      const spec = specs[i % specs.length]!;
      const index = (o.firstInput ?? 0) + Math.floor(i / specs.length);
      const r = inputRng(o.seed, spec.name, index), rep = report[spec.name]!, dir = dirs.get(spec.name)!;
      const seed = pick(r, seeds.get(spec.name)!);
      const mutation = await spec.write(r, seed, dir);
      o.trace?.(`${spec.name} ${index} [${mutation}]`);
      const finding = (problem: string) => findings.push({ seed: o.seed, parser: spec.name, input: index, mutation, problem });
      rep.inputs++;
      const started = performance.now();
      let timer: NodeJS.Timeout | undefined;
      try {
        const outcome = await Promise.race([spec.run(dir, seed, r), new Promise((resolve) => { timer = setTimeout(() => resolve(TIMEOUT), limitMs); })]);
        if (outcome === TIMEOUT) finding(`no result within ${limitMs} ms`);
        else rep.ok++;
      } catch (error) {
        if (error instanceof GripError && CODES.has(error.code)) rep.errors[error.code] = (rep.errors[error.code] ?? 0) + 1;
        else {
          const e = error as Error;
          const at = typeof e?.stack === 'string' ? (e.stack.split('\n').find((l) => l.includes('/lib/')) ?? '').trim() : '';
          finding(`${e instanceof GripError ? `GripError with code ${String(e.code)}` : (e?.name ?? typeof error)}: ${String(e?.message ?? error).slice(0, 300)}${at ? ` (${at})` : ''}`);
        }
      } finally {
        clearTimeout(timer);
      }
      const ms = performance.now() - started;
      rep.maxMs = Math.max(rep.maxMs, Math.round(ms));
      if (ms > limitMs && !findings.some((f) => f.parser === spec.name && f.input === index)) finding(`took ${Math.round(ms)} ms (limit ${limitMs} ms)`);
    }
  } finally {
    for (const [, dir] of dirs) {
      if (o.firstInput !== undefined) o.kept?.(dir);
      else await rm(dir, { recursive: true, force: true });
    }
  }
  return { report, findings };
}
