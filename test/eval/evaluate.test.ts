// evaluate.test.ts — the evaluation harness on the embedded testbed model:
// its rows against answers computed here one question at a time, its
// per-kind counts, and its errors on bad input.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { makeExamples, renderScene } from '../../lib/data/shapes/index.ts';
import { evaluate, type EvalExample } from '../../lib/eval/evaluate.ts';
import { wilson } from '../../lib/eval/stats.ts';
import { loadVLM, type VLM } from '../../lib/model/vlm.ts';
import { makePruner } from '../../lib/prune/registry.ts';
import { expectError } from '../helpers.ts';

const modelDir = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'models', 'shapes-llava-tiny');
let model: VLM;
let examples: EvalExample[];

test.before(async () => {
  model = await loadVLM(modelDir, { backend: 'cpu' });
  const made = makeExamples('test', 10);
  examples = await Promise.all(made.map(async (ex) => ({ image: await renderScene(ex.scene), prompt: ex.question, answer: ex.answer, kind: ex.kind })));
});

test('rows: unpruned first, then one per pruner and ratio < 1; accuracy equals answers taken one by one', async () => {
  const uniform = makePruner('uniform');
  const rows = await evaluate(model, examples, [uniform], [0.25, 1]);
  assert.equal(rows.map((r) => [r.pruner, r.keepRatio]), [['unpruned', 1], ['uniform', 0.25]]);
  assert.is(rows[0]!.kept, 144);
  assert.is(rows[1]!.kept, 36);
  for (const row of rows) {
    let correct = 0;
    const outcomes: number[] = [];
    for (const ex of examples) {
      const out = await model.generate({ image: ex.image, prompt: ex.prompt, maxNewTokens: 4, ...(row.pruner === 'uniform' ? { pruner: uniform, keepRatio: 0.25 } : {}) });
      correct += out.text.trim() === ex.answer ? 1 : 0;
      outcomes.push(out.text.trim() === ex.answer ? 1 : 0);
    }
    assert.equal(row.outcomes, outcomes, `${row.pruner}: outcome per question`);
    assert.equal(row.interval, wilson(correct, examples.length));
    assert.is(row.n, examples.length);
    assert.is(row.correct, correct, row.pruner);
    assert.is(row.accuracy, correct / examples.length);
    assert.is(Object.values(row.perKind).reduce((s, k) => s + k.total, 0), examples.length);
    assert.is(Object.values(row.perKind).reduce((s, k) => s + k.correct, 0), correct);
    assert.ok(row.prefillMs > 0 && row.totalMs >= row.prefillMs);
  }
});

test('errors: no examples, a keep ratio outside (0, 1]', async () => {
  await expectError(() => evaluate(model, [], [], [1]), 'ERR_GRIP_SHAPE', 'expected a non-empty array of examples for examples but received an empty array');
  await expectError(() => evaluate(model, examples, [], [0.5, 1.5]), 'ERR_GRIP_RANGE', 'expected a keep ratio in (0, 1] for ratios[1] but received number 1.5');
});

test.run();
