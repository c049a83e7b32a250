// batcher.ts — the bounded queue in front of the model and the batching of
// what waits in it. One batch runs at a time (the model's ops use all the
// cores); when it ends, the oldest waiting request and up to maxBatch - 1
// others with the same pruner run as the next ragged batch (VLM.generateBatch:
// each row with its own image, prompt, keep ratio and length). Rows join at
// request boundaries, not mid-decode: joining a running decode needs the
// runtime to merge KV caches across batches (docs/serve.md says what is missing).
// A row's result is the one it gets alone: the ragged batch computes each
// row independently (test/serve/serve.test.ts holds this).
import { GripError } from '../errors.js';
import type { GenerateBatchOptions, GenerateRequest, GenerateResult } from '../model/runtime/types.js';

/** What the batcher needs of a VLM. */
export interface BatchModel {
  generateBatch(requests: readonly GenerateRequest[], options: GenerateBatchOptions): Promise<GenerateResult[]>;
}

export interface BatchJob {
  /** The request (its own signal is ignored: use `signal`). */
  request: Omit<GenerateRequest, 'signal'>;
  /** Cancels this row alone: dropped from the queue, or stopped at the next decode step. */
  signal?: AbortSignal | undefined;
  /** Each generated token as it is chosen (streaming). */
  onToken?: ((token: number) => void) | undefined;
  /** Called when the job leaves the queue and its batch starts. */
  onStart?: ((batchSize: number) => void) | undefined;
}

export interface BatchReport {
  size: number;
  /** Wall time of the whole batch. */
  durationMs: number;
  /** The results of the rows that finished (cancelled rows are left out). */
  results: GenerateResult[];
}

export interface BatcherOptions {
  /** Rows per batch at most. */
  maxBatch: number;
  /** Waiting requests at most; one more is refused (QueueFullError). */
  maxQueue: number;
  /** Called after every batch (metrics). */
  onBatch?: ((report: BatchReport) => void) | undefined;
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
}

export class Batcher {
  private readonly queue: Pending[] = [];
  private running: Promise<void> | undefined;
  private runningRows = 0;
  /** Moving average of a batch's wall time, for Retry-After. */
  private batchMs = 0;
  private readonly idleWaiters: (() => void)[] = [];

  constructor(private readonly model: BatchModel, private readonly options: BatcherOptions) {
    for (const key of ['maxBatch', 'maxQueue'] as const) {
      const v = options[key];
      if (!Number.isInteger(v) || v < 1) throw new GripError('ERR_GRIP_RANGE', `expected a positive integer for options.${key} but received ${String(v)}`);
    }
  }

  /** Requests waiting for a batch. */
  get waiting(): number {
    return this.queue.length;
  }

  /** Rows of the batch that runs now (0 when idle). */
  get active(): number {
    return this.runningRows;
  }

  /** Seconds until a full queue has likely room again (at least 1). */
  retryAfterSeconds(): number {
    const batchesAhead = Math.ceil((this.queue.length + 1) / this.options.maxBatch);
    return Math.max(1, Math.ceil((batchesAhead * this.batchMs) / 1000));
  }

  /** Queues a job; resolves with its result, rejects with its signal's reason when cancelled. Throws QueueFullError when the queue is full. */
  submit(job: BatchJob): Promise<GenerateResult> {
    if (job.signal?.aborted) return Promise.reject(job.signal.reason);
    if (this.queue.length >= this.options.maxQueue) throw new QueueFullError(this.options.maxQueue, this.retryAfterSeconds());
    return new Promise<GenerateResult>((resolve, reject) => {
      const pending: Pending = { job, resolve, reject, release: () => {} };
      const signal = job.signal;
      if (signal) {
        const drop = () => {
          const at = this.queue.indexOf(pending);
          if (at >= 0) {
            this.queue.splice(at, 1);
            reject(signal.reason);
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
    const batch = this.takeBatch();
    this.runningRows = batch.length;
    this.running = this.run(batch).finally(() => {
      this.running = undefined;
      this.runningRows = 0;
      this.pump();
      this.settle();
    });
  }

  /** The oldest job and the next ones with the same pruner, up to maxBatch, in queue order. */
  private takeBatch(): Pending[] {
    const pruner = this.queue[0]!.job.request.pruner;
    const batch: Pending[] = [];
    for (let i = 0; i < this.queue.length && batch.length < this.options.maxBatch;) {
      if (this.queue[i]!.job.request.pruner === pruner) batch.push(...this.queue.splice(i, 1));
      else i++;
    }
    for (const p of batch) p.release();
    return batch;
  }

  private async run(batch: Pending[]): Promise<void> {
    const t0 = performance.now();
    for (const p of batch) p.job.onStart?.(batch.length);
    let results: GenerateResult[] | undefined;
    try {
      results = await this.model.generateBatch(batch.map((p) => p.job.request), {
        // The batch itself is never aborted from outside: each row has its own signal.
        signal: new AbortController().signal,
        onToken: (row, token) => batch[row]!.job.onToken?.(token),
        rowSignals: batch.map((p) => p.job.signal),
      });
    } catch (error) {
      if (batch.length === 1) {
        batch[0]!.reject(batch[0]!.job.signal?.aborted ? batch[0]!.job.signal.reason : error);
        return;
      }
      // One bad row must not fail the others: run each alone (its result is the same).
      for (const p of batch) await this.run([p]);
      return;
    } finally {
      const ms = performance.now() - t0;
      this.batchMs = this.batchMs === 0 ? ms : 0.8 * this.batchMs + 0.2 * ms;
    }
    const finished: GenerateResult[] = [];
    batch.forEach((p, b) => {
      if (p.job.signal?.aborted) p.reject(p.job.signal.reason);
      else {
        finished.push(results![b]!);
        p.resolve(results![b]!);
      }
    });
    this.options.onBatch?.({ size: batch.length, durationMs: performance.now() - t0, results: finished });
  }
}
