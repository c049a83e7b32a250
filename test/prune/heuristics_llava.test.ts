// heuristics_llava.test.ts — the heuristic pruners inside the LLaVA runtime
// on test/fixtures/tiny-llava (64 visual tokens on an 8x8 grid): at keep
// ratios 1, 0.5 and 0.25, pre-LLM and at layer 2, each keeps what it should
// from the context the runtime hands it, keep ratio 1.0 reproduces the
// unpruned logits exactly, and a ragged batch gives each row its
// single-request answer.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DivPrunePruner, FixedPruner, NormPruner, UniformPruner, VisionZipPruner, tensor, type PruneContext, type PrunePoint, type Pruner, type Tensor } from '../../lib/index.ts';
import { loadVLM, type VLM } from '../../lib/model/vlm.ts';
import { uniformGridIndices } from '../../lib/prune/heuristics/uniform.ts';

const dir = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'tiny-llava');
interface Packed { shape: number[]; data: number[] }
const ref = JSON.parse(readFileSync(join(dir, 'reference.json'), 'utf8')) as { images: Record<string, Packed>; cases: { name: string; image: string; input_ids: number[] }[] };
const base = ref.cases.find((c) => c.name === 'a_unpruned')!;
const other = ref.cases.find((c) => c.name === 'g_unpruned_prompt2')!;
const pixels = (name: string): Tensor => tensor(Float32Array.from(ref.images[name]!.data), ref.images[name]!.shape);

/** Delegates to `inner` and keeps the context it was handed and what it answered. */
function spy(inner: Pruner): Pruner & { seen: PruneContext[]; answers: Int32Array[][] } {
  const seen: PruneContext[] = [];
  const answers: Int32Array[][] = [];
  return {
    name: inner.name, point: inner.point, ...(inner.needs ? { needs: inner.needs } : {}), seen, answers,
    async select(ctx) {
      seen.push(ctx);
      const sets = await inner.select(ctx);
      answers.push(sets);
      return sets;
    },
  };
}

const heuristics = (): Pruner[] => [
  new UniformPruner(), new NormPruner(), new VisionZipPruner(), new VisionZipPruner({ contextual: 0.25 }), new DivPrunePruner(),
  new UniformPruner({ point: { layer: 2 } }), new NormPruner({ point: { layer: 2 } }), new VisionZipPruner({ point: { layer: 2 } }), new DivPrunePruner({ point: { layer: 2 } }),
];
const label = (p: Pruner) => `${p.name}${p instanceof VisionZipPruner && p.contextual > 0 ? ` (contextual ${p.contextual})` : ''} at ${JSON.stringify(p.point)}`;

/** An independent ranking: the k largest values, ties to the lower index, ascending. */
function topIndices(values: ArrayLike<number>, k: number): number[] {
  return Array.from(values, (v, i) => [v, i] as const).sort((p, q) => q[0] - p[0] || p[1] - q[1]).slice(0, k).map(([, i]) => i).sort((p, q) => p - q);
}

let model: VLM;
let unpruned: Float32Array;
test.before(async () => {
  model = await loadVLM(dir, { backend: 'cpu' });
  unpruned = (await model.logits({ pixelValues: pixels(base.image), inputIds: base.input_ids, positions: 'all' })).logits.host as Float32Array;
});

test('keep ratio 1.0 keeps all 64 tokens and reproduces the unpruned logits exactly', async () => {
  for (const pruner of heuristics()) {
    for (const cachePolicy of ['keep', 'compact'] as const) {
      const r = await model.logits({ pixelValues: pixels(base.image), inputIds: base.input_ids, positions: 'all', pruner, keepRatio: 1, cachePolicy });
      assert.is(r.kept.length, 64, label(pruner));
      assert.equal(Array.from(r.logits.host as Float32Array), Array.from(unpruned), `${label(pruner)}, cache ${cachePolicy}`);
    }
  }
});

test('at keep ratios 0.5 and 0.25 each keeps what its rule picks from the context the runtime hands it', async () => {
  for (const inner of heuristics()) {
    for (const [keepRatio, k] of [[0.5, 32], [0.25, 16]] as const) {
      const pruner = spy(inner);
      const r = await model.logits({ pixelValues: pixels(base.image), inputIds: base.input_ids, pruner, keepRatio });
      const what = `${label(inner)}, keep ${keepRatio}`;
      const ctx = pruner.seen[0]!;
      assert.equal(Array.from(ctx.numKeep), [k], what);
      assert.equal(ctx.grid, { rows: 8, cols: 8 }, what);
      assert.equal(ctx.visual.shape, [1, 64, model.config.text.hiddenSize], what);
      assert.equal(Array.from(r.kept), Array.from(pruner.answers[0]![0]!), `${what}: the runtime kept what the pruner chose`);
      const logits = r.logits.host as Float32Array;
      assert.ok(logits.every(Number.isFinite), `${what}: finite logits`);
      assert.ok(logits.some((v, i) => v !== unpruned[unpruned.length - logits.length + i]), `${what}: pruning changed the logits`);
      const kept = Array.from(r.kept);
      if (inner instanceof UniformPruner) assert.equal(kept, Array.from(uniformGridIndices(8, 8, k)), what);
      if (inner instanceof NormPruner) {
        const states = ctx.visual.host as Float32Array, D = ctx.visual.shape[2]!;
        const norms = Array.from({ length: 64 }, (_, i) => Math.hypot(...states.subarray(i * D, (i + 1) * D)));
        assert.equal(kept, topIndices(norms, k), what);
      }
      if (inner instanceof VisionZipPruner) {
        const attention = ctx.attention!;
        assert.is(attention.length, 64, what);
        const mass = attention.reduce((s, v) => s + v, 0);
        // CLS also attends to itself, so the patches get a share of the mass, not all of it.
        assert.ok(mass > 0 && mass <= 1 + 1e-5, `${what}: CLS attention over the patches sums to ${mass}`);
        const dominant = inner.contextual === 0 ? k : k - Math.round(inner.contextual * k);
        const top = topIndices(attention, dominant);
        assert.ok(top.every((i) => kept.includes(i)), `${what}: the ${dominant} most attended are kept`);
      }
      if (inner instanceof DivPrunePruner) assert.is(new Set(kept).size, k, what);
      // The same tokens kept by index give the same logits.
      const fixed = await model.logits({ pixelValues: pixels(base.image), inputIds: base.input_ids, pruner: new FixedPruner(inner.point as PrunePoint, [r.kept]) });
      assert.equal(Array.from(fixed.logits.host as Float32Array), Array.from(logits), `${what}: as a fixed keep-set`);
    }
  }
});

test('a ragged batch at keep ratios 1, 0.5 and 0.25 gives each row its single-request answer', async () => {
  for (const pruner of heuristics()) {
    const requests = [
      { pixelValues: pixels(base.image), inputIds: base.input_ids, keepRatio: 1, maxNewTokens: 3, stopAtEos: false },
      { pixelValues: pixels(other.image), inputIds: other.input_ids, keepRatio: 0.5, maxNewTokens: 3, stopAtEos: false },
      { pixelValues: pixels(base.image), inputIds: base.input_ids, keepRatio: 0.25, maxNewTokens: 3, stopAtEos: false },
    ];
    const batch = await model.generateBatch(requests.map((r) => ({ ...r, pruner })));
    assert.equal(batch.map((r) => r.kept.indices.length), [64, 32, 16], label(pruner));
    for (let b = 0; b < requests.length; b++) {
      const single = await model.generate({ ...requests[b]!, pruner });
      assert.equal(Array.from(single.kept.indices), Array.from(batch[b]!.kept.indices), `${label(pruner)} row ${b}: kept`);
      assert.equal(Array.from(single.tokenIds), Array.from(batch[b]!.tokenIds), `${label(pruner)} row ${b}: tokens`);
    }
  }
});

test.run();
