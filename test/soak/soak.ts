// soak.ts — memory soak phases (issue 22): many calls of each public op, many
// generations on the embedded model, many served requests; each phase reads
// memory after a forced GC at its start (warm-up excluded) and at its end.
// What must hold: the addon's native counters (memoryStats: device buffers,
// pending async ops) return to their baseline exactly, and RSS grows by less
// than a bound. test/soak.test.ts runs short phases; main.ts the long ones.
import { setImmediate as nextTurn } from 'node:timers/promises';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Pool } from 'undici';
import { deviceMemory, GripError, memoryStats, Tensor, type MemoryStats } from '../../lib/index.ts';
import { makeExamples, renderScene } from '../../lib/data/shapes/index.ts';
import { defaultPruner } from '../../lib/demo.ts';
import type { GenerateRequest, VLM } from '../../lib/model/vlm.ts';
import type { Pruner } from '../../lib/prune/pruner.ts';
import { startServer } from '../../lib/serve/server.ts';
import { OP_NAMES, validCall } from '../fuzz/ops.fuzz.ts';

/** global.gc, exposed at run time when node was not started with --expose-gc. */
const gc: () => void = (globalThis as { gc?: () => void }).gc ?? (() => {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
})();

export interface MemorySample extends MemoryStats {
  rssBytes: number;
  heapUsedBytes: number;
  /** Memory V8 has committed for its heap: its young generation and page release move RSS without any leak. */
  heapTotalBytes: number;
  /** Host tensors live in ArrayBuffers. */
  arrayBuffersBytes: number;
  /** The GPU's memory in use as its driver reports it (deviceMemory().usedBytes); -1 without a GPU. */
  deviceUsedBytes: number;
}

/** Memory after a full GC (twice, with turns between, so finalizers of native handles run). */
export async function settledMemory(): Promise<MemorySample> {
  for (let i = 0; i < 3; i++) {
    gc();
    await nextTurn();
  }
  const m = process.memoryUsage();
  return { rssBytes: m.rss, heapUsedBytes: m.heapUsed, heapTotalBytes: m.heapTotal, arrayBuffersBytes: m.arrayBuffers, deviceUsedBytes: deviceMemory()?.usedBytes ?? -1, ...memoryStats() };
}

export interface PhaseReport {
  phase: string;
  calls: number;
  warmupCalls: number;
  seconds: number;
  before: MemorySample;
  after: MemorySample;
  /** (after - before) / before of RSS. */
  rssGrowth: number;
  /** The same of the GPU's memory in use; null without a GPU. */
  deviceGrowth: number | null;
  /** Calls the device refused (a GripError ERR_GRIP_DEVICE or ERR_GRIP_UNSUPPORTED), by op: device phases only. */
  refused?: Record<string, number>;
  /** RSS at each tenth of the phase (bytes), after a GC: a leak climbs steadily, a settling heap flattens. */
  rssTrajectory: number[];
  /** The C heap's bytes in use at the same points (a leak of C memory climbs here). */
  mallocTrajectory: number[];
}

/** Runs `warmup` calls, samples, runs `calls` calls (sampling RSS each tenth), samples again. */
async function phase(name: string, warmup: number, calls: number, run: (i: number) => Promise<void>): Promise<PhaseReport> {
  for (let i = 0; i < warmup; i++) await run(i);
  const before = await settledMemory();
  const trajectory = [before.rssBytes], mallocTrajectory = [before.mallocInUseBytes];
  const t0 = performance.now();
  const step = Math.max(1, Math.ceil(calls / 10));
  for (let i = 0; i < calls; i++) {
    await run(warmup + i);
    if ((i + 1) % step === 0 && i + 1 < calls) {
      const m = await settledMemory();
      trajectory.push(m.rssBytes);
      mallocTrajectory.push(m.mallocInUseBytes);
    }
  }
  const seconds = (performance.now() - t0) / 1000;
  const after = await settledMemory();
  trajectory.push(after.rssBytes);
  mallocTrajectory.push(after.mallocInUseBytes);
  const deviceGrowth = before.deviceUsedBytes > 0 ? (after.deviceUsedBytes - before.deviceUsedBytes) / before.deviceUsedBytes : null;
  return { phase: name, calls, warmupCalls: warmup, seconds, before, after, rssGrowth: (after.rssBytes - before.rssBytes) / before.rssBytes, deviceGrowth, rssTrajectory: trajectory, mallocTrajectory };
}

/**
 * `callsPerOp` valid calls of every public op (test/fuzz's valid calls, fresh
 * inputs each), sync and async alternating, round robin over the ops.
 */
export function soakOps(callsPerOp: number, warmupPerOp = Math.ceil(callsPerOp / 10), seed = 22): Promise<PhaseReport> {
  const n = OP_NAMES.length;
  return phase(`${callsPerOp} calls of each of the ${n} ops`, warmupPerOp * n, callsPerOp * n, async (i) => {
    const result = validCall(OP_NAMES[i % n]!, seed, i).run(Math.floor(i / n) % 2 === 0);
    if (result instanceof Promise) await result;
  });
}

/** `value` with every Tensor in it (nested in arrays and plain objects) copied to the device; the copies are pushed to `copies`. */
function onDevice(value: unknown, copies: Tensor[]): unknown {
  if (value instanceof Tensor) {
    const d = value.toDevice();
    copies.push(d);
    return d;
  }
  if (Array.isArray(value)) return value.map((v) => onDevice(v, copies));
  if (value !== null && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, onDevice(v, copies)]));
  }
  return value;
}

/** Disposes every Tensor in `value` (an op's result: a tensor, or arrays and plain objects of them). */
function disposeAll(value: unknown): void {
  if (value instanceof Tensor) value.dispose();
  else if (Array.isArray(value)) value.forEach(disposeAll);
  else if (value !== null && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) Object.values(value).forEach(disposeAll);
}

/**
 * The device form of soakOps (a GPU only): the same valid calls with every
 * input tensor copied to the device first, results kept there; inputs and
 * results disposed after each call, so the addon's device counters and the
 * driver's memory in use must come back to where they were.
 */
export async function soakDeviceOps(callsPerOp: number, warmupPerOp = Math.ceil(callsPerOp / 10), seed = 22): Promise<PhaseReport> {
  const n = OP_NAMES.length, refused: Record<string, number> = {};
  const report = await phase(`${callsPerOp} calls of each of the ${n} ops on the device`, warmupPerOp * n, callsPerOp * n, async (i) => {
    const op = OP_NAMES[i % n]!, call = validCall(op, seed, i), copies: Tensor[] = [];
    try {
      let result = call.invoke(onDevice(call.args, copies) as unknown[], Math.floor(i / n) % 2 === 0);
      if (result instanceof Promise) result = await result;
      disposeAll(result);
    } catch (error) {
      if (!(error instanceof GripError && (error.code === 'ERR_GRIP_DEVICE' || error.code === 'ERR_GRIP_UNSUPPORTED'))) throw error;
      refused[`${op}: ${error.message}`] = (refused[`${op}: ${error.message}`] ?? 0) + 1;
    } finally {
      for (const t of copies) t.dispose();
    }
  });
  return { ...report, refused };
}

/** Requests on the embedded model's test scenes: unpruned and GRIP at 0.25 and 0.11 in turn. */
export async function shapesRequests(count: number, maxNewTokens: number, pruner: Pruner): Promise<GenerateRequest[]> {
  const examples = makeExamples('test', count, { questionsPerScene: 1 });
  const images = await Promise.all(examples.map((ex) => renderScene(ex.scene)));
  return examples.map((ex, i) => {
    const keepRatio = [1, 0.25, 0.11][i % 3]!;
    return { image: images[i]!, prompt: ex.question, template: 'llava-1.5', maxNewTokens, stopAtEos: false, ...(keepRatio < 1 ? { pruner, keepRatio } : {}) };
  });
}

/** `count` generations on `model` (the embedded model), 8 new tokens each. */
export async function soakGenerations(model: VLM, count: number, warmup = Math.max(3, Math.ceil(count / 10))): Promise<PhaseReport> {
  const requests = await shapesRequests(24, 8, await defaultPruner(model));
  return phase(`${count} generations${model.backend === 'cpu' ? '' : ` (${model.backend})`}`, warmup, count, async (i) => {
    await model.generate(requests[i % requests.length]!);
  });
}

/**
 * `count` streamed chat completions served by an in-process `grip serve`
 * (8 clients over an undici Pool); RSS is this process's: server and client.
 */
export async function soakServe(model: VLM, count: number, warmup = Math.max(16, Math.ceil(count / 10))): Promise<PhaseReport> {
  const server = await startServer({ model, port: 0, maxBatch: 8, maxQueue: 256 });
  const pool = new Pool(server.url, { connections: 8 });
  const examples = makeExamples('test', 16, { questionsPerScene: 1 });
  const bodies = await Promise.all(examples.map(async (ex, i) => JSON.stringify({
    model: server.modelId, max_tokens: 8, stream: true, keep_ratio: [1, 0.25, 0.11][i % 3],
    messages: [{ role: 'user', content: [{ type: 'text', text: ex.question }, { type: 'image_url', image_url: { url: `data:image/png;base64,${Buffer.from(await renderScene(ex.scene)).toString('base64')}` } }] }],
  })));
  const one = async (i: number) => {
    const { statusCode, body } = await pool.request({ path: '/v1/chat/completions', method: 'POST', headers: { 'content-type': 'application/json' }, body: bodies[i % bodies.length]! });
    const text = await body.text();
    if (statusCode !== 200 || !text.endsWith('data: [DONE]\n\n')) throw new Error(`request ${i}: status ${statusCode}, ${text.slice(-120)}`);
  };
  // Eight requests at a time: a batch of them per call of `phase`.
  const report = await phase(`${count} served requests (8 clients)`, Math.ceil(warmup / 8), Math.ceil(count / 8), async (i) => {
    await Promise.all(Array.from({ length: 8 }, (_, c) => one(8 * i + c)));
  });
  await pool.close();
  await server.close();
  return { ...report, calls: report.calls * 8, warmupCalls: report.warmupCalls * 8, phase: `${report.calls * 8} served requests (8 clients)` };
}

const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(1);
/** One line per phase: RSS before -> after (growth), trajectory, native counters. */
export function describeReport(r: PhaseReport): string {
  const native = (m: MemorySample) => `${m.deviceBuffers} device buffers / ${m.deviceBytes} B, ${m.pendingOps} pending ops`;
  const device = r.deviceGrowth === null ? '' : `, GPU memory in use ${mib(r.before.deviceUsedBytes)} -> ${mib(r.after.deviceUsedBytes)} MiB (${(100 * r.deviceGrowth).toFixed(2)}%)`;
  const refused = Object.entries(r.refused ?? {}).map(([what, calls]) => `; REFUSED ${calls} x ${what}`).join('');
  const heap = (m: MemorySample) => `${mib(m.mallocInUseBytes)} in use + ${mib(m.mallocFreeBytes)} free`;
  return `${r.phase} (${r.seconds.toFixed(1)} s after ${r.warmupCalls} warm-up): RSS ${mib(r.before.rssBytes)} -> ${mib(r.after.rssBytes)} MiB (${(100 * r.rssGrowth).toFixed(2)}%), ` +
    `heap ${mib(r.before.heapUsedBytes)} -> ${mib(r.after.heapUsedBytes)} MiB (committed ${mib(r.before.heapTotalBytes)} -> ${mib(r.after.heapTotalBytes)}), ArrayBuffers ${mib(r.before.arrayBuffersBytes)} -> ${mib(r.after.arrayBuffersBytes)} MiB, ` +
    `C heap ${heap(r.before)} -> ${heap(r.after)} MiB, ` +
    `native ${native(r.before)} -> ${native(r.after)}${device}; RSS trajectory ${r.rssTrajectory.map(mib).join(' ')} MiB, C heap in use ${r.mallocTrajectory.map(mib).join(' ')} MiB${refused}`;
}
