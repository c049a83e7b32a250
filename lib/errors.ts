// errors.ts — the one error type of grip-vlm. Native failures arrive as
// GripError too (the addon constructs this class).

export type GripErrorCode =
  | 'ERR_GRIP_SHAPE'
  | 'ERR_GRIP_DTYPE'
  | 'ERR_GRIP_RANGE'
  | 'ERR_GRIP_DEVICE'
  | 'ERR_GRIP_CUDA'
  | 'ERR_GRIP_UNSUPPORTED'
  | 'ERR_GRIP_FORMAT'
  | 'ERR_GRIP_IO'
  | 'ERR_GRIP_INTERNAL';

class GripErrorClass extends Error {
  readonly code: GripErrorCode;
  constructor(code: GripErrorCode, message: string) {
    super(message);
    this.name = 'GripError';
    this.code = code;
  }
}

// One class per process even when both the ESM and the CommonJS builds are
// loaded (the dual-package hazard): `instanceof GripError` holds for errors
// from either copy, and the addon, which holds one constructor, serves both.
const registry = globalThis as { [key: symbol]: typeof GripErrorClass | undefined };
const KEY = Symbol.for('grip-vlm.GripError');

/** Every failure of grip-vlm: `code` says the kind, `message` reads "expected X for Y but received Z". */
export const GripError: typeof GripErrorClass = (registry[KEY] ??= GripErrorClass);
export type GripError = GripErrorClass;
