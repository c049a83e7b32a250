// stream.test.ts — VLM.stream on the embedded model: the same tokens and
// result as generate, token events as they come, text deltas that add up to
// the decoded text, an early return that stops decoding and leaves the model
// serving, an abort by signal, and its request checks.
import { join } from 'node:path';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { makeExamples, renderScene } from '../../lib/data/shapes/index.ts';
import { loadVLM, type GenerateRequest, type StreamEvent, type VLM } from '../../lib/model/vlm.ts';
import { FastVPruner } from '../../lib/prune/heuristics/fastv.ts';
import { expectError } from '../helpers.ts';

const test = suite('stream');
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
let model: VLM;
let request: GenerateRequest;
test.before(async () => {
  model = await loadVLM(join(root, 'models', 'shapes-llava-tiny'), { backend: 'cpu' });
  const ex = makeExamples('test', 1, { questionsPerScene: 4 })[0]!;
  request = { image: await renderScene(ex.scene), prompt: ex.question, maxNewTokens: 6, stopAtEos: false, pruner: new FastVPruner({ layer: 2 }), keepRatio: 0.25 };
});

async function collect(events: AsyncIterable<StreamEvent>): Promise<StreamEvent[]> {
  const out: StreamEvent[] = [];
  for await (const e of events) out.push(e);
  return out;
}

test('the stream yields each token, then the result generate gives', async () => {
  const expected = await model.generate(request);
  const events = await collect(model.stream(request));
  const tokens = events.filter((e) => e.type === 'token');
  const done = events.at(-1)!;
  assert.is(done.type, 'done');
  assert.is(tokens.length, 6);
  assert.equal(tokens.map((e) => (e.type === 'token' ? e.token : -1)), Array.from(expected.tokenIds));
  if (done.type !== 'done') return;
  assert.equal(Array.from(done.result.tokenIds), Array.from(expected.tokenIds));
  assert.is(done.result.text, expected.text);
  assert.equal(Array.from(done.result.kept.indices), Array.from(expected.kept.indices));
  const text = tokens.map((e) => (e.type === 'token' ? e.text : '')).join('');
  assert.is(text, model.tokenizer.decode(expected.tokenIds, { skipSpecialTokens: true }));
});

test('leaving the loop early stops the decoding; the model goes on serving', async () => {
  let seen = 0;
  for await (const e of model.stream({ ...request, maxNewTokens: 64 })) {
    if (e.type === 'token' && ++seen === 2) break;
  }
  assert.is(seen, 2);
  const again = await model.generate(request);
  assert.is(again.tokenIds.length, 6);
});

test('an abort by signal ends the stream with its reason', async () => {
  const controller = new AbortController();
  const reason = new Error('client went away');
  let error: unknown;
  try {
    for await (const e of model.stream({ ...request, maxNewTokens: 64, signal: controller.signal })) {
      if (e.type === 'token') controller.abort(reason);
    }
  } catch (e) {
    error = e;
  }
  assert.is(error, reason);
});

test('stream checks its request like generate, naming it "request"', async () => {
  await expectError(() => collect(model.stream({ ...request, keepRatio: 0 })), 'ERR_GRIP_RANGE', 'expected a number in (0, 1] for request.keepRatio but received number 0');
  await expectError(() => collect(model.stream({ ...request, maxNewTokens: -1 })), 'ERR_GRIP_RANGE', 'expected an integer in [0, 1048576] for request.maxNewTokens but received number -1');
  await expectError(() => collect(model.stream({ prompt: 'what?' })), 'ERR_GRIP_RANGE', 'expected image or pixelValues for request but received neither');
});

test.run();
