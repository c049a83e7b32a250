// testbed.test.ts — the embedded model (models/shapes-llava-tiny) in our
// runtime against the framework that trained it: tools/testbed/train.py
// wrote PyTorch's float32 logits at the answer position for the first 64
// test questions and its greedy answer for the whole test split, from the
// committed weights. The questions and images are regenerated here by the
// library's generator, which must reproduce the exported test split. It also
// wrote logits with the visual tokens pruned at a decoder layer (PyTorch masks
// the pruned keys from that layer on; our runtime drops the rows), which
// checks the runtime's in-LLM pruning against the forward the testbed model's
// token-drop augmentation trains with.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { makeExamples, renderScene } from '../../lib/data/shapes/index.ts';
import { loadVLM, type VLM } from '../../lib/model/vlm.ts';
import { FixedPruner } from '../../lib/prune/pruner.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const modelDir = join(root, 'models', 'shapes-llava-tiny');

interface Reference {
  vocab_size: number;
  cases: { id: string; input_ids: number[]; answer_id: number; logits: number[] }[];
  pruned_cases: { id: string; input_ids: number[]; layer: number; keep: number[]; logits: number[] }[];
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

/** max |ours - theirs| / max |theirs| */
function relativeError(ours: Float32Array, theirs: readonly number[]): number {
  let diff = 0, scale = 0;
  theirs.forEach((v, j) => {
    diff = Math.max(diff, Math.abs(ours[j]! - v));
    scale = Math.max(scale, Math.abs(v));
  });
  return diff / scale;
}

test('logits at the answer position match PyTorch to 1e-4 relative (64 test questions)', async () => {
  let worst = 0;
  for (const c of ref.cases) {
    const i = examples.findIndex((e) => e.id === c.id);
    const { logits } = await model.logits({ image: images[i]!, inputIds: c.input_ids });
    worst = Math.max(worst, relativeError(logits.host as Float32Array, c.logits));
  }
  assert.ok(worst < 1e-4, `max relative logit error ${worst}`);
});

test('pruned at decoder layer 1 or 2, logits match PyTorch to 1e-4 relative (16 test questions)', async () => {
  assert.is(ref.pruned_cases.length, 16);
  assert.equal([...new Set(ref.pruned_cases.map((c) => c.layer))].sort(), [1, 2]);
  let worst = 0, unprunedGap = 0;
  for (const c of ref.pruned_cases) {
    const i = examples.findIndex((e) => e.id === c.id);
    assert.ok(c.keep.length < 144, `${c.id}: the case prunes nothing`);
    const pruned = await model.logits({ image: images[i]!, inputIds: c.input_ids, pruner: new FixedPruner({ layer: c.layer }, [c.keep]), keepRatio: c.keep.length / 144 });
    assert.equal(Array.from(pruned.kept), c.keep);
    worst = Math.max(worst, relativeError(pruned.logits.host as Float32Array, c.logits));
    // The reference must tell pruned from unpruned, or this test could not fail.
    const full = await model.logits({ image: images[i]!, inputIds: c.input_ids });
    unprunedGap = Math.max(unprunedGap, relativeError(full.logits.host as Float32Array, c.logits));
  }
  assert.ok(worst < 1e-4, `max relative logit error ${worst}`);
  assert.ok(unprunedGap > 1e-2, `the unpruned logits are within ${unprunedGap} of the pruned reference`);
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
