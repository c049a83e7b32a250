// openai.test.ts — the chat-completions wire format without a model: data:
// URLs, the request checks the HTTP tests do not reach, the trimmed stream
// deltas, and the chunk shapes.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { chunkEvent, decodeDataUrl, parseChatRequest, trimmedDeltas } from '../../lib/serve/openai.ts';
import { expectError } from '../helpers.ts';

const test = suite('openai');
const limits = { modelId: 'm', maxTokensLimit: 64, defaultMaxTokens: 16 };
const png = Buffer.from([0x89, 0x50, 0x4e, 0x47]);
const image = { type: 'image_url', image_url: { url: `data:image/png;base64,${png.toString('base64')}` } };
const request = (extra: Record<string, unknown> = {}, content: unknown[] = [{ type: 'text', text: 'what?' }, image]) => ({ messages: [{ role: 'user', content }], ...extra });

test('a data: URL gives its bytes; other schemes and non-base64 data are refused', async () => {
  assert.equal(decodeDataUrl(`data:image/png;base64,${png.toString('base64')}`, 'url'), png);
  assert.equal(decodeDataUrl('data:;base64,iVBORw==', 'url'), Buffer.from('iVBORw==', 'base64'));
  await expectError(() => decodeDataUrl('HTTP://example.com/a.png', 'url'), 'ERR_GRIP_UNSUPPORTED', 'expected a data: URL (the server downloads nothing) for url but received a http: URL');
  await expectError(() => decodeDataUrl('cat.png', 'url'), 'ERR_GRIP_UNSUPPORTED', 'expected a data: URL (the server downloads nothing) for url but received "cat.png"');
  await expectError(() => decodeDataUrl('data:image/png,rawbytes', 'url'), 'ERR_GRIP_FORMAT', 'expected a base64 data: URL (data:image/png;base64,...) for url but received data:image/png');
  await expectError(() => decodeDataUrl('data:text/plain;base64,aGk=', 'url'), 'ERR_GRIP_FORMAT', 'expected an image media type for url but received "text/plain"');
  await expectError(() => decodeDataUrl('data:image/png;base64,', 'url'), 'ERR_GRIP_FORMAT', 'expected base64 image data for url but received nothing');
  await expectError(() => decodeDataUrl(42, 'url'), 'ERR_GRIP_RANGE', 'expected a data: URL string for url but received 42');
});

test('a request gives its prompt, image and options; max_completion_tokens wins over max_tokens', () => {
  const r = parseChatRequest(request({ model: 'm', max_tokens: 8, max_completion_tokens: 4, stream: true, stream_options: { include_usage: true }, keep_ratio: 0.5, pruner: 'fastv', ignore_eos: true, temperature: 0, top_p: 1, n: 1, stop: [] }, [{ type: 'text', text: 'a' }, image, { type: 'text', text: 'b' }]), limits);
  assert.equal({ ...r, image: [...r.image] }, { prompt: 'a\nb', image: [...png], maxTokens: 4, stream: true, includeUsage: true, keepRatio: 0.5, pruner: 'fastv', ignoreEos: true });
  const plain = parseChatRequest(request(), limits);
  assert.is(plain.maxTokens, 16);
  assert.is(plain.stream, false);
  assert.is(plain.keepRatio, undefined);
});

test('a request is refused with what was expected', async () => {
  await expectError(() => parseChatRequest([], limits), 'ERR_GRIP_RANGE', 'expected a JSON object for the request body but received []');
  await expectError(() => parseChatRequest({ messages: [] }, limits), 'ERR_GRIP_RANGE', 'expected a non-empty array of messages for messages but received []');
  await expectError(() => parseChatRequest({ messages: [{ role: 'assistant', content: 'x' }] }, limits), 'ERR_GRIP_UNSUPPORTED', 'expected one user message (the model answers one question about one image) for messages but received a message with role "assistant"');
  await expectError(() => parseChatRequest(request({}, [image]), limits), 'ERR_GRIP_RANGE', 'expected a text part with the question for messages[0].content but received no text');
  await expectError(() => parseChatRequest(request({}, [{ type: 'text', text: 'a' }, image, image]), limits), 'ERR_GRIP_RANGE', 'expected one image_url part (a data: URL) for messages[0].content but received 2 images');
  await expectError(() => parseChatRequest(request({}, [{ type: 'input_audio' }, image]), limits), 'ERR_GRIP_UNSUPPORTED', 'expected a content part of type text or image_url for messages[0].content[0].type but received "input_audio"');
  await expectError(() => parseChatRequest(request({ max_tokens: 65 }), limits), 'ERR_GRIP_RANGE', 'expected an integer in [1, 64] for max_tokens but received 65');
  await expectError(() => parseChatRequest(request({ max_tokens: 2.5 }), limits), 'ERR_GRIP_RANGE', 'expected an integer in [1, 64] for max_tokens but received 2.5');
  await expectError(() => parseChatRequest(request({ top_p: 0.9 }), limits), 'ERR_GRIP_UNSUPPORTED', 'expected top_p 1 or none (greedy decoding) for top_p but received 0.9');
  await expectError(() => parseChatRequest(request({ n: 2 }), limits), 'ERR_GRIP_UNSUPPORTED', 'expected n 1 or none (one greedy answer) for n but received 2');
  await expectError(() => parseChatRequest(request({ stop: ['\n'] }), limits), 'ERR_GRIP_UNSUPPORTED', 'expected no stop sequences (decoding stops at end-of-sequence or max_tokens) for stop but received ["\\n"]');
  await expectError(() => parseChatRequest(request({ stream: 'yes' }), limits), 'ERR_GRIP_RANGE', 'expected a boolean for stream but received "yes"');
  await expectError(() => parseChatRequest(request({ keep_ratio: '0.5' }), limits), 'ERR_GRIP_RANGE', 'expected a number in (0, 1] for keep_ratio but received "0.5"');
  await expectError(() => parseChatRequest(request({ pruner: 3 }), limits), 'ERR_GRIP_RANGE', 'expected a pruner name for pruner but received 3');
});

test('stream deltas are trimmed as the non-streamed text is, and join to it', () => {
  for (const deltas of [[' ', ' red', ' ', 'circle', ' ', ''], ['red'], ['', ' ', '\n'], [' a', ' b ', ' c  ']]) {
    const trim = trimmedDeltas();
    assert.is(deltas.map(trim).join(''), deltas.join('').trim(), JSON.stringify(deltas));
  }
});

test('chunks are OpenAI chat.completion.chunk events', () => {
  const id = { id: 'chatcmpl-1', created: 7, model: 'm' };
  const parse = (event: string) => {
    assert.ok(event.startsWith('data: ') && event.endsWith('\n\n'), event);
    return JSON.parse(event.slice(6)) as Record<string, unknown>;
  };
  assert.equal(parse(chunkEvent(id, { role: true })), { id: 'chatcmpl-1', object: 'chat.completion.chunk', created: 7, model: 'm', choices: [{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }] });
  assert.equal((parse(chunkEvent(id, { content: 'hi' })).choices as unknown[])[0], { index: 0, delta: { content: 'hi' }, logprobs: null, finish_reason: null });
  assert.equal((parse(chunkEvent(id, { finish: 'length' })).choices as unknown[])[0], { index: 0, delta: {}, logprobs: null, finish_reason: 'length' });
  const usage = { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3, visual_tokens: 4, kept_visual_tokens: 1 };
  assert.equal(parse(chunkEvent(id, { usage })), { id: 'chatcmpl-1', object: 'chat.completion.chunk', created: 7, model: 'm', choices: [], usage });
});

test.run();
