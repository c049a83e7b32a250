// testbed.test.ts — the embedded model (models/shapes-llava-tiny) in our
// runtime against the framework that trained it: tools/testbed/train.py
// wrote PyTorch's float32 logits at the answer position for the first 64
// test questions and its greedy answer for the whole test split, from the
// committed weights. The questions and images are regenerated here by the
// library's generator, which must reproduce the exported test split.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { makeExamples, renderScene } from '../../lib/data/shapes/index.ts';
import { loadVLM, type VLM } from '../../lib/model/llava.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const modelDir = join(root, 'models', 'shapes-llava-tiny');

interface Reference {
  vocab_size: number;
  cases: { id: string; input_ids: number[]; answer_id: number; logits: number[] }[];
  greedy: { ids: string[]; answer_ids: number[] };
  accuracy: number;
}
const ref = JSON.parse(readFileSync(join(root, 'test', 'fixtures', 'shapes-testbed-reference.json'), 'utf8')) as Reference;
const examples = makeExamples('test', ref.greedy.ids.length, { questionsPerScene: 4 });

let model: VLM;
let images: Buffer[];
test.before(async () => {
  model = await loadVLM(modelDir, { backend: 'cpu' });
  const scenes = new Map<number, Promise<Buffer>>();
  images = await Promise.all(examples.map((ex) => {
    if (!scenes.has(ex.sceneIndex)) scenes.set(ex.sceneIndex, renderScene(ex.scene));
    return scenes.get(ex.sceneIndex)!;
  }));
});

test('the generator reproduces the exported test split (ids and token ids)', async () => {
  assert.equal(examples.map((ex) => ex.id), ref.greedy.ids);
  for (const c of ref.cases) {
    const ex = examples.find((e) => e.id === c.id)!;
    const { logits } = await model.logits({ image: images[examples.indexOf(ex)]!, prompt: ex.question, template: 'llava-1.5' });
    const byIds = await model.logits({ image: images[examples.indexOf(ex)]!, inputIds: c.input_ids });
    assert.equal(Array.from(logits.host as Float32Array), Array.from(byIds.logits.host as Float32Array), `${c.id}: prompt and ids disagree`);
  }
});

test('logits at the answer position match PyTorch to 1e-4 relative (64 test questions)', async () => {
  let worst = 0;
  for (const c of ref.cases) {
    const i = examples.findIndex((e) => e.id === c.id);
    const { logits } = await model.logits({ image: images[i]!, inputIds: c.input_ids });
    const ours = logits.host as Float32Array;
    let diff = 0, scale = 0;
    c.logits.forEach((v, j) => {
      diff = Math.max(diff, Math.abs(ours[j]! - v));
      scale = Math.max(scale, Math.abs(v));
    });
    worst = Math.max(worst, diff / scale);
  }
  assert.ok(worst < 1e-4, `max relative logit error ${worst}`);
});

test('greedy answers equal PyTorch on the whole test split', async () => {
  const mismatches: string[] = [];
  let correct = 0;
  for (let i = 0; i < examples.length; i++) {
    const ex = examples[i]!;
    const r = await model.generate({ image: images[i]!, prompt: ex.question, template: 'llava-1.5', maxNewTokens: 1, stopAtEos: false });
    if (r.tokenIds[0] !== ref.greedy.answer_ids[i]) mismatches.push(`${ex.id}: ours ${r.tokenIds[0]}, torch ${ref.greedy.answer_ids[i]}`);
    if (r.text === ex.answer) correct++;
  }
  assert.equal(mismatches, [], `${mismatches.length} of ${examples.length} differ`);
  assert.ok(Math.abs(correct / examples.length - ref.accuracy) < 1e-9, `accuracy ${correct / examples.length} vs ${ref.accuracy}`);
});

test.run();
