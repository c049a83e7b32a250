// llava_next_model.test.ts — loadVLM on the tiny LLaVA-NeXT checkpoint
// (test/fixtures/tiny-llava-next, Mistral text model, sliding window 384)
// against the independent numpy reference (tools/llava_ref/llava_next_np.py):
// last logits to 1e-4 relative and identical greedy tokens, unpruned,
// pre-LLM and at layer 2 with both cache policies, from the tiles' pixel
// values; the window refusal; a batch of images of different token counts.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { tensor, type Tensor } from '../../lib/index.ts';
import { loadVLM, type VLM } from '../../lib/model/vlm.ts';
import { FixedPruner, type PrunePoint } from '../../lib/prune/pruner.ts';
import { expectError, relErr } from '../helpers.ts';

const test = suite('llava_next_model');
const DIR = fileURLToPath(new URL('../fixtures/tiny-llava-next/', import.meta.url));

interface Packed { shape: number[]; data: number[] }
interface Case {
  name: string; prune: null | { point: 'pre_llm' | 'in_llm'; layer?: number; cache?: 'keep' | 'compact' };
  seq_len: number; position_ids: number[]; position_ids_last_layer: number[]; decode_position_start: number;
  last_logits: number[]; generated_ids: number[]; step_logits: Packed;
}
const REF = JSON.parse(readFileSync(DIR + 'reference.json', 'utf8')).model as {
  image_size: [number, number]; input_ids: number[]; keep: number[]; num_image_tokens: number;
  sliding_window: number; pixel_values: Packed; cases: Case[];
};
const pixelValues: Tensor = tensor(Float32Array.from(REF.pixel_values.data), REF.pixel_values.shape);
const source = { inputIds: REF.input_ids, pixelValues, imageSize: REF.image_size };


function pruneOptions(c: Case) {
  if (!c.prune) return {};
  const point: PrunePoint = c.prune.point === 'pre_llm' ? 'pre-llm' : { layer: c.prune.layer! };
  return { pruner: new FixedPruner(point, [REF.keep]), cachePolicy: c.prune.cache ?? 'keep' };
}

let model: VLM;
test.before(async () => { model = await loadVLM(DIR, { backend: 'cpu' }); });
test.after(() => model.dispose());

test('the reference covers unpruned, pre-LLM and layer 2 with both cache policies', () => {
  assert.equal(REF.cases.map((c) => c.name), ['unpruned', 'pre_llm', 'in_llm_l2_keep', 'in_llm_l2_compact']);
  assert.is(REF.keep.length, 53);
});

for (const c of REF.cases) {
  test(`${c.name}: last logits to 1e-4 relative, position ids as the reference`, async () => {
    const out = await model.logits({ ...source, ...pruneOptions(c), positions: 'all' });
    const V = model.config.text.vocabSize;
    const S = out.logits.shape[0]!;
    const last = (out.logits.host as Float32Array).subarray((S - 1) * V, S * V);
    const err = relErr(last, c.last_logits);
    assert.ok(err < 1e-4, `last logits: relative error ${err}`);
    assert.equal(Array.from(out.positionIds), c.position_ids_last_layer, 'position ids at the last layer');
    assert.equal(Array.from(out.kept), c.prune ? REF.keep : Array.from({ length: REF.num_image_tokens }, (_, i) => i));
  });

  test(`${c.name}: the same 4 greedy tokens`, async () => {
    const r = await model.generate({ ...source, ...pruneOptions(c), maxNewTokens: 4, stopAtEos: false });
    assert.equal(Array.from(r.tokenIds), c.generated_ids);
    assert.is(r.prefillTokens, c.position_ids_last_layer.length);
  });
}

test('the model reports LLaVA-NeXT: the family, the window, the largest token count', () => {
  // 2x2 tiles with nothing unpadded: 64 + 16 x (16 + 1) = 336 (1x3: 64 + 8 x 25 = 264)
  assert.is(model.numImageTokens, 336);
  assert.equal(model.grid, { rows: 1, cols: 336 });
});

test('a request longer than the sliding window is refused, naming the window', async () => {
  const prompt = REF.input_ids.length - 1 + REF.num_image_tokens; // 227
  await expectError(() => model.generate({ ...source, maxNewTokens: 200 }), 'ERR_GRIP_UNSUPPORTED',
    `expected at most ${REF.sliding_window} positions (text_config.sliding_window; the runtime has no sliding-window mask) for the prompt and new tokens but received ${prompt + 200} (${prompt} prompt + 200 new)`);
});

test('pixelValues need the image size, and the tile count that size gives', async () => {
  await expectError(() => model.logits({ inputIds: REF.input_ids, pixelValues }), 'ERR_GRIP_RANGE',
    'expected the original image\'s [height, width] (positive integers) with pixelValues for request.imageSize but received null');
  await expectError(() => model.logits({ ...source, imageSize: [64, 64] }), 'ERR_GRIP_SHAPE',
    'expected [5, 3, 32, 32] [T,C,H,W] for request.pixelValues but received [4, 3, 32, 32]');
});

test.run();
