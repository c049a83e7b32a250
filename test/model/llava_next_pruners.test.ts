// llava_next_pruners.test.ts — every pruner on LLaVA-NeXT's sequences (the
// tiny checkpoint, 214 visual tokens from a 1x3 tile grid): the right count
// kept, ascending indices, each kept token at its original position, at the
// pre-LLM point and at layer 2; and ragged batches (images of different token
// counts) giving each row what it gets alone.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { tensor } from '../../lib/index.ts';
import { loadVLM, type VLM } from '../../lib/model/vlm.ts';
import { GripPruner } from '../../lib/prune/grip.ts';
import { makePruner, PRUNER_NAMES } from '../../lib/prune/registry.ts';
import { numKeepFor, type Pruner } from '../../lib/prune/pruner.ts';

const test = suite('llava_next_pruners');
const DIR = fileURLToPath(new URL('../fixtures/tiny-llava-next/', import.meta.url));
const REF = JSON.parse(readFileSync(DIR + 'reference.json', 'utf8')).model;
const PIXELS = JSON.parse(readFileSync(DIR + 'pixels.json', 'utf8'));
const wide = { inputIds: REF.input_ids as number[], pixelValues: tensor(Float32Array.from(REF.pixel_values.data), REF.pixel_values.shape), imageSize: REF.image_size as [number, number] };
const squareCase = PIXELS.cases.find((c: { name: string }) => c.name === 'square');
const square = { inputIds: REF.input_ids as number[], pixelValues: tensor(Float32Array.from(squareCase.pixel_values.data), squareCase.pixel_values.shape), imageSize: squareCase.image_size as [number, number] };
const N = REF.num_image_tokens as number; // 214
const NB = (REF.input_ids as number[]).indexOf(4); // text tokens before the image
const NA = REF.input_ids.length - NB - 1;

let model: VLM;
test.before(async () => { model = await loadVLM(DIR, { backend: 'cpu' }); });
test.after(() => model.dispose());

/** Every pruner by name (fastv only in the LLM), and GRIP with a fresh scorer of the model's hidden size. */
function pruners(layer: number | undefined): Array<[string, () => Pruner]> {
  const named = PRUNER_NAMES.filter((n) => layer !== undefined || n !== 'fastv')
    .map((n): [string, () => Pruner] => [n, () => makePruner(n, layer === undefined ? {} : { layer })]);
  return [...named, ['grip', () => GripPruner.init(model, { point: layer === undefined ? 'pre-llm' : { layer }, seed: 3 })]];
}

for (const layer of [undefined, 2]) {
  const where = layer === undefined ? 'pre-LLM' : `layer ${layer}`;
  for (const [name, make] of pruners(layer)) {
    test(`${name} at ${where}: keeps ceil(0.25 N) of the 214 tokens, each at its original position`, async () => {
      const pruner = make();
      const k = numKeepFor(0.25, N);
      const out = await model.logits({ ...wide, pruner, keepRatio: 0.25, positions: 'all' });
      const kept = Array.from(out.kept);
      assert.is(kept.length, k);
      assert.ok(kept.every((v, i) => v >= 0 && v < N && (i === 0 || v > kept[i - 1]!)), `ascending in [0, ${N}): ${kept.join(',')}`);
      const expected = [...Array.from({ length: NB }, (_, i) => i), ...kept.map((v) => NB + v), ...Array.from({ length: NA }, (_, j) => NB + N + j)];
      assert.equal(Array.from(out.positionIds), expected);
      assert.ok(Array.from(out.logits.host as Float32Array).every(Number.isFinite), 'finite logits');
    });
  }
}

test('a ragged batch (214 and 136 visual tokens) gives each row what it gets alone, for every point', async () => {
  // a fresh pruner for the batch and one for the rows alone: random draws in call order
  const makers: Array<() => Pruner> = [() => makePruner('random', { seed: 5 }), () => makePruner('fastv'), () => GripPruner.init(model, { seed: 3 }), () => makePruner('divprune', { layer: 1 })];
  for (const make of makers) {
    const rows = [{ ...wide, keepRatio: 0.5 }, { ...square, keepRatio: 0.25 }].map((r) => ({ ...r, maxNewTokens: 3, stopAtEos: false }));
    const pruner = make(), alonePruner = make();
    const batch = await model.generateBatch(rows.map((r) => ({ ...r, pruner })));
    for (let b = 0; b < 2; b++) {
      const alone = await model.generate({ ...rows[b]!, pruner: alonePruner });
      assert.equal(Array.from(batch[b]!.kept.indices), Array.from(alone.kept.indices), `${pruner.name} row ${b} kept`);
      assert.equal(Array.from(batch[b]!.tokenIds), Array.from(alone.tokenIds), `${pruner.name} row ${b} tokens`);
      assert.is(batch[b]!.prefillTokens, alone.prefillTokens);
    }
    assert.is(batch[0]!.kept.indices.length, numKeepFor(0.5, 214));
    assert.is(batch[1]!.kept.indices.length, numKeepFor(0.25, 136));
  }
});

test('an unpruned ragged batch equals the single requests', async () => {
  const requests = [wide, square].map((r) => ({ ...r, maxNewTokens: 3, stopAtEos: false }));
  const batch = await model.generateBatch(requests);
  for (let b = 0; b < 2; b++) assert.equal(Array.from(batch[b]!.tokenIds), Array.from((await model.generate(requests[b]!)).tokenIds));
  assert.equal(batch.map((r) => r.kept.indices.length), [214, 136]);
});

test.run();
