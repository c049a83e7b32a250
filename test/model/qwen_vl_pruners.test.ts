// qwen_vl_pruners.test.ts — every pruner on Qwen2.5-VL (the tiny checkpoint: 20 visual
// tokens on a 4x5 merged grid, window attention in the tower): the right count kept,
// ascending, each kept token at its original sequence index (which the M-RoPE table maps to
// its original 3D ids), pre-LLM and at layer 2; uniform on the merged grid; PyramidDrop in
// stages; cls and visionzip refused (both read the CLS attention, which this tower lacks; a
// Qwen source for VisionZip's dominant tokens is not written yet); answerLogProb agrees with
// greedy decoding.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { loadVLM, type VLM } from '../../lib/model/vlm.ts';
import { uniformGridIndices } from '../../lib/prune/heuristics/uniform.ts';
import { numKeepFor } from '../../lib/prune/pruner.ts';
import { makePruner } from '../../lib/prune/registry.ts';
import { expectError } from '../helpers.ts';
import { keepCountTests } from './pruner_cases.ts';

const test = suite('qwen_vl_pruners');
const DIR = fileURLToPath(new URL('../fixtures/tiny-qwen2_5-vl/', import.meta.url));
const REF = JSON.parse(readFileSync(DIR + 'reference.json', 'utf8'));
const [H, W] = REF.image_size as [number, number];
const source = { image: { data: Uint8Array.from(Buffer.from(REF.image_u8_base64, 'base64')), width: W, height: H, channels: 3 as const }, prompt: REF.prompt as string };
const N = REF.num_image_tokens as number; // 20
const NB = REF.image_token_pos as number;
const NA = (REF.seq_len as number) - NB - N;

let model: VLM;
test.before(async () => { model = await loadVLM(DIR, { backend: 'cpu' }); });
test.after(() => model.dispose());

keepCountTests(test, { model: () => model, request: source, N, NB, NA, refused: ['cls', 'visionzip'] });

test('uniform keeps a lattice of the merged 4x5 grid (the layout the pruners see)', async () => {
  assert.equal(model.grid, { rows: 1, cols: model.numImageTokens }, 'the largest layout (ragged family)');
  const out = await model.logits({ ...source, pruner: makePruner('uniform'), keepRatio: 0.5 });
  assert.equal(Array.from(out.kept), Array.from(uniformGridIndices(4, 5, numKeepFor(0.5, N))));
});

test('pyramiddrop prunes in stages, kept tokens at their original positions', async () => {
  const out = await model.logits({ ...source, pruner: makePruner('pyramiddrop'), keepRatio: 0.5, positions: 'all' });
  const kept = Array.from(out.kept);
  assert.ok(kept.length > 0 && kept.length < N, `kept ${kept.length}`);
  assert.equal(Array.from(out.positionIds).slice(NB, NB + kept.length), kept.map((v) => NB + v));
});

for (const name of ['cls', 'visionzip'] as const) {
  test(`the ${name} pruner is refused: it reads CLS attention and the tower has no CLS token`, async () => {
    await expectError(() => model.logits({ ...source, pruner: makePruner(name), keepRatio: 0.5 }), 'ERR_GRIP_UNSUPPORTED',
      'expected a pruner that needs no CLS attention (Qwen2-VL\'s vision tower has no CLS token) for pruner.needs.attention but received \'cls\'');
  });
}

test('answerLogProb of the greedy answer: greedyMatch under every keep-set point, and pruning changes the log-probability', async () => {
  const unpruned = REF.cases.find((c: { name: string }) => c.name === 'a_unpruned');
  const pre = REF.cases.find((c: { name: string }) => c.name === 'b_pre_llm_k10');
  const a = await model.answerLogProb({ ...source, answer: unpruned.generated_ids, keepSets: [null, pre.prune.keep], point: 'pre-llm' });
  // teacher-forced on the unpruned greedy answer: every step is the argmax unpruned; under k10 exactly when its own greedy answer is the same
  const sameUnderK10 = JSON.stringify(pre.generated_ids) === JSON.stringify(unpruned.generated_ids) ? 1 : 0;
  assert.equal(Array.from(a.greedyMatch), [1, sameUnderK10]);
  assert.ok(a.logProb[0]! !== a.logProb[1]!, 'the keep-set changes log p(answer)');
  const layered = REF.cases.find((c: { name: string }) => c.name === 'c_in_llm_l2_k6_keep');
  const b = await model.answerLogProb({ ...source, answer: layered.generated_ids, keepSets: [layered.prune.keep], point: { layer: 2 } });
  assert.equal(Array.from(b.greedyMatch), [1]);
});

test('an image under 10 px is refused by the processor', async () => {
  await expectError(() => model.generate({ image: { data: new Uint8Array(9 * 40 * 3), width: 40, height: 9, channels: 3 }, prompt: 'hi', maxNewTokens: 1 }), 'ERR_GRIP_RANGE',
    'expected at least 10 pixels (Qwen2VLImageProcessor\'s smallest side) for the image\'s width and height but received 40x9');
});

test.run();
