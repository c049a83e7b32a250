// grip.test.ts — the GRIP pruner and its trainers: the scorer's file format,
// the losses' gradients by finite differences, and the warm-up and GRPO
// loops on the tiny test checkpoint (mechanics: they run, learn the warm-up
// target, and keep the policy a distribution over valid keep-sets).
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { GripError, tensor, type Tensor } from '../../lib/index.ts';
import { loadVLM, type VLM } from '../../lib/model/vlm.ts';
import { GripPruner } from '../../lib/prune/grip.ts';
import { FOURIER_FEATURES, SCORER_PARAM_NAMES, scorerShapes } from '../../lib/ops.ts';
import { grpoObjective, GRPOTrainer, normalise } from '../../lib/train/grpo.ts';
import { listwise, pairwise, warmup } from '../../lib/train/warmup.ts';
import { greedyKeep } from '../../lib/prune/sequential.ts';
import type { Pruner } from '../../lib/prune/pruner.ts';
import { prunersFromList } from '../../lib/prune/registry.ts';
import { mulberry32 as mulberry } from '../../lib/random.ts';
import { BudgetSampler, parseBudgets, type TrainExample } from '../../lib/train/data.ts';
import { caught } from '../helpers.ts';

const fixture = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'tiny-llava');
const work = mkdtempSync(join(tmpdir(), 'grip-train-'));
let model: VLM;
let examples: TrainExample[];

test.before(async () => {
  model = await loadVLM(fixture, { backend: 'cpu' });
  const random = mulberry(3);
  const questions = ['what is the color of the shape?', 'what shape is on the left?', 'how many shapes are there?', 'is there a red circle?'];
  const answers = ['red', 'circle', 'two', 'yes'];
  examples = Array.from({ length: 6 }, (_, i) => ({
    pixelValues: tensor(Float32Array.from({ length: 3 * 32 * 32 }, () => random() * 2 - 1), [3, 32, 32]),
    prompt: questions[i % 4]!, answer: answers[i % 4]!,
  }));
});
test.after(() => rmSync(work, { recursive: true, force: true }));

const values = (t: Tensor) => Array.from(t.host as Float32Array);
// The init defaults are the shipped recipe (train/defaults.ts); the tests below that compare
// against a plain top-k of pre-LLM scores with the mean query say so.
const plainTopk = { point: 'pre-llm', queryPooling: 'mean-text-after-image', redundancy: 0 } as const;

test('a GRIP pruner saves and loads its scorer exactly, with its settings', async () => {
  const pruner = GripPruner.init(model, { point: { layer: 2 }, hidden: 8, rank: 4, seed: 7 });
  await pruner.save(join(work, 'p1'));
  assert.equal(readdirSync(join(work, 'p1')).sort(), ['grip.json', 'pruner.safetensors']);
  const back = await GripPruner.load(join(work, 'p1'));
  assert.equal(back.point, { layer: 2 });
  assert.equal(back.settings, pruner.settings);
  for (const name of SCORER_PARAM_NAMES) assert.equal(values(back.params[name]), values(pruner.params[name]), name);
});

test('the scorer has FOURIER_FEATURES Fourier features, as the native kernels (kFourierFeatures), in every shape that names them', () => {
  const header = readFileSync(join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'native', 'core', 'args.h'), 'utf8');
  assert.is(Number(/constexpr int kFourierFeatures = (\d+);/.exec(header)?.[1]), FOURIER_FEATURES);
  const shapes = scorerShapes(48, 8, 4);
  assert.equal(shapes.filmW, { layout: `[${FOURIER_FEATURES},2H]`, shape: [FOURIER_FEATURES, 16] });
  const pruner = GripPruner.init(model, { hidden: 8, rank: 4 });
  for (const name of SCORER_PARAM_NAMES) assert.equal(pruner.params[name].shape, shapes[name].shape, name);
});

test('the same seed gives the same scorer, another seed another', () => {
  const a = GripPruner.init(model, { seed: 1, hidden: 8, rank: 4 });
  const b = GripPruner.init(model, { seed: 1, hidden: 8, rank: 4 });
  const c = GripPruner.init(model, { seed: 2, hidden: 8, rank: 4 });
  assert.equal(values(a.params.w1), values(b.params.w1));
  assert.not.equal(values(a.params.w1), values(c.params.w1));
});

test('a pruner for another model is refused by name', async () => {
  const pruner = GripPruner.init(model, { hidden: 8, rank: 4 });
  pruner.settings.model.hiddenSize = 64;
  const error = await caught(() => pruner.checkModel(model));
  assert.instance(error, GripError);
  assert.is(error.message, 'expected a model with hidden 64, 64 image tokens and 4 layers (the pruner was trained for tiny-llava) for the pruner\'s model but received hidden 48, 64 image tokens and 4 layers');
});

test('loading a pruner directory without grip.json is an IO error naming it', async () => {
  const error = await caught(() => GripPruner.load(join(work, 'nothing-here')));
  assert.instance(error, GripError);
  assert.is(error.code, 'ERR_GRIP_IO');
  assert.match(error.message, /grip\.json/);
});

test('the GRIP pruner keeps the top k of its scores, inside the runtime', async () => {
  const pruner = GripPruner.init(model, { ...plainTopk, hidden: 8, rank: 4, seed: 3 });
  const ex = examples[0]!;
  const prepared = await model.prepare({ pixelValues: ex.pixelValues!, prompt: ex.prompt });
  const scores = values(await pruner.scores(prepared.visual, prepared.query, 0.25, 'cpu'));
  const expected = Array.from(scores.keys()).sort((a, b) => scores[b]! - scores[a]! || a - b).slice(0, 16).sort((a, b) => a - b);
  const r = await model.generate({ pixelValues: ex.pixelValues!, prompt: ex.prompt, pruner, keepRatio: 0.25, maxNewTokens: 1 });
  assert.equal(Array.from(r.kept.indices), expected);
});

test("the 'last-token' query is the last prompt row at the point (causality: n·mean(n rows) − (n−1)·mean(n−1 rows))", async () => {
  const ex = examples[1]!;
  const ids = Array.from(model.tokenizer.encode(`<image>\n${ex.prompt}`));
  assert.is(model.config.modelType, 'llava');
  const image = ids.indexOf(model.config.modelType === 'llava' ? model.config.imageTokenIndex : -1);
  const n = ids.length - image - 1;
  assert.ok(n >= 3, `${n} text tokens after the image`);
  for (const point of ['pre-llm', { layer: 2 }] as const) {
    const prepare = async (inputIds: number[], query: 'mean-text-after-image' | 'last-token') =>
      values((await model.prepare({ pixelValues: ex.pixelValues!, inputIds, point, query })).query);
    const all = await prepare(ids, 'mean-text-after-image');
    const head = await prepare(ids.slice(0, -1), 'mean-text-after-image');
    const last = await prepare(ids, 'last-token');
    const expected = all.map((v, d) => n * v - (n - 1) * head[d]!);
    const worst = Math.max(...last.map((v, d) => Math.abs(v - expected[d]!)));
    assert.ok(worst < 1e-4, `${JSON.stringify(point)}: max difference ${worst}`);
    assert.ok(Math.max(...last.map((v, d) => Math.abs(v - all[d]!))) > 1e-2, 'the last row differs from the mean');
  }
});

test("a GRIP pruner with queryPooling 'last-token' gets that query inside the runtime, and keeps it through save and load", async () => {
  const pruner = GripPruner.init(model, { point: { layer: 2 }, hidden: 8, rank: 4, seed: 5, queryPooling: 'last-token', redundancy: 0 });
  assert.equal(pruner.needs, { query: 'last-token' });
  await pruner.save(join(work, 'p-last'));
  const back = await GripPruner.load(join(work, 'p-last'));
  assert.equal(back.needs, { query: 'last-token' });
  const ex = examples[2]!;
  const keptWith = async (query: 'mean-text-after-image' | 'last-token') => {
    const prepared = await model.prepare({ pixelValues: ex.pixelValues!, prompt: ex.prompt, point: { layer: 2 }, query });
    const scores = values(await back.scores(prepared.visual, prepared.query, 0.25, 'cpu'));
    return Array.from(scores.keys()).sort((a, b) => scores[b]! - scores[a]! || a - b).slice(0, 16).sort((a, b) => a - b);
  };
  const expected = await keptWith('last-token');
  assert.not.equal(expected, await keptWith('mean-text-after-image'), 'the two queries choose different tokens');
  const r = await model.generate({ pixelValues: ex.pixelValues!, prompt: ex.prompt, pruner: back, keepRatio: 0.25, maxNewTokens: 1 });
  assert.equal(Array.from(r.kept.indices), expected);
});

test("the warm-up and GRPO score with the query the pruner's queryPooling asks for", async () => {
  // Same seed, same parameters, same data: only the pooling differs, so if a trainer
  // built the default query for every pruner both runs would end identical.
  const make = (queryPooling: 'mean-text-after-image' | 'last-token') =>
    GripPruner.init(model, { point: { layer: 2 }, hidden: 8, rank: 4, seed: 9, queryPooling });
  const warmed = async (queryPooling: 'mean-text-after-image' | 'last-token') => {
    const pruner = make(queryPooling);
    for await (const _ of warmup(model, pruner, examples, { steps: 2, batch: 3, seed: 1, teacher: 'last-token' })) { /* run */ }
    return values(pruner.params.wq);
  };
  assert.not.equal(await warmed('mean-text-after-image'), await warmed('last-token'), 'warm-up');
  const trained = async (queryPooling: 'mean-text-after-image' | 'last-token') => {
    const policy = make(queryPooling);
    const trainer = new GRPOTrainer(model, policy, policy.clone(), examples, { steps: 1, group: 4, promptsPerStep: 2, reward: 'loglik', seed: 3 });
    for await (const _ of trainer.run()) { /* run */ }
    return values(policy.params.wq);
  };
  assert.not.equal(await trained('mean-text-after-image'), await trained('last-token'), 'GRPO');
});

/** cos(h_i, h_j) of prepared visual states [1, N, D], in plain TypeScript. */
function cosines(visual: Tensor): Float32Array {
  const [, N, D] = visual.shape as [number, number, number];
  const h = visual.host as Float32Array;
  const norm = Array.from({ length: N }, (_, i) => Math.hypot(...h.subarray(i * D, (i + 1) * D)));
  const out = new Float32Array(N * N);
  for (let i = 0; i < N; i++) {
    for (let j = 0; j < N; j++) {
      let dot = 0;
      for (let d = 0; d < D; d++) dot += h[i * D + d]! * h[j * D + d]!;
      out[i * N + j] = dot / (norm[i]! * norm[j]!);
    }
  }
  return out;
}

test('a GRIP pruner with a redundancy penalty keeps its greedy keep-set inside the runtime, and keeps λ through save and load', async () => {
  const pruner = GripPruner.init(model, { point: { layer: 2 }, hidden: 8, rank: 4, seed: 3, redundancy: 20, queryPooling: 'mean-text-after-image' });
  const ex = examples[1]!;
  const prepared = await model.prepare({ pixelValues: ex.pixelValues!, prompt: ex.prompt, point: { layer: 2 } });
  const scores = values(await pruner.scores(prepared.visual, prepared.query, 0.25, 'cpu'));
  const expected = Array.from(greedyKeep({ scores, similarity: cosines(prepared.visual), redundancy: 20 }, 16)).sort((a, b) => a - b);
  const topk = Array.from(scores.keys()).sort((a, b) => scores[b]! - scores[a]! || a - b).slice(0, 16).sort((a, b) => a - b);
  assert.not.equal(expected, topk, 'the case is one where the penalty changes the keep-set');
  const r = await model.generate({ pixelValues: ex.pixelValues!, prompt: ex.prompt, pruner, keepRatio: 0.25, maxNewTokens: 1 });
  assert.equal(Array.from(r.kept.indices), expected);
  await pruner.save(join(work, 'p-redundancy'));
  const back = await GripPruner.load(join(work, 'p-redundancy'));
  assert.is(back.redundancy, 20);
  const again = await model.generate({ pixelValues: ex.pixelValues!, prompt: ex.prompt, pruner: back, keepRatio: 0.25, maxNewTokens: 1 });
  assert.equal(Array.from(again.kept.indices), expected);
});

/** The directory `name` holding a fresh pruner whose grip.json has `field` set to `value` (undefined: left out). */
async function savedWith(field: string, value: unknown, name: string): Promise<string> {
  const pruner = GripPruner.init(model, { hidden: 8, rank: 4 });
  (pruner.settings as unknown as Record<string, unknown>)[field] = value;
  await pruner.save(join(work, name));
  return join(work, name);
}

test('a bad redundancy is refused at init and at load; a file without one reads as 0', async () => {
  let error = await caught(() => GripPruner.init(model, { redundancy: -1 }));
  assert.instance(error, GripError);
  assert.is(error.message, 'expected a finite number >= 0 for options.redundancy but received number -1');
  error = await caught(async () => GripPruner.load(await savedWith('redundancy', 'high', 'p-bad-redundancy')));
  assert.is(error.code, 'ERR_GRIP_FORMAT');
  assert.is(error.message, `expected redundancy a finite number >= 0 for ${join(work, 'p-bad-redundancy', 'grip.json')} but received "high"`);
  assert.is((await GripPruner.load(await savedWith('redundancy', undefined, 'p-no-redundancy'))).redundancy, 0);
});

test('prunersFromList: heuristics by name, grip and warmup from the GRIP directory, NAME=DIR under its name; bad names refused', async () => {
  const dir = join(work, 'p-list');
  const grip = GripPruner.init(model, { point: { layer: 2 }, hidden: 8, rank: 4, seed: 11, redundancy: 2 });
  await grip.save(dir);
  await GripPruner.init(model, { ...plainTopk, hidden: 8, rank: 4, seed: 12 }).save(join(dir, 'warmup'));
  const pruners = await prunersFromList(`fastv,mine=${dir},grip,warmup`, dir, model);
  assert.equal(pruners.map((p) => p.name), ['fastv', 'mine', 'grip', 'warmup']);
  assert.equal(pruners.map((p) => p.point), [{ layer: 2 }, { layer: 2 }, { layer: 2 }, 'pre-llm']);
  const ex = examples[1]!;
  const kept = async (pruner: Pruner) => Array.from((await model.generate({ pixelValues: ex.pixelValues!, prompt: ex.prompt, pruner, keepRatio: 0.25, maxNewTokens: 1 })).kept.indices);
  const want = await kept(grip);
  assert.equal(await kept(pruners[1]!), want, 'NAME=DIR selects as the pruner saved there');
  assert.equal(await kept(pruners[2]!), want, 'grip selects as the pruner in the GRIP directory');
  const error = await caught(() => prunersFromList('grip,magic', dir, model));
  assert.is(error.message, 'expected one of fastv, random, uniform, norm, cls, visionzip, divprune, cdpruner, pyramiddrop, pyramiddrop-final for pruner but received "magic"');
});

test('an unknown query pooling is refused, with the allowed values', async () => {
  const ex = examples[0]!;
  let error = await caught(() => model.prepare({ pixelValues: ex.pixelValues!, prompt: ex.prompt, query: 'first-token' as 'last-token' }));
  assert.instance(error, GripError);
  assert.is(error.message, "expected one of 'mean-text-after-image', 'last-token' for request.query but received the string \"first-token\"");
  error = await caught(() => GripPruner.init(model, { queryPooling: 'max' as 'last-token' }));
  assert.is(error.message, "expected one of 'mean-text-after-image', 'last-token' for options.queryPooling but received the string \"max\"");
  error = await caught(async () => GripPruner.load(await savedWith('queryPooling', 'max', 'p-bad-query')));
  assert.is(error.code, 'ERR_GRIP_FORMAT');
  assert.is(error.message, `expected queryPooling "mean-text-after-image" or "last-token" for ${join(work, 'p-bad-query', 'grip.json')} but received "max"`);
  error = await caught(() => model.generate({ pixelValues: ex.pixelValues!, prompt: ex.prompt, pruner: { name: 'odd', point: 'pre-llm', needs: { query: 'max' as 'last-token' }, select: async () => [Int32Array.of(0)] }, keepRatio: 0.25, maxNewTokens: 1 }));
  assert.is(error.message, "expected one of 'mean-text-after-image', 'last-token' for pruner \"odd\" needs.query but received the string \"max\"");
});

function finiteDifference(f: (x: Float64Array) => number, x: Float64Array, h = 1e-6): Float64Array {
  return x.map((_, i) => {
    const up = Float64Array.from(x), down = Float64Array.from(x);
    up[i]! += h;
    down[i]! -= h;
    return (f(up) - f(down)) / (2 * h);
  });
}

test('the GRPO objective gradient matches finite differences (clipped and unclipped samples)', () => {
  const old = Float64Array.of(-10, -12, -9.5, -11, -10.2, -13);
  const logProb = Float64Array.of(-9.9, -12.4, -9.0, -11.05, -10.9, -12.7); // ratios ~1.1, 0.67, 1.65, 0.95, 0.5, 1.35
  const ref = Float64Array.of(-10.5, -11, -9.2, -11.5, -10, -12.5);
  const adv = normalise(Float64Array.of(1, -2, 0.5, 3, -1, 0.2));
  for (const beta of [0, 0.04, 1]) {
    const { dLogProb, clipped } = grpoObjective(logProb, old, ref, adv, 0.2, beta);
    assert.ok(clipped > 0 && clipped < 1, `some but not all samples clipped (${clipped})`);
    const numeric = finiteDifference((x) => grpoObjective(x, old, ref, adv, 0.2, beta).loss, logProb);
    dLogProb.forEach((d, g) => assert.ok(Math.abs(d - numeric[g]!) < 1e-5, `beta ${beta} sample ${g}: ${d} vs ${numeric[g]}`));
  }
});

test('the warm-up losses have the gradients they claim', () => {
  const random = mulberry(11);
  const s = Float32Array.from({ length: 12 }, () => random() * 4 - 2);
  const p = Float64Array.from({ length: 12 }, () => random());
  const sum = p.reduce((a, b) => a + b, 0);
  p.forEach((v, i) => { p[i] = v / sum; });
  const { dScores } = listwise(s, p);
  const numeric = finiteDifference((x) => listwise(Float32Array.from(x), p).value, Float64Array.from(s), 1e-3);
  dScores.forEach((d, i) => assert.ok(Math.abs(d - numeric[i]!) < 1e-4, `listwise ${i}: ${d} vs ${numeric[i]}`));
  // Pairwise: the same sampled pairs for value and gradient (same seed).
  const value = (x: Float64Array) => pairwise(Float32Array.from(x), p, 4, mulberry(5)).value;
  const grad = pairwise(s, p, 4, mulberry(5)).dScores;
  const numericPairs = finiteDifference(value, Float64Array.from(s), 1e-3);
  grad.forEach((d, i) => assert.ok(Math.abs(d - numericPairs[i]!) < 1e-4, `pairwise ${i}: ${d} vs ${numericPairs[i]}`));
});

test('budgets: a range is sampled continuously, a list by element, bad text refused', () => {
  const range = new BudgetSampler(parseBudgets('0.1:0.3'), 1);
  for (let i = 0; i < 100; i++) {
    const v = range.next();
    assert.ok(v >= 0.1 && v <= 0.3);
  }
  const list = new BudgetSampler(parseBudgets('0.25,0.5'), 1);
  const seen = new Set(Array.from({ length: 50 }, () => list.next()));
  assert.equal([...seen].sort(), [0.25, 0.5]);
  assert.throws(() => parseBudgets('0.5:0.1'), /expected low:high or a comma-separated list of keep ratios in \(0, 1\] for budgets but received "0.5:0.1"/);
});

test('the warm-up learns the teacher attention ranking on the test checkpoint', async () => {
  const pruner = GripPruner.init(model, { point: { layer: 2 }, hidden: 16, rank: 8, seed: 4 });
  const stats = [];
  for await (const s of warmup(model, pruner, examples, { steps: 40, batch: 6, lr: 3e-3, seed: 1, budgets: { list: [0.25] } })) stats.push(s);
  const first = stats.slice(0, 5).reduce((a, s) => a + s.loss, 0) / 5;
  const last = stats.slice(-5).reduce((a, s) => a + s.loss, 0) / 5;
  assert.ok(last < first, `listwise loss went from ${first} to ${last}`);
  const overlapFirst = stats.slice(0, 5).reduce((a, s) => a + s.overlap, 0) / 5;
  const overlapLast = stats.slice(-5).reduce((a, s) => a + s.overlap, 0) / 5;
  assert.ok(overlapLast > overlapFirst, `top-k overlap went from ${overlapFirst} to ${overlapLast}`);
});

test('GRPO steps run for every reward, change the policy, and report finite stats', async () => {
  for (const reward of ['loglik', 'match', 'fidelity'] as const) {
    const reference = GripPruner.init(model, { point: 'pre-llm', hidden: 8, rank: 4, seed: 9 });
    const policy = reference.clone();
    const trainer = new GRPOTrainer(model, policy, reference, examples, { steps: 3, group: 4, promptsPerStep: 2, reward, lr: 1e-2, seed: 2, budgets: { list: [0.25, 0.5] } });
    const stats = [];
    for await (const s of trainer.run()) stats.push(s);
    assert.is(stats.length, 3);
    for (const s of stats) {
      for (const v of [s.reward, s.kl, s.clipFraction, s.gradNorm]) assert.ok(Number.isFinite(v), `${reward}: ${JSON.stringify(s)}`);
      assert.ok(s.kl >= 0, `${reward}: k3 is non-negative`);
    }
    if (reward !== 'match') assert.not.equal(values(policy.params.w2), values(reference.params.w2), `${reward}: the policy moved`);
  }
});

test('GRPO with a redundancy penalty trains on the sequential policy: finite stats, and another step than at λ = 0', async () => {
  const trained: number[][] = [];
  for (const redundancy of [3, 0]) {
    const reference = GripPruner.init(model, { point: { layer: 2 }, hidden: 8, rank: 4, seed: 9, redundancy });
    const policy = reference.clone();
    const trainer = new GRPOTrainer(model, policy, reference, examples, { steps: 3, group: 4, promptsPerStep: 2, reward: 'loglik', lr: 1e-2, seed: 4, budgets: { list: [0.1, 0.25] } });
    for await (const s of trainer.run()) {
      for (const v of [s.reward, s.kl, s.clipFraction, s.gradNorm]) assert.ok(Number.isFinite(v), JSON.stringify(s));
      assert.ok(s.kl >= 0);
    }
    assert.not.equal(values(policy.params.w2), values(reference.params.w2), `λ ${redundancy}: the policy moved`);
    trained.push(values(policy.params.w2));
  }
  assert.not.equal(trained[0], trained[1], 'the penalty changes what GRPO samples and learns');
  const reference = GripPruner.init(model, { hidden: 8, rank: 4, redundancy: 3 });
  const error = await caught(() => new GRPOTrainer(model, GripPruner.init(model, { hidden: 8, rank: 4, redundancy: 0 }), reference, examples, { steps: 1 }));
  assert.instance(error, GripError);
  assert.is(error.message, "expected the policy's redundancy (0) for reference.redundancy but received 3");
});

test('GRPO at an in-LLM point shares the prefix and trains', async () => {
  const reference = GripPruner.init(model, { point: { layer: 2 }, hidden: 8, rank: 4, seed: 9 });
  const policy = reference.clone();
  const trainer = new GRPOTrainer(model, policy, reference, examples, { steps: 2, group: 4, promptsPerStep: 2, reward: 'loglik', seed: 3 });
  for await (const s of trainer.run()) assert.ok(Number.isFinite(s.reward));
});

test.run();
