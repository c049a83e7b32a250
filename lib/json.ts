// json.ts — reading the JSON files grip-vlm loads (config.json,
// preprocessor_config.json, tokenizer.json, a safetensors header or index,
// grip.json, a run's state.json) with one error shape: a file that cannot be
// read is ERR_GRIP_IO ("expected a readable config.json for PATH but received
// ENOENT: no such file or directory"), text that is not a JSON object is
// ERR_GRIP_FORMAT ("expected a JSON object for PATH but received invalid JSON
// starting ..."), and JsonFields checks the fields of an object read so.
import { readFile } from 'node:fs/promises';
import { GripError } from './errors.js';
import { describe } from './tensor.js';

export const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * A JSON value as it appears in a message: lists as "[a, b]", long text cut,
 * lists nested deeper than 3 as "[...]" (a file nesting thousands of lists
 * overflowed the stack here: a parser-fuzzer finding).
 */
export function jsonText(value: unknown, depth = 0): string {
  if (Array.isArray(value)) {
    if (depth >= 3) return '[...]';
    return `[${value.map((v) => (typeof v === 'number' ? String(v) : jsonText(v, depth + 1))).join(', ')}]`;
  }
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = describe(value); // too deep for JSON.stringify
  }
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/** The start of text that failed to parse, for "received invalid JSON starting ...". */
export function invalidJsonText(text: string): string {
  return `invalid JSON starting ${JSON.stringify(text.slice(0, 40))}`;
}

/** An IO failure as ERR_GRIP_IO naming the path ("ENOENT: no such file or directory"); a GripError passes through. */
export function ioError(error: unknown, expected: string, path: string): GripError {
  if (error instanceof GripError) return error;
  const e = error as { code?: unknown; message?: unknown } | null;
  const message = typeof e?.message === 'string' ? e.message : String(error);
  // Node's messages read "ENOENT: no such file or directory, open '/p'": keep what precedes the syscall.
  const reason = /^[A-Z0-9_]+: [^,]+/.exec(message)?.[0] ?? (typeof e?.code === 'string' ? e.code : message);
  return new GripError('ERR_GRIP_IO', `expected ${expected} for ${path} but received ${reason}`);
}

/** `text` parsed as a JSON object; `where` (a path, "the header of PATH") is named in the error. */
export function parseJsonObject(text: string, where: string): Record<string, unknown> {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new GripError('ERR_GRIP_FORMAT', `expected a JSON object for ${where} but received ${invalidJsonText(text)}`);
  }
  if (!isRecord(json)) throw new GripError('ERR_GRIP_FORMAT', `expected a JSON object for ${where} but received ${describe(json)}`);
  return json;
}

/**
 * The JSON object in the file at `path`; `what` names the file in an IO
 * error ("config.json": "expected a readable config.json for PATH ...").
 */
export async function readJsonFile(path: string, what: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw ioError(error, `a readable ${what}`, path);
  }
  return parseJsonObject(text, path);
}

/** `"a" or "b"`, `"a", "b" or "c"`. */
const alternatives = (allowed: readonly string[]) => {
  const quoted = allowed.map((a) => JSON.stringify(a));
  return quoted.length === 1 ? quoted[0]! : `${quoted.slice(0, -1).join(', ')} or ${quoted[quoted.length - 1]}`;
};

/**
 * Checks the fields of one JSON object of a file grip-vlm wrote (grip.json,
 * state.json): each fault is ERR_GRIP_FORMAT "expected KEY EXPECTED for WHERE
 * but received VALUE" (KEY with its parents: "model.hiddenSize").
 */
export class JsonFields {
  constructor(readonly json: Record<string, unknown>, readonly where: string, readonly prefix = '') {}

  fail(key: string, expected: string, value: unknown): never {
    const received = value === undefined ? 'nothing' : jsonText(value);
    throw new GripError('ERR_GRIP_FORMAT', `expected ${this.prefix}${key} ${expected} for ${this.where} but received ${received}`);
  }

  has(key: string): boolean {
    return this.json[key] !== undefined;
  }

  /** Exactly `want`. */
  literal<T extends string>(key: string, want: T): T {
    const value = this.json[key];
    if (value !== want) this.fail(key, JSON.stringify(want), value);
    return want;
  }

  string(key: string): string {
    const value = this.json[key];
    if (typeof value !== 'string' || value === '') this.fail(key, 'a non-empty string', value);
    return value;
  }

  oneOf<T extends string>(key: string, allowed: readonly T[]): T {
    const value = this.json[key];
    if (!allowed.includes(value as T)) this.fail(key, alternatives(allowed), value);
    return value as T;
  }

  integer(key: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
    const value = this.json[key];
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
      this.fail(key, max === Number.MAX_SAFE_INTEGER ? `an integer >= ${min}` : `an integer in [${min}, ${max}]`, value);
    }
    return value;
  }

  number(key: string, test: (value: number) => boolean, expected: string): number {
    const value = this.json[key];
    if (typeof value !== 'number' || !test(value)) this.fail(key, expected, value);
    return value;
  }

  /** The fields of a nested object. */
  object(key: string): JsonFields {
    const value = this.json[key];
    if (!isRecord(value)) this.fail(key, 'an object', value);
    return new JsonFields(value, this.where, `${this.prefix}${key}.`);
  }
}
