// specs.test.ts — heuristics named by spec (`grip eval --pruners
// cdpruner:theta=0.25,norm:layer=2`): the settings reach the pruner, the row
// is named by the spec, the selection equals the pruner made directly, and a
// bad setting is refused with the exact message.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { tensor, type PruneContext } from '../../lib/index.ts';
import { heuristicBase, heuristicFromSpec, makePruner } from '../../lib/prune/registry.ts';
import { expectError, rng, uniform } from '../helpers.ts';

const test = suite('specs');

test('a spec sets the options, names the row by the spec and selects as makePruner does', async () => {
  const random = rng(7);
  const B = 2, N = 24, D = 8;
  const ctx: PruneContext = {
    visual: tensor(uniform(random, B * N * D), [B, N, D]),
    query: tensor(uniform(random, B * D), [B, D]),
    keepRatio: Float32Array.from([0.25, 0.5]),
    numKeep: Int32Array.from([6, 12]),
    grid: { rows: 4, cols: 6 },
    backend: 'cpu',
  };
  const spec = heuristicFromSpec('cdpruner:theta=0.25');
  assert.is(spec.name, 'cdpruner:theta=0.25');
  assert.is(spec.point, 'pre-llm');
  assert.equal(await spec.select(ctx), await makePruner('cdpruner', { theta: 0.25 }).select(ctx));
  assert.not.equal(await spec.select(ctx), await makePruner('cdpruner', { theta: 1 }).select(ctx));
  assert.equal(heuristicFromSpec('norm:layer=2').point, { layer: 2 });
  assert.equal(heuristicFromSpec('random:seed=3:layer=1').point, { layer: 1 });
  // No settings: the pruner itself, under its own name.
  assert.is(heuristicFromSpec('fastv').name, 'fastv');
  assert.is(heuristicBase('cdpruner:theta=0.25'), 'cdpruner');
  assert.is(heuristicBase('norm'), 'norm');
});

test('a bad spec gives a GripError that says what was expected', async () => {
  const keys = 'expected key=number with key one of layer, seed, contextual, theta';
  await expectError(() => heuristicFromSpec('cdpruner:beta=1'), 'ERR_GRIP_RANGE', `${keys} in pruner "cdpruner:beta=1" but received "beta=1"`);
  await expectError(() => heuristicFromSpec('cdpruner:theta'), 'ERR_GRIP_RANGE', `${keys} in pruner "cdpruner:theta" but received "theta"`);
  await expectError(() => heuristicFromSpec('cdpruner:theta=abc'), 'ERR_GRIP_RANGE', `${keys} in pruner "cdpruner:theta=abc" but received "theta=abc"`);
  await expectError(() => heuristicFromSpec('cdpruner:'), 'ERR_GRIP_RANGE', `${keys} in pruner "cdpruner:" but received ""`);
  await expectError(() => heuristicFromSpec('magic:layer=2'), 'ERR_GRIP_RANGE', 'expected one of fastv, random, uniform, norm, cls, visionzip, divprune, cdpruner, pyramiddrop, pyramiddrop-final for pruner but received "magic"');
  // The value goes through the pruner's own checks.
  await expectError(() => heuristicFromSpec('norm:layer=0'), 'ERR_GRIP_RANGE', "expected 'pre-llm' or { layer: K } with an integer K >= 1 for options.point but received {\"layer\":0}");
});

test.run();
