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

/** Every failure of grip-vlm: `code` says the kind, `message` reads "expected X for Y but received Z". */
export class GripError extends Error {
  readonly code: GripErrorCode;
  constructor(code: GripErrorCode, message: string) {
    super(message);
    this.name = 'GripError';
    this.code = code;
  }
}
