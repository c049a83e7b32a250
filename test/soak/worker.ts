// worker.ts — the worker_threads side of test/concurrency.test.ts: loads the
// package in its own env, runs the valid op calls (sync and async alternating)
// and concurrent generations it is asked for, posts their numbers (spin_worker.ts
// is the one that runs until terminated).
import { parentPort, workerData } from 'node:worker_threads';
import { defaultPruner, embeddedModelDir } from '../../lib/demo.ts';
import { loadVLM } from '../../lib/model/vlm.ts';
import { OP_NAMES, validCall } from '../fuzz/ops.fuzz.ts';
import { shapesRequests } from './soak.ts';

const { seed, calls, generations } = workerData as { seed: number; calls: number; generations: number };
const ops: number[][][] = [];
for (let i = 0; i < calls; i++) {
  const c = validCall(OP_NAMES[i % OP_NAMES.length]!, seed, i);
  ops.push(c.expectations(i % 2 === 0 ? c.run(true) : await c.run(false)).map((e) => Array.from(e.got)));
}
let tokens: number[][] = [];
if (generations > 0) {
  const model = await loadVLM(embeddedModelDir(), { backend: 'cpu', opMode: 'async' });
  const requests = await shapesRequests(generations, 6, await defaultPruner(model));
  tokens = (await Promise.all(requests.map((r) => model.generate(r)))).map((r) => Array.from(r.tokenIds));
}
parentPort!.postMessage({ ops, generations: tokens });
