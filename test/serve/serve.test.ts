// serve.test.ts — grip serve on the embedded model, over real HTTP on an
// ephemeral port of 127.0.0.1: the official openai client gets the answers
// model.generate gives (streamed and not), concurrent requests get their
// serial answers, every fault has its status and OpenAI-style error, a
// disconnect cancels its row and the server goes on, /metrics parses, and
// SIGTERM drains the `grip serve` process.
import { spawn, spawnSync } from 'node:child_process';
import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import OpenAI from 'openai';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { makeExamples, renderScene } from '../../lib/data/shapes/index.ts';
import { defaultPruner } from '../../lib/demo.ts';
import { readRgb } from '../../lib/model/processor.ts';
import { loadVLM, type GenerateRequest, type GenerateResult, type VLM } from '../../lib/model/vlm.ts';
import type { Pruner } from '../../lib/prune/pruner.ts';
import { PRUNER_NAMES } from '../../lib/prune/registry.ts';
import { startServer, type GripServer } from '../../lib/serve/server.ts';

const test = suite('serve');
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const MODEL = 'shapes-llava-tiny';
const childEnv = { ...process.env };
delete childEnv.FORCE_COLOR; // with NO_COLOR set too, Node would print a warning into stderr

let model: VLM;
let grip: Pruner;
let server: GripServer;
let client: OpenAI;
let images: Buffer[];
let questions: string[];
const rowTokens: number[] = [];

const dataUrl = (png: Buffer) => `data:image/png;base64,${png.toString('base64')}`;
const userMessage = (text: string, url: string) => [{ role: 'user' as const, content: [{ type: 'text' as const, text }, { type: 'image_url' as const, image_url: { url } }] }];
const body = (i: number, extra: Record<string, unknown> = {}) => ({ model: MODEL, messages: userMessage(questions[i]!, dataUrl(images[i]!)), max_tokens: 8, ...extra });

async function post(base: string, payload: unknown, init: RequestInit = {}): Promise<Response> {
  return fetch(`${base}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: typeof payload === 'string' ? payload : JSON.stringify(payload), ...init });
}

/** The status, the error body and the headers of a refused request. */
async function refused(response: Response): Promise<{ status: number; error: { message: string; type: string; code: string } }> {
  const json = (await response.json()) as { error: { message: string; type: string; code: string } };
  return { status: response.status, error: json.error };
}

async function expectRefused(response: Response, status: number, code: string, message: string): Promise<void> {
  const r = await refused(response);
  assert.is(r.status, status, `status (${r.error.message})`);
  assert.is(r.error.code, code);
  assert.is(r.error.message, message);
  assert.is(r.error.type, status === 429 ? 'rate_limit_error' : status >= 500 ? 'server_error' : status === 404 ? 'not_found_error' : 'invalid_request_error');
}

/** What model.generate answers for the same request the server gets. */
async function alone(i: number, keepRatio: number, maxNewTokens = 8, stopAtEos = true): Promise<GenerateResult> {
  const request: GenerateRequest = { image: images[i]!, prompt: questions[i]!, maxNewTokens, stopAtEos, keepRatio, pruner: keepRatio < 1 ? grip : undefined };
  return model.generate(request);
}

async function until(what: string, condition: () => Promise<boolean> | boolean, timeoutMs = 5000): Promise<void> {
  const t0 = Date.now();
  while (!(await condition())) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Decode steps so far: all, those with one row, those with at most 8 (from the batch size histogram). */
function stepsBySize(): { total: number; upTo1: number; upTo8: number } {
  const text = server.metrics.batchSize.render();
  const bucket = (le: string) => Number(new RegExp(`grip_batch_size_bucket\\{le="${le}"\\} (\\d+)`).exec(text)![1]);
  return { total: bucket('\\+Inf'), upTo1: bucket('1'), upTo8: bucket('8') };
}

const health = async (base: string) => (await (await fetch(`${base}/health`)).json()) as { waiting: number; running: number };

test.before(async () => {
  model = await loadVLM(join(root, 'models', MODEL), { backend: 'cpu' });
  grip = await defaultPruner(model);
  // Record how many tokens each row decoded (the cancel test reads it).
  const joinBatch = model.joinBatch.bind(model);
  model.joinBatch = (batch, requests, rows) => {
    return joinBatch(batch, requests, rows.map((row) => ({ ...row, onEnd: (r: GenerateResult) => { rowTokens.push(r.tokenIds.length); row.onEnd(r); } })));
  };
  const examples = makeExamples('test', 32, { questionsPerScene: 1 });
  images = await Promise.all(examples.map(async (ex) => Buffer.from(await renderScene(ex.scene))));
  questions = examples.map((ex) => ex.question);
  server = await startServer({ model, port: 0, maxBatch: 8, maxQueue: 64 });
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 });
});

test.after(async () => {
  await server.close();
});

test('the openai client gets the answer model.generate gives, with usage and kept visual tokens', async () => {
  const expected = await alone(0, 0.25);
  const params = { ...body(0), keep_ratio: 0.25 } as unknown as OpenAI.ChatCompletionCreateParamsNonStreaming;
  const completion = await client.chat.completions.create(params);
  assert.is(completion.object, 'chat.completion');
  assert.is(completion.model, MODEL);
  assert.is(completion.choices.length, 1);
  assert.is(completion.choices[0]!.message.role, 'assistant');
  assert.is(completion.choices[0]!.message.content, expected.text);
  assert.is(completion.choices[0]!.finish_reason, expected.tokenIds.length < 8 ? 'stop' : 'length');
  const usage = completion.usage as unknown as Record<string, number>;
  assert.equal(usage, {
    prompt_tokens: expected.prefillTokens, completion_tokens: expected.tokenIds.length, total_tokens: expected.prefillTokens + expected.tokenIds.length,
    visual_tokens: model.numImageTokens, kept_visual_tokens: expected.kept.indices.length,
  });
  assert.is(expected.kept.indices.length, Math.ceil(0.25 * model.numImageTokens));
});

test('a streamed answer arrives as chunks that join to the answer generate gives, then [DONE]', async () => {
  const expected = await alone(1, 0.11, 12);
  const params = { ...body(1), max_tokens: 12, keep_ratio: 0.11, stream: true, stream_options: { include_usage: true } } as unknown as OpenAI.ChatCompletionCreateParamsStreaming;
  const chunks: OpenAI.ChatCompletionChunk[] = [];
  for await (const chunk of await client.chat.completions.create(params)) chunks.push(chunk);
  assert.ok(chunks.every((c) => c.object === 'chat.completion.chunk' && c.id === chunks[0]!.id));
  assert.is(chunks[0]!.choices[0]!.delta.role, 'assistant');
  const text = chunks.map((c) => c.choices[0]?.delta.content ?? '').join('');
  assert.is(text, expected.text);
  const last = chunks.at(-1)!;
  assert.equal(last.choices, []);
  assert.is((last.usage as unknown as Record<string, number>).kept_visual_tokens, expected.kept.indices.length);
  assert.is(chunks.at(-2)!.choices[0]!.finish_reason, expected.tokenIds.length < 12 ? 'stop' : 'length');
  // The raw stream ends with the [DONE] event.
  const raw = await (await post(server.url, { ...body(1), stream: true })).text();
  assert.ok(raw.endsWith('data: [DONE]\n\n'), raw.slice(-40));
});

test('32 concurrent requests with different images and keep ratios each get their serial answer, in batches', async () => {
  const ratios = [1, 0.25, 0.11, 0.5];
  const expected: GenerateResult[] = [];
  for (let i = 0; i < 32; i++) expected.push(await alone(i, ratios[i % 4]!, 6, false));
  const before = stepsBySize();
  const answers = await Promise.all(Array.from({ length: 32 }, async (_, i) => {
    const r = await post(server.url, body(i, { max_tokens: 6, ignore_eos: true, ...(ratios[i % 4]! < 1 ? { keep_ratio: ratios[i % 4] } : {}), stream: i % 2 === 1 }));
    assert.is(r.status, 200);
    if (i % 2 === 0) return ((await r.json()) as OpenAI.ChatCompletion).choices[0]!.message.content;
    const events = (await r.text()).split('\n\n').filter((e) => e.startsWith('data: {'));
    return events.map((e) => (JSON.parse(e.slice(6)) as OpenAI.ChatCompletionChunk).choices[0]?.delta.content ?? '').join('');
  }));
  answers.forEach((a, i) => assert.is(a, expected[i]!.text, `request ${i} (keep ${ratios[i % 4]})`));
  // Rows decoded together: some decode step held several rows, none more than --max-batch.
  const steps = stepsBySize();
  assert.ok(steps.total - before.total > steps.upTo1 - before.upTo1, 'some decode step had more than one row');
  assert.is(steps.upTo8, steps.total, 'no decode step had more than 8 rows');
});

test('a request that arrives while another decodes joins the running batch and ends first', async () => {
  const long = alone(9, 0.25, 300, false), short = alone(10, 1, 4, false);
  const expectedLong = await long, expectedShort = await short;
  const order: string[] = [];
  const first = post(server.url, body(9, { keep_ratio: 0.25, ignore_eos: true, max_tokens: 300 })).then(async (r) => { order.push('long'); return (await r.json()) as OpenAI.ChatCompletion; });
  await until('the long request to decode', async () => (await health(server.url)).running === 1);
  const second = post(server.url, body(10, { ignore_eos: true, max_tokens: 4 })).then(async (r) => { order.push('short'); return (await r.json()) as OpenAI.ChatCompletion; });
  const [a, b] = await Promise.all([first, second]);
  assert.equal(order, ['short', 'long'], 'the short request did not wait for the long one');
  assert.is(a.choices[0]!.message.content, expectedLong.text);
  assert.is(b.choices[0]!.message.content, expectedShort.text);
});

test('a ragged batch with a cancelled row gives the other rows their results alone', async () => {
  const requests: GenerateRequest[] = [0, 1, 2].map((i) => ({ image: images[i]!, prompt: questions[i]!, maxNewTokens: 20, stopAtEos: false, keepRatio: [0.25, 0.5, 0.11][i]!, pruner: grip }));
  const cancel = new AbortController();
  const results = await model.generateBatch(requests, {
    signal: new AbortController().signal,
    rowSignals: [cancel.signal, undefined, undefined],
    onToken: (row) => { if (row === 0) cancel.abort(); },
  });
  assert.is(results[0]!.tokenIds.length, 1, 'the cancelled row stops after the token that cancelled it');
  for (const b of [1, 2]) {
    const single = await model.generate(requests[b]!);
    assert.equal(Array.from(results[b]!.tokenIds), Array.from(single.tokenIds), `row ${b}`);
    assert.equal(Array.from(results[b]!.kept.indices), Array.from(single.kept.indices), `row ${b} kept`);
  }
});

test('a client that disconnects mid-stream cancels its row; the server goes on serving', async () => {
  const before = server.metrics.cancelled.get();
  rowTokens.length = 0;
  const controller = new AbortController();
  const response = await post(server.url, body(2, { stream: true, ignore_eos: true, max_tokens: 1000 }), { signal: controller.signal });
  const reader = response.body!.getReader();
  let seen = '';
  while (!seen.includes('"content":"')) seen += new TextDecoder().decode((await reader.read()).value);
  controller.abort();
  await until('the cancel', () => server.metrics.cancelled.get() === before + 1);
  await until('the row to leave the batch', () => rowTokens.length === 1);
  assert.ok(rowTokens[0]! < 1000, `the cancelled row decoded ${rowTokens[0]} of 1000 tokens`);
  assert.is(server.metrics.requests.get({ route: '/v1/chat/completions', status: '499' }), 1);
  const expected = await alone(3, 1);
  const after = (await (await post(server.url, body(3))).json()) as OpenAI.ChatCompletion;
  assert.is(after.choices[0]!.message.content, expected.text);
});

test('bad requests get 400 with an OpenAI-style error carrying the GripError code', async () => {
  const bad = (extra: Record<string, unknown>) => post(server.url, { ...body(0), ...extra });
  const notJson = '{"model": "shapes-llava-tiny", oops';
  let parseMessage = '';
  try { JSON.parse(notJson); } catch (e) { parseMessage = (e as Error).message; }
  await expectRefused(await post(server.url, notJson), 400, 'ERR_GRIP_FORMAT', `expected a JSON body for the request but received invalid JSON (${parseMessage})`);
  await expectRefused(await bad({ messages: [{ role: 'user', content: 'what colour is the circle?' }] }), 400, 'ERR_GRIP_RANGE', 'expected one image_url part (a data: URL) for messages[0].content but received no image');
  await expectRefused(await bad({ messages: userMessage('what?', 'https://example.com/cat.png') }), 400, 'ERR_GRIP_UNSUPPORTED', 'expected a data: URL (the server downloads nothing) for messages[0].content[1].image_url.url but received a https: URL');
  await expectRefused(await bad({ messages: userMessage('what?', 'file:///etc/passwd') }), 400, 'ERR_GRIP_UNSUPPORTED', 'expected a data: URL (the server downloads nothing) for messages[0].content[1].image_url.url but received a file: URL');
  await expectRefused(await bad({ messages: userMessage('what?', 'data:image/png;base64,@@@') }), 400, 'ERR_GRIP_FORMAT', 'expected base64 image data for messages[0].content[1].image_url.url but received characters outside base64');
  const junk = Buffer.from('this is not an image at all');
  let decodeMessage = '';
  await readRgb(junk).catch((e: Error) => { decodeMessage = e.message; });
  assert.ok(decodeMessage.startsWith('expected '), decodeMessage);
  await expectRefused(await bad({ messages: userMessage('what?', dataUrl(junk)) }), 400, 'ERR_GRIP_FORMAT', decodeMessage);
  await expectRefused(await bad({ keep_ratio: 0 }), 400, 'ERR_GRIP_RANGE', 'expected a number in (0, 1] for keep_ratio but received 0');
  await expectRefused(await bad({ keep_ratio: 1.5 }), 400, 'ERR_GRIP_RANGE', 'expected a number in (0, 1] for keep_ratio but received 1.5');
  await expectRefused(await bad({ pruner: 'magic' }), 400, 'ERR_GRIP_RANGE', `expected one of grip, ${PRUNER_NAMES.join(', ')} for pruner but received "magic"`);
  await expectRefused(await bad({ temperature: 0.7 }), 400, 'ERR_GRIP_UNSUPPORTED', 'expected temperature 0 or none (greedy decoding; sampling is not implemented) for temperature but received 0.7');
  await expectRefused(await bad({ max_tokens: 0 }), 400, 'ERR_GRIP_RANGE', 'expected an integer in [1, 1024] for max_tokens but received 0');
  await expectRefused(await bad({ model: 'gpt-4o' }), 400, 'ERR_GRIP_RANGE', 'expected the served model "shapes-llava-tiny" for model but received "gpt-4o"');
  await expectRefused(await bad({ messages: [{ role: 'system', content: 'be brief' }, ...userMessage('what?', dataUrl(images[0]!))] }), 400, 'ERR_GRIP_UNSUPPORTED', 'expected one user message (the model answers one question about one image) for messages but received 2 messages');
  // The openai client surfaces the same error.
  const error = await client.chat.completions.create({ ...body(0), temperature: 0.5 } as OpenAI.ChatCompletionCreateParamsNonStreaming).catch((e: unknown) => e);
  assert.instance(error, OpenAI.APIError);
  assert.is((error as InstanceType<typeof OpenAI.APIError>).status, 400);
  assert.is((error as InstanceType<typeof OpenAI.APIError>).code, 'ERR_GRIP_UNSUPPORTED');
});

test('unknown routes get 404, a wrong method 405', async () => {
  await expectRefused(await fetch(`${server.url}/v1/completions`, { method: 'POST', body: '{}' }), 404, 'ERR_GRIP_RANGE',
    'expected one of GET /health, GET /v1/models, GET /metrics, POST /v1/chat/completions for the route but received POST /v1/completions');
  const r = await fetch(`${server.url}/v1/chat/completions`);
  assert.is(r.headers.get('allow'), 'POST');
  await expectRefused(r, 405, 'ERR_GRIP_RANGE', 'expected POST for /v1/chat/completions but received GET');
});

test('GET /v1/models lists the model; /health says ok', async () => {
  const models = await client.models.list();
  assert.equal(models.data.map((m) => m.id), [MODEL]);
  const h = (await (await fetch(`${server.url}/health`)).json()) as Record<string, unknown>;
  assert.is(h.status, 'ok');
  assert.is(h.model, MODEL);
});

test('a body over the limit gets 413, by Content-Length or as a chunked body grows', async () => {
  const small = await startServer({ model, port: 0, maxBodyBytes: 4096 });
  try {
    const message = 'expected a request body of at most 4096 bytes for /v1/chat/completions but received more';
    await expectRefused(await post(small.url, { ...body(0), padding: 'x'.repeat(5000) }), 413, 'ERR_GRIP_RANGE', message);
    // Chunked: no Content-Length, the body is refused once it passes the limit.
    const chunked = await new Promise<{ status: number; text: string; chunked: boolean }>((resolve, reject) => {
      const req = httpRequest(`${small.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
        let text = '';
        res.on('data', (c) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode!, text, chunked: req.getHeader('transfer-encoding') === undefined }));
      });
      req.on('error', (e: NodeJS.ErrnoException) => (e.code === 'EPIPE' || e.code === 'ECONNRESET' ? undefined : reject(e)));
      const piece = 'x'.repeat(1024);
      let sent = 0;
      const write = () => {
        if (sent++ < 64 && !req.destroyed) req.write(piece, () => setImmediate(write));
      };
      write();
    });
    assert.is(chunked.status, 413);
    assert.is((JSON.parse(chunked.text) as { error: { message: string } }).error.message, message);
  } finally {
    await small.close();
  }
});

test('a full queue gets 429 with Retry-After; the queued requests are still answered', async () => {
  const tight = await startServer({ model, port: 0, maxBatch: 1, maxQueue: 1 });
  try {
    const running = new AbortController();
    const first = post(tight.url, body(4, { ignore_eos: true, max_tokens: 1000 }), { signal: running.signal }).catch(() => undefined);
    await until('the first request to run', async () => (await health(tight.url)).running === 1);
    const second = post(tight.url, body(5));
    await until('the second request to wait', async () => (await health(tight.url)).waiting === 1);
    const third = await post(tight.url, body(6));
    const retryAfter = Number(third.headers.get('retry-after'));
    assert.ok(Number.isInteger(retryAfter) && retryAfter >= 1, `Retry-After ${third.headers.get('retry-after')}`);
    await expectRefused(third, 429, 'ERR_GRIP_RANGE', `expected at most 1 waiting requests for the queue but received one more (retry after ${retryAfter} s)`);
    running.abort();
    await first;
    const answer = (await (await second).json()) as OpenAI.ChatCompletion;
    assert.is(answer.choices[0]!.message.content, (await alone(5, 1)).text);
    assert.is(tight.metrics.requests.get({ route: '/v1/chat/completions', status: '429' }), 1);
  } finally {
    await tight.close();
  }
});

test('close() drains: the request in flight is answered, a new one on its connection gets 503, new connections are refused', async () => {
  const draining = await startServer({ model, port: 0 });
  // One kept-alive connection, by hand: the second request is written after close() began.
  const socket = connect(draining.port, '127.0.0.1');
  let raw = '';
  socket.on('data', (chunk) => (raw += chunk));
  const payload = JSON.stringify(body(7, { ignore_eos: true, max_tokens: 200 }));
  socket.write(`POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(payload)}\r\n\r\n${payload}`);
  await until('the request to run', () => draining.metrics.queueSeconds.render().includes('_count 1'));
  const closed = draining.close();
  socket.write('GET /health HTTP/1.1\r\nHost: x\r\n\r\n');
  await closed;
  await until('the connection to close', () => socket.destroyed || socket.readableEnded);
  const [first, second] = raw.split(/(?=HTTP\/1\.1 )/);
  assert.match(first!, /^HTTP\/1\.1 200 /);
  assert.is((JSON.parse(first!.slice(first!.indexOf('\r\n\r\n') + 4)) as OpenAI.ChatCompletion).usage!.completion_tokens, 200);
  assert.match(second!, /^HTTP\/1\.1 503 /);
  assert.equal(JSON.parse(second!.slice(second!.indexOf('\r\n\r\n') + 4)), { error: { message: 'expected a server that accepts requests but received one that is shutting down', type: 'server_error', code: 'ERR_GRIP_RANGE', param: null } });
  socket.destroy();
  const after = await post(draining.url, body(7)).then(() => 'answered', (e: Error) => (e.cause as NodeJS.ErrnoException | undefined)?.code ?? e.message);
  assert.is(after, 'ECONNREFUSED');
});

/** The samples of a Prometheus text exposition, checked line by line. */
function parsePrometheus(text: string): { types: Map<string, string>; samples: { name: string; labels: Record<string, string>; value: number }[] } {
  const types = new Map<string, string>();
  const samples: { name: string; labels: Record<string, string>; value: number }[] = [];
  assert.ok(text.endsWith('\n'), 'the exposition ends with a newline');
  for (const line of text.trimEnd().split('\n')) {
    const type = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line);
    if (type) {
      assert.not.ok(types.has(type[1]!), `TYPE twice for ${type[1]}`);
      types.set(type[1]!, type[2]!);
      continue;
    }
    if (/^# HELP [a-zA-Z_:][a-zA-Z0-9_:]* .+$/.test(line)) continue;
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*)\})? (-?[0-9.e+-]+|\+Inf|-Inf|NaN)$/.exec(line);
    assert.ok(sample, `not a Prometheus line: ${line}`);
    const labels: Record<string, string> = {};
    for (const m of (sample![2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[m[1]!] = m[2]!;
    const name = sample![1]!;
    const base = name.replace(/_(bucket|sum|count)$/, '');
    assert.ok(types.has(name) || types.get(base) === 'histogram', `sample ${name} without a TYPE`);
    samples.push({ name, labels, value: Number(sample![3]!.replace('+Inf', 'Infinity')) });
  }
  return { types, samples };
}

test('GET /metrics parses as Prometheus text with requests, tokens, queue, batch, prefill, decode and kept ratio', async () => {
  const response = await fetch(`${server.url}/metrics`);
  assert.match(response.headers.get('content-type')!, /^text\/plain; version=0\.0\.4/);
  const { types, samples } = parsePrometheus(await response.text());
  for (const [name, type] of Object.entries({
    grip_requests_total: 'counter', grip_prompt_tokens_total: 'counter', grip_completion_tokens_total: 'counter', grip_queue_length: 'gauge',
    grip_batch_size: 'histogram', grip_prefill_seconds: 'histogram', grip_decode_seconds: 'histogram', grip_kept_ratio: 'histogram',
  })) assert.is(types.get(name), type, name);
  const value = (name: string, labels: Record<string, string> = {}) => samples.find((s) => s.name === name && JSON.stringify(s.labels) === JSON.stringify(labels))?.value;
  assert.ok(value('grip_requests_total', { route: '/v1/chat/completions', status: '200' })! >= 36);
  assert.ok(value('grip_requests_total', { route: '/v1/chat/completions', status: '400' })! >= 13);
  assert.ok(value('grip_completion_tokens_total')! > 0);
  assert.is(value('grip_queue_length'), 0);
  for (const histogram of ['grip_batch_size', 'grip_prefill_seconds', 'grip_decode_seconds', 'grip_kept_ratio']) {
    const buckets = samples.filter((s) => s.name === `${histogram}_bucket`).map((s) => s.value);
    assert.ok(buckets.every((v, i) => i === 0 || v >= buckets[i - 1]!), `${histogram} buckets are cumulative`);
    assert.is(buckets.at(-1), value(`${histogram}_count`), `${histogram} +Inf bucket = count`);
    assert.ok(value(`${histogram}_count`)! > 0, `${histogram} observed something`);
  }
});

test('grip serve names a bad flag before loading anything', () => {
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(root, 'lib', 'cli.ts'), 'serve', '--keep', '2'], { encoding: 'utf8', env: childEnv });
  assert.is(r.status, 1);
  assert.is(r.stderr.trim(), 'grip: expected a number in (0, 1] for --keep but received "2" (ERR_GRIP_RANGE)');
});

test('grip serve prints its address and drains on SIGTERM: the request in flight is answered, the process exits 0', async () => {
  const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'lib', 'cli.ts'), 'serve', '--port', '0', '--keep', '0.25', '--threads', '1'], { stdio: ['ignore', 'pipe', 'pipe'], env: childEnv });
  let stdout = '', stderr = '';
  child.stdout.on('data', (c) => (stdout += c));
  child.stderr.on('data', (c) => (stderr += c));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  try {
    await until('the server to listen', () => /at (http:\/\/\S+) /.test(stdout), 8000);
    const url = /at (http:\/\/\S+) /.exec(stdout)![1]!;
    assert.match(stdout, /grip serve: shapes-llava-tiny on cpu at http:\/\/127\.0\.0\.1:\d+ \(POST \/v1\/chat\/completions; keep 0\.25, pruner the model's own\)/);
    const inFlight = post(url, body(8, { ignore_eos: true, max_tokens: 300 }));
    await until('the request to run', async () => (await health(url)).running === 1);
    child.kill('SIGTERM');
    const answer = (await (await inFlight).json()) as OpenAI.ChatCompletion;
    assert.is(answer.usage!.completion_tokens, 300);
    assert.is((answer.usage as unknown as Record<string, number>).kept_visual_tokens, 36, 'the default --keep 0.25 with the GRIP pruner');
    assert.is(await exited, 0, stderr);
    assert.match(stdout, /grip serve: draining\ngrip serve: closed\n$/);
  } finally {
    child.kill('SIGKILL');
  }
});

test.run();
