// visionzip_merge.test.ts — the full VisionZip ("visionzip"): its selection
// and merged states against an independent float64 reference written from
// the paper's released code (one-hot assignment matrix, bmm, counts clamped
// at 1), and the runtime's `merge` hook: the states a pruner hands back are
// the ones the LLM reads (pre-LLM and at layer 2), checked on the tiny
// LLaVA checkpoint against keeping those tokens outright; bad merge output
// is refused with the exact message.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { FixedPruner, VISIONZIP_CONTEXTUAL, VisionZipMergePruner, VisionZipPruner, makePruner, tensor, type PruneContext, type Pruner, type PrunePoint, type Tensor } from '../../lib/index.ts';
import { loadVLM, type VLM } from '../../lib/model/vlm.ts';
import { expectError, rng, uniform } from '../helpers.ts';

const test = suite('visionzip-merge');

/** VisionZip's contextual step as released: dominant by CLS attention, targets every step-th leftover, merge = target + mean of assigned. */
function reference(states: Float32Array, attention: Float32Array, B: number, N: number, D: number, numKeep: number[], contextual: number) {
  return numKeep.map((k, b) => {
    const kc = Math.max(0, Math.min(contextual < 1 ? Math.round(contextual * k) : contextual, k - 1));
    const kd = k - kc;
    const order = Array.from({ length: N }, (_, i) => i).sort((i, j) => attention[b * N + j]! - attention[b * N + i]! || i - j);
    const dominant = order.slice(0, kd).sort((i, j) => i - j);
    const left = Array.from({ length: N }, (_, i) => i).filter((i) => !dominant.includes(i));
    const step = Math.max(1, Math.floor(left.length / kc));
    const targetPos = Array.from({ length: kc }, (_, i) => i * step); // positions within `left`
    const toMergePos = left.map((_, p) => p).filter((p) => !targetPos.includes(p));
    const vec = (i: number) => Array.from(states.subarray((b * N + i) * D, (b * N + i + 1) * D), Number);
    const norm = (v: number[]) => { const n = Math.hypot(...v); return v.map((e) => e / n); };
    // assign [M, kc] one-hot of argmax similarity (first max wins), then aggregated = assign^T hidden / clamp(counts, 1).
    const assign = toMergePos.map((p) => {
      const u = norm(vec(left[p]!));
      const sims = targetPos.map((t) => norm(vec(left[t]!)).reduce((s, e, d) => s + e * u[d]!, 0));
      const best = sims.indexOf(Math.max(...sims));
      return targetPos.map((_, j) => (j === best ? 1 : 0));
    });
    const merged = targetPos.map((t, j) => {
      const count = Math.max(1, assign.reduce((s, a) => s + a[j]!, 0));
      const agg = Array.from({ length: D }, (_, d) => toMergePos.reduce((s, p, m) => s + assign[m]![j]! * vec(left[p]!)[d]!, 0) / count);
      return vec(left[t]!).map((e, d) => e + agg[d]!);
    });
    const targets = targetPos.map((p) => left[p]!);
    const kept = [...dominant, ...targets].sort((i, j) => i - j);
    return { kept, states: kept.map((i) => (targets.includes(i) ? merged[targets.indexOf(i)]! : vec(i))) };
  });
}

function context(B: number, N: number, D: number, numKeep: number[], seed: number): PruneContext {
  const r = rng(seed);
  return {
    visual: tensor(uniform(r, B * N * D), [B, N, D]), query: tensor(uniform(r, B * D), [B, D]),
    keepRatio: Float32Array.from(numKeep, (k) => k / N), numKeep: Int32Array.from(numKeep),
    grid: { rows: 1, cols: N }, backend: 'cpu', attention: uniform(r, B * N),
  };
}

test('selection and merged states equal the reference, for the default share and others', async () => {
  for (const [N, D, numKeep, contextual, seed] of [[30, 8, [10, 7], undefined, 1], [64, 16, [16, 3], 0.25, 2], [40, 4, [12, 12], 5, 3], [20, 6, [1, 2], undefined, 4]] as const) {
    const B = numKeep.length;
    const ctx = context(B, N, D, [...numKeep], seed);
    const pruner = new VisionZipMergePruner(contextual === undefined ? {} : { contextual });
    const kept = await pruner.select(ctx);
    const states = await pruner.merge(ctx, kept);
    const want = reference(ctx.visual.host as Float32Array, ctx.attention!, B, N, D, [...numKeep], contextual ?? VISIONZIP_CONTEXTUAL);
    for (let b = 0; b < B; b++) {
      assert.equal(Array.from(kept[b]!), want[b]!.kept, `N=${N} row ${b}: kept`);
      // The same selection as "cls" with the same contextual share.
      assert.equal(Array.from(kept[b]!), Array.from((await new VisionZipPruner({ contextual: contextual ?? VISIONZIP_CONTEXTUAL }).select(ctx))[b]!));
      const got = states[b];
      if (want[b]!.kept.length === numKeep[b]! && Math.max(0, Math.min(Math.round((contextual ?? VISIONZIP_CONTEXTUAL) * numKeep[b]!), numKeep[b]! - 1)) === 0 && contextual === undefined) {
        assert.is(got, null, 'no contextual token: nothing merged');
        continue;
      }
      assert.ok(got instanceof Float32Array, `N=${N} row ${b}: merged states`);
      want[b]!.states.flat().forEach((v, i) => assert.ok(Math.abs(got![i]! - v) <= 1e-5 * (1 + Math.abs(v)), `N=${N} row ${b} [${i}]: ${got![i]} vs ${v}`));
    }
  }
});

test('visionzip by name: 10 of 64 contextual by default, pre-LLM, CLS attention', () => {
  const p = makePruner('visionzip') as VisionZipMergePruner;
  assert.instance(p, VisionZipMergePruner);
  assert.is(p.name, 'visionzip');
  assert.is(p.contextual, 10 / 64);
  assert.is(p.point, 'pre-llm');
  assert.equal(p.needs, { attention: 'cls' });
  assert.is((makePruner('visionzip', { contextual: 0.5 }) as VisionZipMergePruner).contextual, 0.5);
  assert.equal(makePruner('visionzip', { layer: 2 }).point, { layer: 2 });
});

// ---- the runtime's merge hook on the tiny LLaVA checkpoint --------------------------------
const dir = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'tiny-llava');
interface Packed { shape: number[]; data: number[] }
const ref = JSON.parse(readFileSync(join(dir, 'reference.json'), 'utf8')) as { images: Record<string, Packed>; cases: { name: string; image: string; input_ids: number[] }[] };
const base = ref.cases.find((c) => c.name === 'a_unpruned')!;
const pixels = (): Tensor => tensor(Float32Array.from(ref.images[base.image]!.data), ref.images[base.image]!.shape);
let model: VLM;
test.before(async () => { model = await loadVLM(dir, { backend: 'cpu' }); });

/** Keeps the first k tokens but hands back the states of `sigma`: the LLM must then read exactly what keeping `sigma` gives it. */
function swapper(point: PrunePoint, sigma: number[], merge?: Pruner['merge']): Pruner {
  return {
    name: 'swapper', point,
    async select() { return [Int32Array.from(sigma, (_, i) => i)]; },
    merge: merge ?? (async (ctx) => {
      const D = ctx.visual.shape[2]!, x = ctx.visual.host as Float32Array;
      const out = new Float32Array(sigma.length * D);
      sigma.forEach((i, slot) => out.set(x.subarray(i * D, (i + 1) * D), slot * D));
      return [out];
    }),
  };
}

test('merged states are what the LLM reads, pre-LLM and at layer 2', async () => {
  const sigma = [3, 9, 10, 17, 30, 41, 50, 63];
  for (const point of ['pre-llm', { layer: 2 }] as PrunePoint[]) {
    const request = { pixelValues: pixels(), inputIds: base.input_ids, positions: 'all' as const, renumberPositions: true, cachePolicy: 'keep' as const, keepRatio: sigma.length / 64 };
    const swapped = await model.logits({ ...request, pruner: swapper(point, sigma) });
    const direct = await model.logits({ ...request, pruner: new FixedPruner(point, [sigma]) });
    const plain = await model.logits({ ...request, pruner: new FixedPruner(point, [sigma.map((_, i) => i)]) });
    assert.equal(Array.from(swapped.logits.host as Float32Array), Array.from(direct.logits.host as Float32Array), `${JSON.stringify(point)}: swapped states = keeping sigma`);
    assert.not.equal(Array.from(swapped.logits.host as Float32Array), Array.from(plain.logits.host as Float32Array), `${JSON.stringify(point)}: the merge changed something`);
    // A merge of null rows leaves the kept states alone.
    const none = await model.logits({ ...request, pruner: swapper(point, sigma, async () => [null]) });
    assert.equal(Array.from(none.logits.host as Float32Array), Array.from(plain.logits.host as Float32Array));
  }
});

test('visionzip runs in the runtime and its merge changes the answer states, not the kept count', async () => {
  const request = { pixelValues: pixels(), inputIds: base.input_ids, positions: 'all' as const, keepRatio: 0.25 };
  const full = await model.logits({ ...request, pruner: makePruner('visionzip') });
  const selectOnly = await model.logits({ ...request, pruner: makePruner('cls', { contextual: VISIONZIP_CONTEXTUAL }) });
  assert.equal(Array.from(full.kept), Array.from(selectOnly.kept));
  assert.is(full.kept.length, 16);
  assert.not.equal(Array.from(full.logits.host as Float32Array), Array.from(selectOnly.logits.host as Float32Array));
});

test('bad merge output gives a GripError that says what was expected', async () => {
  const request = { pixelValues: pixels(), inputIds: base.input_ids, keepRatio: 0.125 };
  const sigma = [0, 1, 2, 3, 4, 5, 6, 7];
  await expectError(() => model.logits({ ...request, pruner: swapper('pre-llm', sigma, async () => []) }), 'ERR_GRIP_SHAPE', 'expected 1 merged-state rows (one per row, null for none) from pruner "swapper" but received 0');
  await expectError(() => model.logits({ ...request, pruner: swapper('pre-llm', sigma, async () => [new Float32Array(3)]) }), 'ERR_GRIP_SHAPE', `expected null or a Float32Array of 8 x ${model.config.text.hiddenSize} = ${8 * model.config.text.hiddenSize} values for merged row 0 from pruner "swapper" but received 3 values`);
  await expectError(() => model.logits({ ...request, pruner: swapper('pre-llm', sigma, async () => [[1, 2]] as never) }), 'ERR_GRIP_SHAPE', `expected null or a Float32Array of 8 x ${model.config.text.hiddenSize} = ${8 * model.config.text.hiddenSize} values for merged row 0 from pruner "swapper" but received object`);
});

test.run();
