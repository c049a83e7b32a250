// server.ts — `grip serve`: an OpenAI-compatible HTTP face over a VLM on
// node:http. It reads and checks each request (lib/serve/openai.ts), decodes
// its image once, queues it (lib/serve/batcher.ts), and writes the answer as
// JSON or as server-sent events; /v1/models, /health and /metrics beside it.
// No model logic lives here: rows decode in VLM.decodeBatch/joinBatch.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { basename, join } from 'node:path';
import { defaultPruner } from '../demo.js';
import { GripError } from '../errors.js';
import { readRgb } from '../model/processor.js';
import { textDeltas } from '../model/runtime/detokenize.js';
import type { GenerateResult } from '../model/runtime/types.js';
import type { VLM } from '../model/vlm.js';
import { GripPruner } from '../prune/grip.js';
import type { Pruner } from '../prune/pruner.js';
import { makePruner, PRUNER_NAMES } from '../prune/registry.js';
import { check } from '../validate.js';
import { Batcher, QueueFullError } from './batcher.js';
import { METRICS_CONTENT_TYPE, ServeMetrics } from './metrics.js';
import {
  chunkEvent, completionBody, DONE_EVENT, errorBody, finishReason, newCompletionId, parseChatRequest, parseJson,
  trimmedDeltas, usageOf, type ChatRequest, type ErrorType,
} from './openai.js';

export interface ServeOptions {
  model: VLM;
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 8080; 0 picks a free port. */
  port?: number;
  /** Rows per batch at most (default 8). */
  maxBatch?: number;
  /** Requests waiting at most; one more is answered 429 (default 64). */
  maxQueue?: number;
  /** keep_ratio of a request that gives none (default 1). */
  keepRatio?: number;
  /** The pruner of a request that names none: 'grip' or a heuristic; default: none at keep 1, else the model's own (its GRIP pruner, else fastv). */
  pruner?: string;
  /** Where 'grip' loads from (default: MODEL/grip). */
  gripDir?: string;
  /** Request bodies over this are answered 413 (default 16 MiB). */
  maxBodyBytes?: number;
  /** The largest max_tokens (default 1024). */
  maxTokensLimit?: number;
  /** max_tokens of a request that gives none (default 256). */
  defaultMaxTokens?: number;
  /** The id /v1/models lists and requests must name (default: the model directory's name). */
  modelId?: string;
}

export interface GripServer {
  /** http://host:port */
  readonly url: string;
  readonly port: number;
  readonly metrics: ServeMetrics;
  readonly modelId: string;
  /** Stops accepting, answers what is in flight, then closes (SIGTERM). New requests meanwhile get 503. */
  close(): Promise<void>;
}

const CHAT_ROUTE = '/v1/chat/completions';
const ROUTES: Record<string, string> = { '/health': 'GET', '/v1/models': 'GET', '/metrics': 'GET', [CHAT_ROUTE]: 'POST' };

/** An answer other than 200, with its OpenAI error type. */
class HttpError extends Error {
  constructor(readonly status: number, readonly type: ErrorType, readonly grip: GripError, readonly headers: Record<string, string> = {}) {
    super(grip.message);
  }
}

/** The status a failure is answered with: a GripError from the request's checks is the client's (400), anything else the server's (500). */
function httpErrorOf(error: unknown): HttpError {
  if (error instanceof HttpError) return error;
  if (error instanceof QueueFullError) return new HttpError(429, 'rate_limit_error', error, { 'retry-after': String(error.retryAfterSeconds) });
  if (error instanceof GripError && error.code !== 'ERR_GRIP_INTERNAL' && error.code !== 'ERR_GRIP_CUDA') return new HttpError(400, 'invalid_request_error', error);
  const grip = error instanceof GripError ? error : new GripError('ERR_GRIP_INTERNAL', `expected the request to be served but received ${error instanceof Error ? error.message : String(error)}`);
  return new HttpError(500, 'server_error', grip);
}

/** The body as text, refused with 413 past `limit` bytes (by Content-Length up front, or as a chunked body grows). */
function readBody(req: IncomingMessage, limit: number): Promise<string> {
  const tooLarge = () => new HttpError(413, 'invalid_request_error', new GripError('ERR_GRIP_RANGE', `expected a request body of at most ${limit} bytes for ${CHAT_ROUTE} but received more`), { connection: 'close' });
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) return Promise.reject(tooLarge());
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let bytes = 0;
    const onData = (chunk: Buffer) => {
      bytes += chunk.length;
      if (bytes > limit) {
        req.off('data', onData);
        req.pause();
        reject(tooLarge());
        return;
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.once('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.once('error', reject);
  });
}

function sendJson(res: ServerResponse, status: number, body: object, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

export async function startServer(options: ServeOptions): Promise<GripServer> {
  const { model } = options;
  const host = options.host ?? '127.0.0.1';
  const port = options.port ?? 8080;
  check.integer(port, 'options.port', 0, 65535);
  const keepRatio = options.keepRatio ?? 1;
  check.number(keepRatio, 'options.keepRatio', (v) => v > 0 && v <= 1, 'a number in (0, 1]');
  const maxBodyBytes = options.maxBodyBytes ?? 16 << 20;
  check.integer(maxBodyBytes, 'options.maxBodyBytes', 1, Number.MAX_SAFE_INTEGER);
  const limits = {
    modelId: options.modelId ?? basename(model.dir),
    maxTokensLimit: options.maxTokensLimit ?? 1024,
    defaultMaxTokens: options.defaultMaxTokens ?? 256,
  };
  check.integer(limits.maxTokensLimit, 'options.maxTokensLimit', 1, 1 << 20);
  check.integer(limits.defaultMaxTokens, 'options.defaultMaxTokens', 1, limits.maxTokensLimit);
  const eos = new Set<number>([model.config.text.eosTokenId ?? [], model.tokenizer.eosTokenId ?? []].flat());

  // One instance per pruner name: a batch shares one pruner.
  const pruners = new Map<string, Promise<Pruner>>();
  const prunerNamed = (name: string): Promise<Pruner> => {
    let p = pruners.get(name);
    if (p === undefined) {
      if (name !== 'grip' && !(PRUNER_NAMES as readonly string[]).includes(name)) {
        return Promise.reject(new GripError('ERR_GRIP_RANGE', `expected one of grip, ${PRUNER_NAMES.join(', ')} for pruner but received "${name}"`));
      }
      p = name === 'grip'
        ? GripPruner.load(options.gripDir ?? join(model.dir, 'grip')).then((g) => { g.checkModel(model); return g; })
        : Promise.resolve(makePruner(name));
      pruners.set(name, p);
    }
    return p;
  };
  let ownPruner: Promise<Pruner> | undefined;
  const prunerFor = async (request: ChatRequest): Promise<{ pruner: Pruner | undefined; keepRatio: number }> => {
    const keep = request.keepRatio ?? keepRatio;
    const name = request.pruner ?? options.pruner;
    if (name !== undefined) return { pruner: await prunerNamed(name), keepRatio: keep };
    if (keep === 1) return { pruner: undefined, keepRatio: keep };
    ownPruner ??= defaultPruner(model);
    return { pruner: await ownPruner, keepRatio: keep };
  };
  if (options.pruner !== undefined) await prunerNamed(options.pruner);

  // The gauges read the batcher when /metrics is rendered, after both exist.
  const served: ServeMetrics = new ServeMetrics(() => batcher.waiting, () => batcher.active);
  const batcher = new Batcher(model, {
    maxBatch: options.maxBatch ?? 8,
    maxQueue: options.maxQueue ?? 64,
    onStep: (rows) => served.batchSize.observe(rows),
    onResult: ({ timings: t }) => {
      served.prefillSeconds.observe((t.visionMs + t.pruneMs + t.prefillMs) / 1000);
      served.decodeSeconds.observe(t.decodeMs / 1000);
    },
  });

  let draining = false;
  let inFlight = 0;
  let drained: (() => void) | undefined;

  async function completions(req: IncomingMessage, res: ServerResponse, gone: AbortSignal): Promise<number> {
    const body = await readBody(req, maxBodyBytes);
    const received = performance.now();
    const request = parseChatRequest(parseJson(body), limits);
    const { pruner, keepRatio: keep } = await prunerFor(request);
    // Checked before the queue, so an undecodable image is this request's 400
    // and never reaches a batch. The batch gets the bytes, not these pixels: the
    // family's own processor prepares them there, as for generate({ image }).
    await readRgb(request.image, { signal: gone });
    const id = newCompletionId(limits.modelId);
    let firstToken = true;
    const tokenSeen = () => {
      if (firstToken) served.firstTokenSeconds.observe((performance.now() - received) / 1000);
      firstToken = false;
    };
    let started = false;
    const job = {
      request: { image: request.image, prompt: request.prompt, pruner, keepRatio: keep, maxNewTokens: request.maxTokens, stopAtEos: !request.ignoreEos },
      signal: gone,
      onStart: () => {
        if (!started) served.queueSeconds.observe((performance.now() - received) / 1000);
        started = true;
      },
    };
    const finish = (result: GenerateResult) => {
      const usage = usageOf(result);
      served.promptTokens.inc({}, usage.prompt_tokens);
      served.completionTokens.inc({}, usage.completion_tokens);
      served.visualTokens.inc({}, usage.visual_tokens);
      served.keptVisualTokens.inc({}, usage.kept_visual_tokens);
      served.keptRatio.observe(usage.kept_visual_tokens / usage.visual_tokens);
      return { usage, finish: finishReason(result, eos) };
    };
    if (!request.stream) {
      const result = await batcher.submit({ ...job, onToken: tokenSeen });
      const { usage, finish: reason } = finish(result);
      sendJson(res, 200, completionBody(id, result, reason, usage));
      return 200;
    }
    const delta = textDeltas(model.tokenizer), trimmed = trimmedDeltas();
    const pending = batcher.submit({
      ...job,
      onToken: (token) => {
        tokenSeen();
        const text = trimmed(delta(token));
        // A client gone since the last step: its row leaves at the next one.
        if (text !== '' && !res.destroyed) res.write(chunkEvent(id, { content: text }));
      },
    });
    // Queued (a full queue threw above): from here the answer is a stream.
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
    res.write(chunkEvent(id, { role: true }));
    try {
      const result = await pending;
      const { usage, finish: reason } = finish(result);
      res.write(chunkEvent(id, { finish: reason }));
      if (request.includeUsage) res.write(chunkEvent(id, { usage }));
    } catch (error) {
      if (gone.aborted) throw error;
      const failure = httpErrorOf(error);
      res.write(`data: ${JSON.stringify(errorBody(failure.grip, failure.type))}\n\n`);
      res.end(DONE_EVENT);
      return failure.status;
    }
    res.end(DONE_EVENT);
    return 200;
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    const route = ROUTES[path] !== undefined ? path : 'other';
    const controller = new AbortController();
    res.once('close', () => {
      if (!res.writableFinished) controller.abort(new GripError('ERR_GRIP_RANGE', 'expected the client to wait for its answer but received a disconnect'));
    });
    let status: number;
    try {
      if (ROUTES[path] === undefined) throw new HttpError(404, 'not_found_error', new GripError('ERR_GRIP_RANGE', `expected one of ${Object.entries(ROUTES).map(([p, m]) => `${m} ${p}`).join(', ')} for the route but received ${req.method} ${path}`));
      if (req.method !== ROUTES[path]) throw new HttpError(405, 'invalid_request_error', new GripError('ERR_GRIP_RANGE', `expected ${ROUTES[path]} for ${path} but received ${req.method}`), { allow: ROUTES[path]! });
      if (draining) throw new HttpError(503, 'server_error', new GripError('ERR_GRIP_RANGE', 'expected a server that accepts requests but received one that is shutting down'), { connection: 'close' });
      if (path === '/health') {
        sendJson(res, 200, { status: 'ok', model: limits.modelId, backend: model.backend, waiting: batcher.waiting, running: batcher.active });
        status = 200;
      } else if (path === '/v1/models') {
        sendJson(res, 200, { object: 'list', data: [{ id: limits.modelId, object: 'model', created: 0, owned_by: 'grip-vlm' }] });
        status = 200;
      } else if (path === '/metrics') {
        const text = served.render();
        res.writeHead(200, { 'content-type': METRICS_CONTENT_TYPE, 'content-length': Buffer.byteLength(text) });
        res.end(text);
        status = 200;
      } else status = await completions(req, res, controller.signal);
    } catch (error) {
      if (controller.signal.aborted) {
        status = 499;
        served.cancelled.inc();
        res.destroy();
      } else {
        const failure = httpErrorOf(error);
        status = failure.status;
        if (res.headersSent) res.end();
        else sendJson(res, failure.status, errorBody(failure.grip, failure.type), failure.headers);
        if (failure.headers.connection === 'close') res.once('finish', () => req.destroy());
      }
    }
    served.requests.inc({ route, status: String(status) });
  }

  const server: Server = createServer((req, res) => {
    inFlight++;
    handle(req, res).finally(() => {
      if (--inFlight === 0) drained?.();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const shownHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  let closing: Promise<void> | undefined;
  return {
    url: `http://${shownHost}:${address.port}`,
    port: address.port,
    metrics: served,
    modelId: limits.modelId,
    close() {
      closing ??= (async () => {
        draining = true;
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        if (inFlight > 0) await new Promise<void>((resolve) => { drained = resolve; });
        await batcher.idle();
        server.closeAllConnections();
        await closed;
      })();
      return closing;
    },
  };
}
