// llava.test.ts — the runtime against an implementation that shares no code
// with lib/: tools/llava_ref/llava_np.py (float64 numpy) wrote the logits,
// greedy tokens and answer log-likelihoods of test/fixtures/tiny-llava (a
// random checkpoint in the Hugging Face LLaVA layout, f32/f16/bf16 weights)
// into reference.json, with and without pruning (pre-LLM and at layer 2).
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { tensor, type Tensor } from '../../lib/index.ts';
import { loadVLM, type VLM } from '../../lib/model/vlm.ts';
import { FastVPruner } from '../../lib/prune/heuristics/fastv.ts';
import { RandomPruner } from '../../lib/prune/heuristics/random.ts';
import { FixedPruner, type PruneContext, type Pruner, type PrunePoint } from '../../lib/prune/pruner.ts';
import { relErr } from '../helpers.ts';

const fixtures = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures');
const dir = join(fixtures, 'tiny-llava');

interface Packed { shape: number[]; data: number[] }
interface Case {
  name: string; prompt: string; image: string; input_ids: number[];
  prune: null | { point: 'pre_llm' | 'in_llm'; layer?: number; cache?: 'keep' | 'compact'; renumber: boolean; keep: number[] };
  seq_len_after_prune?: number; position_ids: number[]; position_ids_after_prune?: number[];
  last_logits: number[]; full_logits?: Packed; generated_ids: number[]; eos_step: number | null;
}
interface Reference {
  images: Record<string, Packed>; cases: Case[];
  features: { case: string; vision_features: Packed; projected_features: Packed };
  loglik: { name: string; case: string; answer: string; answer_ids: number[]; token_logprobs: number[]; sum: number }[];
}
const ref = JSON.parse(readFileSync(join(dir, 'reference.json'), 'utf8')) as Reference;
const caseNamed = (name: string) => ref.cases.find((c) => c.name === name)!;
const pixels = (name: string): Tensor => tensor(Float32Array.from(ref.images[name]!.data), ref.images[name]!.shape);


function pointOf(c: Case): PrunePoint {
  return c.prune!.point === 'pre_llm' ? 'pre-llm' : { layer: c.prune!.layer! };
}

function pruneOptions(c: Case) {
  if (!c.prune) return {};
  return {
    pruner: new FixedPruner(pointOf(c), [c.prune.keep]),
    cachePolicy: c.prune.cache ?? 'keep',
    renumberPositions: c.prune.renumber,
  };
}

let model: VLM;
test.before(async () => {
  model = await loadVLM(dir, { backend: 'cpu' });
});

test('the tokenizer and the llava-1.5 template give the reference token ids', async () => {
  for (const c of ref.cases) {
    const { logits } = await model.logits({ pixelValues: pixels(c.image), prompt: c.prompt, template: 'llava-1.5' });
    const byIds = await model.logits({ pixelValues: pixels(c.image), inputIds: c.input_ids });
    assert.equal(Array.from(logits.host as Float32Array), Array.from(byIds.logits.host as Float32Array), `${c.name}: prompt and ids disagree`);
  }
});

test('unpruned logits at every position match the numpy reference to 1e-4', async () => {
  for (const name of ['a_unpruned', 'g_unpruned_prompt2']) {
    const c = caseNamed(name);
    const { logits, positionIds } = await model.logits({ pixelValues: pixels(c.image), inputIds: c.input_ids, positions: 'all' });
    assert.equal(logits.shape, c.full_logits!.shape);
    assert.equal(Array.from(positionIds), c.position_ids);
    const err = relErr(logits.host as Float32Array, c.full_logits!.data);
    assert.ok(err < 1e-4, `${name}: relative error ${err}`);
  }
});

test('last-position logits match the reference in every pruning case', async () => {
  for (const c of ref.cases) {
    const { logits, kept, positionIds } = await model.logits({ pixelValues: pixels(c.image), inputIds: c.input_ids, ...pruneOptions(c) });
    const err = relErr(logits.host as Float32Array, c.last_logits);
    assert.ok(err < 1e-4, `${c.name}: relative error ${err}`);
    if (c.prune) assert.equal(Array.from(kept), c.prune.keep, `${c.name}: kept`);
    const expectedLast = (c.position_ids_after_prune ?? c.position_ids).at(-1);
    assert.is(positionIds[0], expectedLast, `${c.name}: position of the last row`);
  }
});

test('greedy tokens match the reference, with and without stopping at EOS', async () => {
  for (const c of ref.cases) {
    const common = { pixelValues: pixels(c.image), inputIds: c.input_ids, maxNewTokens: 6, ...pruneOptions(c) };
    const all = await model.generate({ ...common, stopAtEos: false });
    assert.equal(Array.from(all.tokenIds), c.generated_ids, `${c.name}: tokens`);
    // Like Hugging Face's generate, the result ends with the EOS token itself.
    const stopped = await model.generate(common);
    const untilEos = c.eos_step === null ? c.generated_ids : c.generated_ids.slice(0, c.eos_step + 1);
    assert.equal(Array.from(stopped.tokenIds), untilEos, `${c.name}: tokens until EOS`);
  }
});

test('answer log-likelihoods match the reference for each keep-set in one batch', async () => {
  for (const l of ref.loglik) {
    const c = caseNamed(l.case);
    const keepSets = [c.prune ? c.prune.keep : null, null];
    const result = await model.answerLogProb({
      pixelValues: pixels(c.image), inputIds: c.input_ids, answer: l.answer,
      keepSets, point: c.prune ? pointOf(c) : 'pre-llm', cachePolicy: c.prune?.cache ?? 'keep',
    });
    assert.equal(Array.from(result.answerIds), l.answer_ids, `${l.name}: answer ids`);
    const tokens = result.tokenLogProbs.subarray(0, l.answer_ids.length);
    assert.ok(relErr(tokens, l.token_logprobs) < 1e-4, `${l.name}: token log-probs ${Array.from(tokens)} vs ${l.token_logprobs}`);
    assert.ok(Math.abs(result.logProb[0]! - l.sum) / Math.abs(l.sum) < 1e-4, `${l.name}: ${result.logProb[0]} vs ${l.sum}`);
    // The second keep-set keeps everything: the unpruned likelihood.
    const unpruned = ref.loglik.find((u) => u.case === 'a_unpruned')!.sum;
    if (c.image === 'img0' && c.prompt === caseNamed('a_unpruned').prompt) {
      assert.ok(Math.abs(result.logProb[1]! - unpruned) / Math.abs(unpruned) < 1e-4, `${l.name}: unpruned row ${result.logProb[1]} vs ${unpruned}`);
    }
  }
});

test('prepare returns the projected visual tokens of the reference at the pre-LLM point', async () => {
  const c = caseNamed('a_unpruned');
  const prepared = await model.prepare({ pixelValues: pixels(c.image), inputIds: c.input_ids });
  assert.equal(prepared.visual.shape, [1, 64, 48]);
  const err = relErr(prepared.visual.host as Float32Array, ref.features.projected_features.data);
  assert.ok(err < 1e-4, `projected features: relative error ${err}`);
});

test('a prepared in-LLM prompt is reused by answerLogProb without being changed', async () => {
  const l = ref.loglik.find((x) => x.name === 'h_loglik_in_llm_l2_k24_keep')!;
  const c = caseNamed(l.case);
  const prepared = await model.prepare({ pixelValues: pixels(c.image), inputIds: c.input_ids, point: { layer: 2 }, attention: 'text-tokens' });
  assert.is(prepared.attention!.length, 64);
  for (let round = 0; round < 2; round++) {
    const r = await model.answerLogProb({ prepared, answer: l.answer, keepSets: [c.prune!.keep, null] });
    assert.ok(Math.abs(r.logProb[0]! - l.sum) / Math.abs(l.sum) < 1e-4, `round ${round}: ${r.logProb[0]} vs ${l.sum}`);
  }
});

test('answerLogProb says whether greedy decoding gives the answer, and can return the first distribution', async () => {
  const c = caseNamed('a_unpruned');
  const greedy = c.generated_ids[0]!;
  const other = greedy === 5 ? 6 : 5;
  const r = await model.answerLogProb({ pixelValues: pixels(c.image), inputIds: c.input_ids, answer: [greedy], keepSets: [null, c.prune?.keep ?? null], returnFirstLogProbs: true });
  assert.equal(Array.from(r.greedyMatch), [1, 1]);
  const logits = Float64Array.from(c.last_logits);
  const max = Math.max(...logits);
  const lse = max + Math.log(logits.reduce((sum, v) => sum + Math.exp(v - max), 0));
  assert.ok(Math.abs(r.firstLogProbs![other]! - (logits[other]! - lse)) < 1e-4, 'first log-probs');
  const wrong = await model.answerLogProb({ pixelValues: pixels(c.image), inputIds: c.input_ids, answer: [other], keepSets: [null] });
  assert.equal(Array.from(wrong.greedyMatch), [0]);
});

test('ops awaited off the event loop (async) and on it (sync) give the same logits', async () => {
  const c = caseNamed('e_in_llm_l2_k24_compact');
  const asyncModel = await loadVLM(dir, { backend: 'cpu', opMode: 'async' });
  const syncModel = await loadVLM(dir, { backend: 'cpu', opMode: 'sync' });
  const a = await asyncModel.generate({ pixelValues: pixels(c.image), inputIds: c.input_ids, maxNewTokens: 6, stopAtEos: false, ...pruneOptions(c) });
  const b = await syncModel.generate({ pixelValues: pixels(c.image), inputIds: c.input_ids, maxNewTokens: 6, stopAtEos: false, ...pruneOptions(c) });
  assert.equal(Array.from(a.tokenIds), c.generated_ids);
  assert.equal(Array.from(b.tokenIds), c.generated_ids);
});

test('the newer Hugging Face tensor names load to the same model', async () => {
  const other = await loadVLM(join(fixtures, 'tiny-llava-new-names'), { backend: 'cpu' });
  const c = caseNamed('d_in_llm_l2_k24_keep');
  const a = await model.logits({ pixelValues: pixels(c.image), inputIds: c.input_ids, ...pruneOptions(c) });
  const b = await other.logits({ pixelValues: pixels(c.image), inputIds: c.input_ids, ...pruneOptions(c) });
  assert.equal(Array.from(b.logits.host as Float32Array), Array.from(a.logits.host as Float32Array));
});

test('keep ratio 1.0 reproduces the unpruned logits exactly, pre-LLM and in-LLM', async () => {
  const c = caseNamed('a_unpruned');
  const base = await model.logits({ pixelValues: pixels(c.image), inputIds: c.input_ids, positions: 'all' });
  const pruners: Pruner[] = [new RandomPruner(), new RandomPruner({ point: { layer: 2 } }), new FastVPruner({ layer: 1 }), new FastVPruner({ layer: 3 })];
  for (const pruner of pruners) {
    for (const cachePolicy of ['keep', 'compact'] as const) {
      const r = await model.logits({ pixelValues: pixels(c.image), inputIds: c.input_ids, positions: 'all', pruner, keepRatio: 1, cachePolicy });
      assert.equal(r.kept.length, 64);
      assert.equal(Array.from(r.logits.host as Float32Array), Array.from(base.logits.host as Float32Array), `${pruner.name} at ${JSON.stringify(pruner.point)}`);
    }
  }
});

test('a ragged batch (different images, prompts and keep counts) gives each row its single-request result', async () => {
  const a = caseNamed('a_unpruned'), g = caseNamed('g_unpruned_prompt2');
  for (const point of ['pre-llm', { layer: 2 }] as PrunePoint[]) {
    const pruner = new RandomPruner({ point, seed: 5 });
    const requests = [
      { pixelValues: pixels(a.image), inputIds: a.input_ids, keepRatio: 0.25, maxNewTokens: 5, stopAtEos: false },
      { pixelValues: pixels(g.image), inputIds: g.input_ids, keepRatio: 0.5, maxNewTokens: 3, stopAtEos: false },
      { pixelValues: pixels(a.image), inputIds: a.input_ids, keepRatio: 1, maxNewTokens: 4, stopAtEos: false },
    ];
    const batch = await model.generateBatch(requests.map((r) => ({ ...r, pruner })));
    assert.equal(batch.map((r) => r.kept.indices.length), [16, 32, 64]);
    for (let b = 0; b < requests.length; b++) {
      const single = await model.generate({ ...requests[b]!, pruner: new FixedPruner(point, [batch[b]!.kept.indices]) });
      assert.equal(Array.from(batch[b]!.tokenIds), Array.from(single.tokenIds), `row ${b} at ${JSON.stringify(point)}`);
      assert.is(batch[b]!.tokenIds.length, requests[b]!.maxNewTokens);
    }
  }
});

test('fastv keeps the tokens with the most last-token attention at layer K-1', async () => {
  const c = caseNamed('a_unpruned');
  let seen: PruneContext | undefined;
  const spy: Pruner = {
    name: 'spy', point: { layer: 2 }, needs: { attention: 'last-token' },
    async select(ctx) {
      seen = ctx;
      return new FastVPruner({ layer: 2 }).select(ctx);
    },
  };
  const r = await model.logits({ pixelValues: pixels(c.image), inputIds: c.input_ids, pruner: spy, keepRatio: 0.25 });
  const attention = seen!.attention!;
  assert.is(attention.length, 64);
  const mass = attention.reduce((s, v) => s + v, 0);
  assert.ok(mass > 0 && mass <= 1 + 1e-5, `attention mass on the image ${mass}`);
  const threshold = [...attention].sort((p, q) => q - p)[15]!;
  for (const k of r.kept) assert.ok(attention[k]! >= threshold, `kept ${k} below the 16th largest attention`);
  assert.is(r.kept.length, 16);
});

test('an aborted signal stops generation with its reason', async () => {
  const c = caseNamed('a_unpruned');
  const controller = new AbortController();
  controller.abort(new Error('stop'));
  try {
    await model.generate({ pixelValues: pixels(c.image), inputIds: c.input_ids, signal: controller.signal });
    assert.unreachable('should have thrown');
  } catch (error) {
    assert.is((error as Error).message, 'stop');
  }
});

test.run();
