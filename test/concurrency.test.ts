// concurrency.test.ts — the addon under concurrency (issue 22): 64 async op
// calls in flight at once give their serial results bit for bit, 16
// concurrent generations on the embedded model give their serial answers,
// and the addon loaded in several worker_threads at once computes what the
// main thread computes and unloads cleanly (also when a worker is terminated
// with ops in flight).
import { Worker } from 'node:worker_threads';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { memoryStats } from '../lib/index.ts';
import { defaultPruner, embeddedModelDir } from '../lib/demo.ts';
import { loadVLM, type GenerateResult, type VLM } from '../lib/model/vlm.ts';
import { normErr } from './helpers.ts';
import { OP_NAMES, validCall, type ValidCall } from './fuzz/ops.fuzz.ts';
import { shapesRequests } from './soak/soak.ts';

const SEED = 64;
const calls = (count: number): ValidCall[] => Array.from({ length: count }, (_, i) => validCall(OP_NAMES[i % OP_NAMES.length]!, SEED, i));
/** Every number of every result, as float64 bits (NaN payloads aside: Object.is). */
const numbers = (call: ValidCall, result: unknown): number[][] => call.expectations(result).map((e) => Array.from(e.got));

function assertSameBits(got: number[][], want: number[][], what: string): void {
  assert.is(got.length, want.length, `${what}: number of outputs`);
  got.forEach((g, o) => {
    assert.is(g.length, want[o]!.length, `${what}: length of output ${o}`);
    const at = g.findIndex((v, i) => !Object.is(v, want[o]![i]));
    assert.is(at, -1, `${what}: output ${o} differs at ${at}: ${g[at]} vs ${want[o]![at]}`);
  });
}

test('64 concurrent async op calls (every op) equal their serial results bit for bit, and the reference', async () => {
  const serialCalls = calls(64), serial: number[][][] = [];
  for (const c of serialCalls) serial.push(numbers(c, await c.run(false)));
  const concurrentCalls = calls(64);
  const results = await Promise.all(concurrentCalls.map((c) => c.run(false)));
  concurrentCalls.forEach((c, i) => {
    assertSameBits(numbers(c, results[i]), serial[i]!, `call ${i} (${c.op})`);
    for (const e of c.expectations(results[i])) {
      if (e.tol === 0) assertSameBits([Array.from(e.got)], [Array.from(e.want)], `call ${i} (${c.op}) ${e.what} against the reference`);
      else assert.ok(normErr(e.got, e.want) <= e.tol, `call ${i} (${c.op}) ${e.what}: normalised error ${normErr(e.got, e.want)} against the reference (tolerance ${e.tol})`);
    }
  });
  assert.is(memoryStats().pendingOps, 0, 'no async op is left pending');
});

let asyncModel: VLM;
const pick = (r: GenerateResult) => ({ text: r.text, tokenIds: Array.from(r.tokenIds), kept: Array.from(r.kept.indices), prefillTokens: r.prefillTokens });

test('16 concurrent generations (unpruned, GRIP 0.25 and 0.11) equal their serial answers', async () => {
  asyncModel = await loadVLM(embeddedModelDir(), { backend: 'cpu', opMode: 'async' });
  const requests = await shapesRequests(16, 6, await defaultPruner(asyncModel));
  const serial: ReturnType<typeof pick>[] = [];
  for (const r of requests) serial.push(pick(await asyncModel.generate(r)));
  const concurrent = (await Promise.all(requests.map((r) => asyncModel.generate(r)))).map(pick);
  concurrent.forEach((c, i) => assert.equal(c, serial[i], `request ${i} (keep ${requests[i]!.keepRatio ?? 1})`));
  assert.ok(new Set(serial.map((s) => s.kept.length)).size === 3, 'the three keep ratios keep different numbers of tokens');
});

// A worker's main module does not go through the --import tsx hooks of this
// thread: the worker registers tsx itself, then imports the TypeScript worker.
const workerSource = (file: string) =>
  `import('tsx/esm/api').then(({ register }) => { register(); return import(${JSON.stringify(new URL(file, import.meta.url).href)}); })`;
const WORKER = workerSource('./soak/worker.ts'), SPIN_WORKER = workerSource('./soak/spin_worker.ts');
function startWorker(data: Record<string, unknown>): Worker {
  return new Worker(WORKER, { eval: true, workerData: { seed: SEED, ...data } });
}
const startSpinning = (mode: 'async' | 'sync') => new Worker(SPIN_WORKER, { eval: true, workerData: { seed: SEED, mode } });
const EXIT_WORKER = workerSource('./soak/exit_worker.ts');
// Only the code: an 'error' rejects firstMessage, and a second rejection here, awaited later, would go unhandled.
const exited = (w: Worker) => new Promise<number>((resolve) => { w.once('exit', resolve); });
/** The worker's first message; a worker that errs or exits first rejects (instead of leaving the test to wait on an empty event loop). */
const firstMessage = <T>(w: Worker, i: number) => new Promise<T>((resolve, reject) => {
  w.once('message', resolve);
  w.once('error', (e) => reject(new Error(`worker ${i} failed before posting: ${e.stack ?? e}`)));
  w.once('exit', (code) => reject(new Error(`worker ${i} exited with code ${code} before posting its results`)));
});

test('4 worker_threads at once load the addon, run ops and generations, equal the main thread, and exit cleanly', async () => {
  const serialCalls = calls(44), main: number[][][] = [];
  for (const [i, c] of serialCalls.entries()) main.push(numbers(c, i % 2 === 0 ? c.run(true) : await c.run(false)));
  const requests = await shapesRequests(3, 6, await defaultPruner(asyncModel));
  const mainTokens: number[][] = [];
  for (const r of requests) mainTokens.push(Array.from((await asyncModel.generate(r)).tokenIds));
  const workers = Array.from({ length: 4 }, () => startWorker({ calls: 44, generations: 3 }));
  const codes: Promise<number>[] = workers.map(exited);
  const messages = await Promise.all(workers.map((w, i) => firstMessage<{ ops: number[][][]; generations: number[][] }>(w, i)));
  messages.forEach((m, w) => {
    m.ops.forEach((o, i) => assertSameBits(o, main[i]!, `worker ${w}, call ${i} (${serialCalls[i]!.op})`));
    assert.equal(m.generations, mainTokens, `worker ${w}: generations`);
  });
  assert.equal(await Promise.all(codes), [0, 0, 0, 0], 'exit codes');
  // After the workers are gone, the main thread's addon (and its GripError) still works.
  const after = validCall('topk', SEED, 2);
  assertSameBits(numbers(after, await after.run(false)), main[2]!, 'main thread after the workers');
});

test('workers terminated with async ops in flight unload without a crash, and the main thread goes on', async () => {
  const workers = Array.from({ length: 3 }, () => startSpinning('async'));
  await Promise.all(workers.map((w, i) => firstMessage(w, i)));
  await new Promise((resolve) => setTimeout(resolve, 50));
  const codes = await Promise.all(workers.map((w) => w.terminate()));
  assert.equal(codes, [1, 1, 1], 'terminate() ends each worker (exit code 1)');
  const c = validCall('matmul', SEED, 9), again = validCall('matmul', SEED, 9);
  assertSameBits(numbers(c, await c.run(false)), numbers(again, again.run(true)), 'main thread after the terminations');
  // The terminated workers' pending ops settle (their envs are gone); none stays counted.
  for (let i = 0; i < 100 && memoryStats().pendingOps !== 0; i++) await new Promise((resolve) => setTimeout(resolve, 10));
  assert.is(memoryStats().pendingOps, 0, 'pending ops after the terminations');
});

// Regressions (CI, stop 29): a worker's env stopping inside a sync native call
// makes the call's next N-API steps fail, and node-addon-api aborted the whole
// process over them, in two ways: its napi_throw of the failure, refused while
// the env shuts down (FATAL ERROR: Error::ThrowAsJavaScriptException
// napi_throw), and, once that was swallowed, the next call on the empty value
// the failed step handed back (FATAL ERROR: Error::New
// napi_get_last_error_info). The first: without the fix about half of these
// rounds abort, so 8 rounds leave it under 1% to pass by luck.
test('workers terminated inside sync native calls (8 rounds, random moments) never abort the process', async () => {
  for (let round = 0; round < 8; round++) {
    const workers = Array.from({ length: 3 }, () => startSpinning('sync'));
    await Promise.all(workers.map((w, i) => firstMessage(w, i)));
    await new Promise((resolve) => setTimeout(resolve, (round * 7) % 40));
    assert.equal(await Promise.all(workers.map((w) => w.terminate())), [1, 1, 1], `round ${round}: exit codes`);
  }
  const c = validCall('topk', SEED, 2), again = validCall('topk', SEED, 2);
  assertSameBits(numbers(c, c.run(true)), numbers(again, await again.run(false)), 'main thread after the terminations');
});

test('a worker that exits while the addon reads its arguments (process.exit in a getter) ends with its code, not an abort', async () => {
  const worker = new Worker(EXIT_WORKER, { eval: true, workerData: { code: 7 } });
  const errors: unknown[] = [];
  worker.on('error', (e) => errors.push(e));
  assert.is(await exited(worker), 7, 'exit code');
  assert.equal(errors, [], 'worker errors');
  const c = validCall('softmax', SEED, 1), again = validCall('softmax', SEED, 1);
  assertSameBits(numbers(c, c.run(true)), numbers(again, await again.run(false)), 'main thread after the exit');
});

test.run();
