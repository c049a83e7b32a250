// metrics.ts — the server's counters, gauges and histograms, rendered in the
// Prometheus text exposition format (version 0.0.4) for GET /metrics.

type Labels = Record<string, string>;

const labelText = (labels: Labels): string => {
  const keys = Object.keys(labels);
  if (keys.length === 0) return '';
  const escape = (v: string) => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
  return `{${keys.map((k) => `${k}="${escape(labels[k]!)}"`).join(',')}}`;
};
const numberText = (v: number): string => (v === Infinity ? '+Inf' : v === -Infinity ? '-Inf' : Number.isNaN(v) ? 'NaN' : String(v));

interface Metric {
  render(): string;
}

export class Counter implements Metric {
  private readonly values = new Map<string, { labels: Labels; value: number }>();
  constructor(readonly name: string, readonly help: string) {}

  inc(labels: Labels = {}, by = 1): void {
    const key = labelText(labels);
    const entry = this.values.get(key) ?? { labels, value: 0 };
    entry.value += by;
    this.values.set(key, entry);
  }

  get(labels: Labels = {}): number {
    return this.values.get(labelText(labels))?.value ?? 0;
  }

  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} counter`];
    if (this.values.size === 0) lines.push(`${this.name} 0`);
    for (const { labels, value } of this.values.values()) lines.push(`${this.name}${labelText(labels)} ${numberText(value)}`);
    return lines.join('\n');
  }
}

/** A gauge read when rendered (queue length, rows running). */
export class Gauge implements Metric {
  constructor(readonly name: string, readonly help: string, private readonly read: () => number) {}

  render(): string {
    return [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} gauge`, `${this.name} ${numberText(this.read())}`].join('\n');
  }
}

export class Histogram implements Metric {
  private readonly counts: number[];
  private sum = 0;
  private count = 0;
  /** Upper bounds, ascending; +Inf is implied. */
  constructor(readonly name: string, readonly help: string, readonly buckets: readonly number[]) {
    this.counts = buckets.map(() => 0);
  }

  observe(value: number): void {
    this.sum += value;
    this.count++;
    this.buckets.forEach((bound, i) => {
      if (value <= bound) this.counts[i]!++;
    });
  }

  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`];
    this.buckets.forEach((bound, i) => lines.push(`${this.name}_bucket{le="${numberText(bound)}"} ${this.counts[i]}`));
    lines.push(`${this.name}_bucket{le="+Inf"} ${this.count}`, `${this.name}_sum ${numberText(this.sum)}`, `${this.name}_count ${this.count}`);
    return lines.join('\n');
  }
}

const SECONDS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** Everything GET /metrics reports. */
export class ServeMetrics {
  readonly requests = new Counter('grip_requests_total', 'HTTP requests answered, by route and status (499: the client went away first).');
  readonly promptTokens = new Counter('grip_prompt_tokens_total', 'Tokens prefilled (prompt text and kept visual tokens) of completed requests.');
  readonly completionTokens = new Counter('grip_completion_tokens_total', 'Tokens generated for completed requests.');
  readonly visualTokens = new Counter('grip_visual_tokens_total', 'Visual tokens of the images of completed requests, before pruning.');
  readonly keptVisualTokens = new Counter('grip_kept_visual_tokens_total', 'Visual tokens kept by the pruner for completed requests.');
  readonly cancelled = new Counter('grip_cancelled_rows_total', 'Requests cancelled because their client disconnected (waiting or decoding).');
  readonly batchSize = new Histogram('grip_batch_size', 'Rows per decode step (continuous batching).', [1, 2, 4, 8, 16, 32, 64]);
  readonly prefillSeconds = new Histogram('grip_prefill_seconds', 'Prefill time of each request\'s joining group (vision tower, pruning and the LLM prefill).', SECONDS);
  readonly decodeSeconds = new Histogram('grip_decode_seconds', 'Decode time per request, from joining the decode batch to its end.', SECONDS);
  readonly queueSeconds = new Histogram('grip_queue_seconds', 'Time from a request\'s body read to it leaving the queue.', SECONDS);
  readonly firstTokenSeconds = new Histogram('grip_time_to_first_token_seconds', 'From the request body read to the first generated token.', SECONDS);
  readonly keptRatio = new Histogram('grip_kept_ratio', 'Kept visual tokens / visual tokens per request.', [0.05, 0.11, 0.25, 0.5, 0.75, 1]);
  private readonly all: Metric[];

  constructor(queueLength: () => number, runningRows: () => number) {
    this.all = [
      this.requests, this.promptTokens, this.completionTokens, this.visualTokens, this.keptVisualTokens, this.cancelled,
      new Gauge('grip_queue_length', 'Requests waiting for a batch.', queueLength),
      new Gauge('grip_running_rows', 'Rows of the decode batch now.', runningRows),
      new Gauge('process_resident_memory_bytes', 'Resident set size of the server process.', () => process.memoryUsage.rss()),
      new Gauge('nodejs_heap_used_bytes', 'V8 heap in use.', () => process.memoryUsage().heapUsed),
      new Gauge('nodejs_external_memory_bytes', 'Memory of ArrayBuffers and native objects held from JS (tensors on the host).', () => process.memoryUsage().external),
      this.batchSize, this.prefillSeconds, this.decodeSeconds, this.queueSeconds, this.firstTokenSeconds, this.keptRatio,
    ];
  }

  /** The text of GET /metrics (Content-Type: text/plain; version=0.0.4). */
  render(): string {
    return `${this.all.map((m) => m.render()).join('\n')}\n`;
  }
}

export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';
