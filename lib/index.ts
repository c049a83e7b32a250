// index.ts — the public API of grip-vlm.
export { GripError, type GripErrorCode } from './errors.js';
export { Tensor, DeviceBuffer, tensor, zeros, type DType, type Device, type HostData } from './tensor.js';
export { ops, SCORER_PARAM_NAMES, type OpOptions, type ScorerParams, type AdamWOptions, type MatmulOptions, type OutOptions, type TopkResult, type GumbelTopkResult } from './ops.js';
export { info, setBackend, getBackend, setNumThreads, setEmulatorSchedule, type Backend, type Info } from './backend.js';

import { Tensor } from './tensor.js';

/** A copy of `t` on the CUDA device. */
export function toDevice(t: Tensor): Tensor {
  return t.toDevice();
}

/** A copy of `t` in host memory (`t` itself when it is already there). */
export function toHost(t: Tensor): Tensor {
  return t.toHost();
}
