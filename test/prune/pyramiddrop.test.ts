// pyramiddrop.test.ts — pruning in stages inside the LLM: the runtime's
// staged prefill against the independent float64 reference (tools/llava_ref,
// prune point "staged": nested keep-sets at layers 1, 3 and 1, 2, 3, both
// cache policies; logits to 1e-4 relative, identical greedy tokens), the
// degenerate stages that must equal a single prune, PyramidDrop's λ under
// both matching rules, and the error paths with their exact messages.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { FixedPruner, PyramidDropPruner, makePruner, pyramidLambda, tensor, type PruneContext, type Pruner, type Tensor } from '../../lib/index.ts';
import { loadVLM, type VLM } from '../../lib/model/vlm.ts';
import { expectError, relErr } from '../helpers.ts';

const test = suite('pyramiddrop');
const dir = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'tiny-llava');
interface Packed { shape: number[]; data: number[] }
const base = JSON.parse(readFileSync(join(dir, 'reference.json'), 'utf8')) as { images: Record<string, Packed> };
interface StagedCase { name: string; input_ids: number[]; prune: { cache: 'keep' | 'compact'; stages: { layer: number; keep: number[] }[] }; last_logits: number[]; generated_ids: number[]; step_logits: number[][] }
const staged = JSON.parse(readFileSync(join(dir, 'staged-reference.json'), 'utf8')) as { cases: StagedCase[] };
const pixels = (): Tensor => tensor(Float32Array.from(base.images.img0!.data), base.images.img0!.shape);
let model: VLM;
test.before(async () => { model = await loadVLM(dir, { backend: 'cpu' }); });


/** Keeps the given original indices at each stage (each a subset of the one before); records what it saw. */
function stagedFixed(stages: { layer: number; keep: number[] }[], seen: PruneContext[] = []): Pruner {
  let current: number[] = [];
  return {
    name: 'staged-fixed', point: { layers: stages.map((s) => s.layer) },
    async select(ctx) {
      seen.push(ctx);
      const s = ctx.stage!.index;
      if (s === 0) current = Array.from({ length: ctx.grid.rows * ctx.grid.cols }, (_, i) => i);
      const local = stages[s]!.keep.map((i) => current.indexOf(i));
      current = stages[s]!.keep;
      return [Int32Array.from(local)];
    },
  };
}

test('staged prefill equals the float64 reference: logits and greedy tokens, both cache policies', async () => {
  for (const c of staged.cases) {
    const seen: PruneContext[] = [];
    const request = { pixelValues: pixels(), inputIds: c.input_ids, cachePolicy: c.prune.cache, pruner: stagedFixed(c.prune.stages, seen) };
    const { logits, kept } = await model.logits(request);
    assert.ok(relErr(logits.host as Float32Array, c.last_logits) < 1e-4, `${c.name}: last logits rel err ${relErr(logits.host as Float32Array, c.last_logits)}`);
    assert.equal(Array.from(kept), c.prune.stages.at(-1)!.keep, `${c.name}: kept = the last stage's set, original indices`);
    // Each stage saw the tokens that reached it, with its index and the layers.
    assert.equal(seen.map((ctx) => [ctx.stage!.index, ctx.grid.rows * ctx.grid.cols, ctx.visual.shape[1]]), c.prune.stages.map((s, i) => [i, i === 0 ? 64 : c.prune.stages[i - 1]!.keep.length, i === 0 ? 64 : c.prune.stages[i - 1]!.keep.length]));
    assert.equal(seen[0]!.stage!.layers, c.prune.stages.map((s) => s.layer));
    const g = await model.generate({ ...request, pruner: stagedFixed(c.prune.stages), maxNewTokens: c.generated_ids.length, stopAtEos: false });
    assert.equal(Array.from(g.tokenIds), c.generated_ids, `${c.name}: greedy tokens`);
  }
});

test('degenerate stages equal a single prune: keep-all first stage = prune at the second layer; keep-all second = prune at the first', async () => {
  const S = [1, 4, 6, 9, 13, 20, 27, 33, 40, 41, 52, 60];
  const all = Array.from({ length: 64 }, (_, i) => i);
  for (const cachePolicy of ['keep', 'compact'] as const) {
    const request = { pixelValues: pixels(), inputIds: staged.cases[0]!.input_ids, positions: 'all' as const, cachePolicy };
    const late = await model.logits({ ...request, pruner: stagedFixed([{ layer: 1, keep: all }, { layer: 3, keep: S }]) });
    const single3 = await model.logits({ ...request, pruner: new FixedPruner({ layer: 3 }, [S]) });
    assert.equal(Array.from(late.logits.host as Float32Array), Array.from(single3.logits.host as Float32Array), `${cachePolicy}: all then S at 3`);
    const early = await model.logits({ ...request, pruner: stagedFixed([{ layer: 1, keep: S }, { layer: 3, keep: S }]) });
    const single1 = await model.logits({ ...request, pruner: new FixedPruner({ layer: 1 }, [S]) });
    assert.equal(Array.from(early.logits.host as Float32Array), Array.from(single1.logits.host as Float32Array), `${cachePolicy}: S at 1 then all of S`);
  }
});

test('pyramidLambda: the final rule keeps ρN at the last stage; the FLOPs rule matches a prune at layer 2', () => {
  for (const rho of [0.05, 0.11, 0.25, 0.5]) {
    assert.ok(Math.abs(pyramidLambda(rho, [1, 2, 3], 4, 'final', 2) ** 3 - rho) < 1e-12);
    // 4 layers, stages at 1, 2, 3: (1 + λ + λ² + λ³) / 4 = (2 + 2ρ) / 4.
    const l = pyramidLambda(rho, [1, 2, 3], 4, 'flops', 2);
    assert.ok(Math.abs((1 + l + l * l + l ** 3) - (2 + 2 * rho)) < 1e-9, `ρ ${rho}: λ ${l}`);
    // LLaVA-1.5-7B: stages 8, 16, 24 of 32: (8 + 8λ + 8λ² + 8λ³) / 32 = (2 + 30ρ) / 32.
    const m = pyramidLambda(rho, [8, 16, 24], 32, 'flops', 2);
    assert.ok(Math.abs(8 * (1 + m + m * m + m ** 3) - (2 + 30 * rho)) < 1e-7 || (m === 0 && 8 > 2 + 30 * rho), `7B ρ ${rho}: λ ${m}`);
  }
  assert.is(pyramidLambda(1, [1, 2, 3], 4, 'flops', 2), 1);
});

test('pyramiddrop in the runtime: each stage keeps ceil(λ N) of the last token\'s most attended, FLOPs-matched by default', async () => {
  for (const [name, match] of [['pyramiddrop', 'flops'], ['pyramiddrop-final', 'final']] as const) {
    for (const keepRatio of [0.11, 0.25, 0.5]) {
      const seen: PruneContext[] = [];
      const inner = makePruner(name) as PyramidDropPruner;
      const spy: Pruner = { name: inner.name, point: inner.point, needs: inner.needs, async select(ctx) { seen.push(ctx); return inner.select(ctx); } };
      const r = await model.generate({ pixelValues: pixels(), inputIds: staged.cases[0]!.input_ids, pruner: spy, keepRatio, maxNewTokens: 2, stopAtEos: false });
      const lambda = pyramidLambda(keepRatio, [1, 2, 3], 4, match, 2);
      let n = 64;
      for (const ctx of seen) {
        assert.is(ctx.grid.rows * ctx.grid.cols, n);
        assert.ok(ctx.attention instanceof Float32Array && ctx.attention.length === n, 'last-token attention over the tokens of the stage');
        n = Math.max(1, Math.ceil(lambda * n - 1e-9));
      }
      assert.is(seen.length, 3);
      assert.is(r.kept.indices.length, n, `${name} ρ ${keepRatio}`);
    }
  }
});

test('staged pruning refuses what it cannot do, with the exact message', async () => {
  const request = { pixelValues: pixels(), inputIds: staged.cases[0]!.input_ids };
  await expectError(() => model.logits({ ...request, pruner: { name: 'bad', point: { layers: [2, 2] }, select: async () => [] } }), 'ERR_GRIP_RANGE', 'expected { layers: [K1, K2, ...] } ascending with each K in [1, 3] for pruner.point but received {"layers":[2,2]}');
  await expectError(() => model.logits({ ...request, pruner: { name: 'bad', point: { layers: [1, 4] }, select: async () => [] } }), 'ERR_GRIP_RANGE', 'expected { layers: [K1, K2, ...] } ascending with each K in [1, 3] for pruner.point but received {"layers":[1,4]}');
  await expectError(() => model.logits({ ...request, pruner: { name: 'cls-staged', point: { layers: [1, 2] }, needs: { attention: 'cls' }, select: async () => [] } }), 'ERR_GRIP_UNSUPPORTED', "expected 'last-token' or 'text-tokens' attention (or none) for a staged pruner but received 'cls' (pruner \"cls-staged\")");
  const ragged: Pruner = { name: 'ragged', point: { layers: [1, 2] }, select: async (ctx) => [Int32Array.from([0, 1]), Int32Array.from([0])].slice(0, ctx.numKeep.length) };
  const two = { image: undefined, pixelValues: pixels(), inputIds: staged.cases[0]!.input_ids };
  await expectError(() => model.generateBatch([{ ...two, pruner: ragged, keepRatio: 0.5, maxNewTokens: 1 }, { ...two, pruner: ragged, keepRatio: 0.25, maxNewTokens: 1 }]), 'ERR_GRIP_UNSUPPORTED', 'expected one keep ratio for every row of a batch with a staged pruner but received 0.5, 0.25 (pruner "ragged")');
  await expectError(() => model.generateBatch([{ ...two, pruner: ragged, keepRatio: 0.5, maxNewTokens: 1 }, { ...two, pruner: ragged, keepRatio: 0.5, maxNewTokens: 1 }]), 'ERR_GRIP_SHAPE', 'expected the same number of kept tokens in every row at stage 0 from pruner "ragged" but received 2, 1');
  await expectError(() => makePruner('pyramiddrop', { layer: 2 }), 'ERR_GRIP_RANGE', 'expected no layer for pruner "pyramiddrop" (it prunes at its stage layers) but received layer 2');
  await expectError(() => new PyramidDropPruner({ layers: [3, 1] }), 'ERR_GRIP_RANGE', 'expected ascending integer layers >= 1 for options.layers but received [3,1]');
  await expectError(() => new PyramidDropPruner({ match: 'tokens' as never }), 'ERR_GRIP_RANGE', /options\.match/);
  // A single prune point refuses a staged point where only one layer makes sense (prepare, answerLogProb).
  await expectError(() => model.prepare({ pixelValues: pixels(), inputIds: staged.cases[0]!.input_ids, point: { layers: [1, 2] } as never }), 'ERR_GRIP_RANGE', /for request\.point but received \{"layers":\[1,2\]\}/);
});

test.run();
