// continuous.test.ts — the decode batch behind grip serve's continuous
// batching (VLM.decodeBatch / joinBatch): rows that join at different steps,
// with different images, prompts, keep ratios, pruners (pre-LLM GRIP and
// in-LLM FastV, whose caches differ in length per layer) and lengths, each
// get exactly the tokens generate gives them alone; a cancelled row leaves
// and the others go on; the join checks its arguments.
import { join } from 'node:path';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { makeExamples, renderScene } from '../../lib/data/shapes/index.ts';
import { defaultPruner } from '../../lib/demo.ts';
import { loadVLM, type GenerateRequest, type GenerateResult, type VLM } from '../../lib/model/vlm.ts';
import { FastVPruner } from '../../lib/prune/heuristics/fastv.ts';
import type { Pruner } from '../../lib/prune/pruner.ts';
import { expectError } from '../helpers.ts';

const test = suite('continuous');
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
let model: VLM;
let grip: Pruner;
let requests: GenerateRequest[];

test.before(async () => {
  model = await loadVLM(join(root, 'models', 'shapes-llava-tiny'), { backend: 'cpu' });
  grip = await defaultPruner(model);
  const fastv = new FastVPruner({ layer: 2 });
  const examples = makeExamples('test', 6, { questionsPerScene: 1 });
  const images = await Promise.all(examples.map((ex) => renderScene(ex.scene)));
  const settings: { pruner: Pruner | undefined; keepRatio: number; maxNewTokens: number }[] = [
    { pruner: grip, keepRatio: 0.25, maxNewTokens: 9 },
    { pruner: undefined, keepRatio: 1, maxNewTokens: 4 },
    { pruner: fastv, keepRatio: 0.5, maxNewTokens: 12 },
    { pruner: grip, keepRatio: 0.11, maxNewTokens: 7 },
    { pruner: fastv, keepRatio: 0.25, maxNewTokens: 1 },
    { pruner: grip, keepRatio: 1, maxNewTokens: 15 },
  ];
  requests = examples.map((ex, i) => ({ image: images[i]!, prompt: ex.question, stopAtEos: false, ...settings[i]! }));
});

/** Runs `plan` (step -> requests joining before it) to the end; the results by request index. */
async function runPlan(plan: Map<number, number[][]>, signals: (AbortSignal | undefined)[] = []): Promise<Map<number, GenerateResult>> {
  const batch = model.decodeBatch();
  const results = new Map<number, GenerateResult>();
  const lastStep = Math.max(...plan.keys());
  for (let step = 0; step <= lastStep || batch.size > 0; step++) {
    for (const group of plan.get(step) ?? []) {
      await model.joinBatch(batch, group.map((i) => requests[i]!), group.map((i) => ({ signal: signals[i], onEnd: (r: GenerateResult) => results.set(i, r) })));
    }
    if (batch.size > 0) await batch.step();
  }
  return results;
}

test('rows joining at different steps each get the tokens generate gives them alone', async () => {
  const alone = await Promise.all(requests.map((r) => model.generate(r)));
  // Groups share a pruner; a group joins while others decode, rows leave at different steps.
  const results = await runPlan(new Map([[0, [[0, 3]]], [2, [[1], [2, 4]]], [5, [[5]]]]));
  assert.is(results.size, requests.length);
  requests.forEach((r, i) => {
    const got = results.get(i)!;
    assert.equal(Array.from(got.tokenIds), Array.from(alone[i]!.tokenIds), `request ${i} (${r.pruner?.name ?? 'unpruned'} keep ${r.keepRatio})`);
    assert.equal(Array.from(got.kept.indices), Array.from(alone[i]!.kept.indices), `request ${i} kept`);
    assert.is(got.text, alone[i]!.text);
    assert.is(got.prefillTokens, alone[i]!.prefillTokens);
  });
});

test('a cancelled row leaves at the next step with the tokens it has; the others go on', async () => {
  const alone = await Promise.all(requests.slice(0, 3).map((r) => model.generate(r)));
  const cancel = new AbortController();
  const batch = model.decodeBatch();
  const results = new Map<number, GenerateResult>();
  await model.joinBatch(batch, [requests[0]!], [{ signal: cancel.signal, onEnd: (r) => results.set(0, r), onToken: () => { if (results.size === 0) cancel.abort(); } }]);
  await model.joinBatch(batch, [requests[1]!], [{ onEnd: (r) => results.set(1, r) }]);
  await model.joinBatch(batch, [requests[2]!], [{ onEnd: (r) => results.set(2, r) }]);
  while (batch.size > 0) await batch.step();
  assert.is(results.get(0)!.tokenIds.length, 1, 'the cancelled row kept only the token that cancelled it');
  for (const i of [1, 2]) assert.equal(Array.from(results.get(i)!.tokenIds), Array.from(alone[i]!.tokenIds), `request ${i}`);
});

test('a row that ends at its join (no new tokens) leaves at once; the batch goes on', async () => {
  const alone = await model.generate(requests[2]!);
  const batch = model.decodeBatch();
  const results = new Map<number, GenerateResult>();
  await model.joinBatch(batch, [requests[2]!], [{ onEnd: (r) => results.set(2, r) }]);
  await batch.step();
  await model.joinBatch(batch, [{ ...requests[0]!, maxNewTokens: 0 }], [{ onEnd: (r) => results.set(0, r) }]);
  assert.is(results.get(0)?.tokenIds.length, 0, 'ended at its join');
  assert.is(batch.size, 1);
  while (batch.size > 0) await batch.step();
  assert.equal(Array.from(results.get(2)!.tokenIds), Array.from(alone.tokenIds));
});

test('joinBatch checks its arguments', async () => {
  const batch = model.decodeBatch();
  await expectError(() => model.joinBatch(batch, [requests[0]!, requests[1]!], [{ onEnd: () => {} }, { onEnd: () => {} }]), 'ERR_GRIP_RANGE', 'expected the same pruner in every request of a batch for requests[1].pruner but received none');
  await expectError(() => model.joinBatch(batch, [requests[0]!], []), 'ERR_GRIP_SHAPE', 'expected an array of 1 row hooks (one per request) for rows but received 0');
  await expectError(() => model.joinBatch(batch, [requests[0]!], [{} as never]), 'ERR_GRIP_RANGE', 'expected a function for rows[0].onEnd but received undefined');
  await expectError(() => model.joinBatch({} as never, [requests[0]!], [{ onEnd: () => {} }]), 'ERR_GRIP_RANGE', 'expected a DecodeBatch from decodeBatch() for batch but received an object');
  assert.is(batch.size, 0);
});

test.run();
