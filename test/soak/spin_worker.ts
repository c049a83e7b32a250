// spin_worker.ts — a worker for test/concurrency.test.ts's terminate() cases: it
// loads only the ops, says it is spinning, then calls ops until it is terminated:
// 'async' ones (terminate() lands with work in flight on the libuv pool) or 'sync'
// ones in a loop that never yields (terminate() lands inside a native call).
import { parentPort, workerData } from 'node:worker_threads';
import { OP_NAMES, validCall } from '../fuzz/ops.fuzz.ts';

const { seed, mode } = workerData as { seed: number; mode: 'async' | 'sync' };
const calls = OP_NAMES.map((op, i) => validCall(op, seed, i));
parentPort!.postMessage({ spinning: true });
if (mode === 'sync') for (let i = 0; ; i++) calls[i % calls.length]!.run(true);
for (let i = 0; ; i++) await calls[i % calls.length]!.run(false);
