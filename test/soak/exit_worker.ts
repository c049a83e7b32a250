// exit_worker.ts — a worker for test/concurrency.test.ts: it calls the addon
// with a tensor whose shape runs process.exit() when the native code reads
// it, so the worker's env stops in the middle of a native call, and every
// N-API step the call takes after that fails (deterministically, where
// terminate() from outside lands there only now and then).
import { workerData } from 'node:worker_threads';
import { native } from '../../lib/native.ts';

const { code } = workerData as { code: number };
const shape: number[] = [1, 4];
Object.defineProperty(shape, 1, { get: () => process.exit(code) });
const tensor = (dtype: string, dims: number[], data: ArrayBufferView) => ({ dtype, shape: dims, device: 'cpu', data });
// softmax parses x, then reads its `log` flag: the flag's read is an N-API step after the exit.
native().softmax(0, tensor('f32', shape, new Float32Array(4)), false, tensor('f32', [1, 4], new Float32Array(4)));
throw new Error('the native call returned after process.exit()');
