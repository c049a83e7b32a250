// batcher.ts — the bounded queue in front of the model and continuous
// batching over it. One decode batch runs (VLM.decodeBatch); before each of
// its steps, waiting requests join it, up to maxBatch rows: the oldest one
// and the next ones with the same pruner are prefilled as a group
// (VLM.joinBatch), then decode with the rows already there. A row leaves at
// its end and its place is free for the next step. A row's result is the
// one it gets alone (test/serve/serve.test.ts holds this).
import { GripError } from '../errors.js';
import type { DecodeBatch, GenerateRequest, GenerateResult, JoinHooks } from '../model/vlm.js';

/** What the batcher needs of a VLM. */
export interface BatchModel {
  decodeBatch(): DecodeBatch;
  joinBatch(batch: DecodeBatch, requests: readonly GenerateRequest[], rows: readonly JoinHooks[]): Promise<void>;
}

export interface BatchJob {
  /** The request (its own signal is ignored: use `signal`). */
  request: Omit<GenerateRequest, 'signal'>;
  /** Cancels this row alone: dropped from the queue, or stopped at the next decode step. */
  signal?: AbortSignal | undefined;
  /** Each generated token as it is chosen (streaming). */
  onToken?: ((token: number) => void) | undefined;
  /** Called when the job leaves the queue to join the decode batch. */
  onStart?: (() => void) | undefined;
}

export interface BatcherOptions {
  /** Rows decoding together at most. */
  maxBatch: number;
  /** Waiting requests at most; one more is refused (QueueFullError). */
  maxQueue: number;
  /** Called before every decode step with its rows (metrics). */
  onStep?: ((rows: number) => void) | undefined;
  /** Called with every finished row's result (metrics). */
  onResult?: ((result: GenerateResult) => void) | undefined;
}

/** A full queue: the server answers 429 with Retry-After. */
export class QueueFullError extends GripError {
  constructor(readonly maxQueue: number, readonly retryAfterSeconds: number) {
    super('ERR_GRIP_RANGE', `expected at most ${maxQueue} waiting requests for the queue but received one more (retry after ${retryAfterSeconds} s)`);
  }
}

interface Pending {
  job: BatchJob;
  resolve: (result: GenerateResult) => void;
  reject: (error: unknown) => void;
  /** Removes the abort listener of a waiting job. */
  release: () => void;
  settled: boolean;
}

export class Batcher {
  private readonly queue: Pending[] = [];
  private running: Promise<void> | undefined;
  private rows = 0;
  /** Moving average of a request's time from joining to its end, for Retry-After. */
  private serviceMs = 0;
  private readonly idleWaiters: (() => void)[] = [];

  constructor(private readonly model: BatchModel, private readonly options: BatcherOptions) {
    for (const key of ['maxBatch', 'maxQueue'] as const) {
      const v = options[key];
      if (!Number.isInteger(v) || v < 1) throw new GripError('ERR_GRIP_RANGE', `expected a positive integer for options.${key} but received ${String(v)}`);
    }
  }

  /** Requests waiting to join the decode batch. */
  get waiting(): number {
    return this.queue.length;
  }

  /** Rows of the decode batch now (0 when idle). */
  get active(): number {
    return this.rows;
  }

  /** Seconds until a full queue has likely room again (at least 1). */
  retryAfterSeconds(): number {
    const rounds = Math.ceil((this.queue.length + 1) / this.options.maxBatch);
    return Math.max(1, Math.ceil((rounds * this.serviceMs) / 1000));
  }

  /** Queues a job; resolves with its result, rejects with its signal's reason when cancelled. Throws QueueFullError when the queue is full. */
  submit(job: BatchJob): Promise<GenerateResult> {
    if (job.signal?.aborted) return Promise.reject(job.signal.reason);
    if (this.queue.length >= this.options.maxQueue) throw new QueueFullError(this.options.maxQueue, this.retryAfterSeconds());
    return new Promise<GenerateResult>((resolve, reject) => {
      const pending: Pending = { job, resolve, reject, release: () => {}, settled: false };
      const signal = job.signal;
      if (signal) {
        const drop = () => {
          const at = this.queue.indexOf(pending);
          if (at >= 0) {
            this.queue.splice(at, 1);
            this.fail(pending, signal.reason);
            this.settle();
          }
        };
        signal.addEventListener('abort', drop, { once: true });
        pending.release = () => signal.removeEventListener('abort', drop);
      }
      this.queue.push(pending);
      this.pump();
    });
  }

  /** Resolves once nothing waits and nothing runs. */
  idle(): Promise<void> {
    if (this.running === undefined && this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private settle(): void {
    if (this.running !== undefined || this.queue.length > 0) return;
    for (const wake of this.idleWaiters.splice(0)) wake();
  }

  private pump(): void {
    if (this.running !== undefined || this.queue.length === 0) return;
    this.running = this.run().finally(() => {
      this.running = undefined;
      this.rows = 0;
      this.pump();
      this.settle();
    });
  }

  /** The decode loop: joins waiting requests while there is room, steps, until nothing is left. */
  private async run(): Promise<void> {
    const batch = this.model.decodeBatch();
    const live = new Set<Pending>();
    try {
      while (this.queue.length > 0 || batch.size > 0) {
        while (batch.size < this.options.maxBatch && this.queue.length > 0) {
          await this.join(batch, this.takeGroup(this.options.maxBatch - batch.size), live);
        }
        this.rows = batch.size;
        if (batch.size > 0) {
          this.options.onStep?.(batch.size);
          await batch.step();
        }
        this.rows = batch.size;
        // Let the event loop read new requests (and disconnects) between steps.
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    } catch (error) {
      // A failed step fails the rows decoding in it; the queue goes on with a new batch.
      for (const p of live) this.fail(p, p.job.signal?.aborted ? p.job.signal.reason : error);
      batch.dispose();
    }
  }

  /** The oldest job and the next ones with the same pruner, up to `room`, in queue order. */
  private takeGroup(room: number): Pending[] {
    const pruner = this.queue[0]!.job.request.pruner;
    const group: Pending[] = [];
    for (let i = 0; i < this.queue.length && group.length < room;) {
      if (this.queue[i]!.job.request.pruner === pruner) group.push(...this.queue.splice(i, 1));
      else i++;
    }
    for (const p of group) {
      p.release();
      p.job.onStart?.();
    }
    return group;
  }

  private async join(batch: DecodeBatch, group: Pending[], live: Set<Pending>): Promise<void> {
    for (const p of group) live.add(p);
    try {
      await this.model.joinBatch(batch, group.map((p) => p.job.request), group.map((p) => ({
        signal: p.job.signal,
        onToken: p.job.onToken,
        onEnd: (result: GenerateResult) => {
          live.delete(p);
          this.finish(p, result);
        },
      })));
    } catch (error) {
      for (const p of group) live.delete(p);
      // One bad request must not fail the others of its group: each joins alone (its result is the same).
      if (group.length > 1) for (const p of group) await this.join(batch, [p], live);
      else this.fail(group[0]!, group[0]!.job.signal?.aborted ? group[0]!.job.signal.reason : error);
    }
  }

  private finish(p: Pending, result: GenerateResult): void {
    if (p.settled) return;
    if (p.job.signal?.aborted) return this.fail(p, p.job.signal.reason);
    p.settled = true;
    const ms = result.timings.preprocessMs + result.timings.visionMs + result.timings.pruneMs + result.timings.prefillMs + result.timings.decodeMs;
    this.serviceMs = this.serviceMs === 0 ? ms : 0.8 * this.serviceMs + 0.2 * ms;
    this.options.onResult?.(result);
    p.resolve(result);
  }

  private fail(p: Pending, error: unknown): void {
    if (p.settled) return;
    p.settled = true;
    p.reject(error);
  }
}
