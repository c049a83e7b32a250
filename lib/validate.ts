// validate.ts — every argument check of the public API, one helper per kind,
// one message shape: "expected X for Y but received Z" (as sharp's is.*).
// The native layer checks again (for C callers); these run first so a JS
// caller gets a precise message naming its own argument.
import { GripError } from './errors.js';
import { Tensor as TensorClass, checkShape, describe, type DType, type Tensor } from './tensor.js';

function fail(code: GripError['code'], expected: string, what: string, received: string): never {
  throw new GripError(code, `expected ${expected} for ${what} but received ${received}`);
}

const shapeText = (shape: readonly number[]) => `[${shape.join(', ')}]`;

/** The checks; an explicit type, because TypeScript needs one for assertion signatures. */
export interface Check {
  fail(code: GripError['code'], expected: string, what: string, received: string): never;
  shape(shape: unknown, what: string): asserts shape is readonly number[];
  oneOf<T extends string>(value: unknown, what: string, allowed: readonly T[]): asserts value is T;
  integer(value: unknown, what: string, min: number, max: number): asserts value is number;
  number(value: unknown, what: string, test: (v: number) => boolean, expected: string): asserts value is number;
  tensor(value: unknown, what: string, layout: string, dtypes: readonly DType[], expected?: readonly (number | undefined)[]): asserts value is Tensor;
  signal(value: unknown, what: string): asserts value is AbortSignal | undefined;
}

export const check: Check = {
  fail,

  /** A list of dimension extents: integers >= 0, at most 8 of them (the check lives with the Tensor type). */
  shape: checkShape,

  oneOf<T extends string>(value: unknown, what: string, allowed: readonly T[]): asserts value is T {
    if (!allowed.includes(value as T)) {
      fail('ERR_GRIP_RANGE', `one of ${allowed.map((a) => `'${a}'`).join(', ')}`, what, describe(value));
    }
  },

  integer(value: unknown, what: string, min: number, max: number): asserts value is number {
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
      fail('ERR_GRIP_RANGE', `an integer in [${min}, ${max}]`, what, describe(value));
    }
  },

  number(value: unknown, what: string, test: (v: number) => boolean, expected: string): asserts value is number {
    if (typeof value !== 'number' || !test(value)) fail('ERR_GRIP_RANGE', expected, what, describe(value));
  },

  /**
   * A Tensor with `layout.length` dimensions (layout like "[B,N,D]"), a dtype
   * from `dtypes`, and extents matching `expected` where it gives a number.
   */
  tensor(value: unknown, what: string, layout: string, dtypes: readonly DType[], expected?: readonly (number | undefined)[]): asserts value is Tensor {
    if (!(value instanceof TensorClass)) fail('ERR_GRIP_SHAPE', `a Tensor ${layout}`, what, describe(value));
    const ndim = layout.split(',').length - (layout === '[]' ? 1 : 0);
    if (value.shape.length !== ndim) {
      fail('ERR_GRIP_SHAPE', `${ndim} dimensions ${layout}`, what, `${value.shape.length} dimensions ${shapeText(value.shape)}`);
    }
    if (expected && expected.some((e, i) => e !== undefined && e !== value.shape[i])) {
      const want = value.shape.map((d, i) => expected[i] ?? d);
      fail('ERR_GRIP_SHAPE', `${shapeText(want)} ${layout}`, what, shapeText(value.shape));
    }
    if (!dtypes.includes(value.dtype)) {
      const list = dtypes.length === 1 ? dtypes[0]! : `${dtypes.slice(0, -1).join(', ')} or ${dtypes[dtypes.length - 1]}`;
      fail('ERR_GRIP_DTYPE', list, `dtype of ${what}`, value.dtype);
    }
    if (value.data instanceof Object && 'handle' in value.data && value.data.handle === null) {
      fail('ERR_GRIP_DEVICE', 'a live device buffer', what, 'a disposed one');
    }
    // A Tensor built over a too-short view: the addon would refuse it too, but
    // some of its entry points read further arguments after a failed parse (fuzz finding).
    if (ArrayBuffer.isView(value.data) && value.data.byteLength < value.bytes) {
      fail('ERR_GRIP_SHAPE', `at least ${value.bytes} bytes`, `data of ${what}`, String(value.data.byteLength));
    }
  },

  /** An AbortSignal or undefined. */
  signal(value: unknown, what: string): asserts value is AbortSignal | undefined {
    if (value !== undefined && !(value instanceof AbortSignal)) fail('ERR_GRIP_RANGE', 'an AbortSignal', what, describe(value));
  },
};
