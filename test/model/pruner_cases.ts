// pruner_cases.ts — the per-pruner checks every family's pruner test runs on
// its own tiny checkpoint: each pruner (by name, plus GRIP with a fresh
// scorer) at the pre-LLM point and at layer 2 keeps ceil(0.25 N) of the N
// visual tokens, in ascending order, each at its original sequence position.
// One definition, so a new family's test asks the same questions.
import type { Test } from 'uvu';
import * as assert from 'uvu/assert';
import type { VLM } from '../../lib/model/vlm.ts';
import type { ImageSource } from '../../lib/model/family.ts';
import type { PromptSource } from '../../lib/model/runtime/types.ts';
import { GripPruner } from '../../lib/prune/grip.ts';
import { numKeepFor, type Pruner } from '../../lib/prune/pruner.ts';
import { makePruner, PRUNER_NAMES } from '../../lib/prune/registry.ts';

/**
 * Every pruner by name that runs at `layer` (fastv only in the LLM; the staged
 * pyramiddrop chooses its count per stage and has tests of its own; `refused`
 * are those the family refuses), and GRIP with a fresh scorer of the model's size.
 */
export function prunersAt(model: () => VLM, layer: number | undefined, refused: readonly string[] = []): Array<[string, () => Pruner]> {
  const named = PRUNER_NAMES.filter((n) => (layer !== undefined || n !== 'fastv') && !refused.includes(n) && !n.startsWith('pyramiddrop'))
    .map((n): [string, () => Pruner] => [n, () => makePruner(n, layer === undefined ? {} : { layer })]);
  return [...named, ['grip', () => GripPruner.init(model(), { point: layer === undefined ? 'pre-llm' : { layer }, seed: 3 })]];
}

export interface KeepCountCase {
  /** The loaded model (called inside the tests, after the suite's `before`). */
  model: () => VLM;
  /** The request's image and prompt. */
  request: ImageSource & PromptSource;
  /** Visual tokens N, text tokens before the image NB and after it NA. */
  N: number;
  NB: number;
  NA: number;
  refused?: readonly string[];
}

/** Registers the keep-count and position tests of every pruner at both points on `test`. */
export function keepCountTests(test: Test, c: KeepCountCase): void {
  for (const layer of [undefined, 2]) {
    const where = layer === undefined ? 'pre-LLM' : `layer ${layer}`;
    for (const [name, make] of prunersAt(c.model, layer, c.refused)) {
      test(`${name} at ${where}: keeps ceil(0.25 N) of the ${c.N} tokens, each at its original position`, async () => {
        const out = await c.model().logits({ ...c.request, pruner: make(), keepRatio: 0.25, positions: 'all' });
        const kept = Array.from(out.kept);
        assert.is(kept.length, numKeepFor(0.25, c.N));
        assert.ok(kept.every((v, i) => v >= 0 && v < c.N && (i === 0 || v > kept[i - 1]!)), `ascending in [0, ${c.N}): ${kept.join(',')}`);
        const expected = [...Array.from({ length: c.NB }, (_, i) => i), ...kept.map((v) => c.NB + v), ...Array.from({ length: c.NA }, (_, j) => c.NB + c.N + j)];
        assert.equal(Array.from(out.positionIds), expected);
        assert.ok(Array.from(out.logits.host as Float32Array).every(Number.isFinite), 'finite logits');
      });
    }
  }
}
