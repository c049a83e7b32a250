// stats.test.ts — the Wilson interval against Newcombe's (1998) published
// table, and the exact McNemar p-value against binomial sums done by hand.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mcnemarExact, pairedComparisons, wilson, type OutcomeRow } from '../../lib/eval/stats.ts';
import { expectError } from '../helpers.ts';

const test = suite('stats');
const near = (actual: number, expected: number) => assert.ok(Math.abs(actual - expected) < 1e-15, `${actual} vs ${expected}`);

test('wilson matches Newcombe (1998), Statistics in Medicine 17:857, table I, method 3', () => {
  // x / n, then the published 4-decimal bounds.
  for (const [x, n, lo, hi] of [[81, 263, 0.2553, 0.3662], [15, 148, 0.0624, 0.1605], [0, 20, 0, 0.1611], [1, 29, 0.0061, 0.1718]] as const) {
    const [l, h] = wilson(x, n);
    assert.ok(Math.abs(l - lo) < 5e-5 && Math.abs(h - hi) < 5e-5, `${x}/${n}: [${l}, ${h}]`);
  }
  assert.equal(wilson(10, 10)[1], 1);
  // Symmetric: x of n and n - x of n mirror about 1/2.
  const [a, b] = wilson(3, 17), [c, d] = wilson(14, 17);
  assert.ok(Math.abs(a - (1 - d)) < 1e-15 && Math.abs(b - (1 - c)) < 1e-15);
});

test('mcnemarExact is twice the binomial(b + c, 1/2) tail at min(b, c)', () => {
  near(mcnemarExact(1, 6), 2 * (1 + 7) / 128); // 0.125
  near(mcnemarExact(0, 5), 2 / 32);
  assert.is(mcnemarExact(6, 1), mcnemarExact(1, 6));
  assert.is(mcnemarExact(3, 3), 1); // 2 x 42/64 > 1
  assert.is(mcnemarExact(0, 0), 1);
  // 2 x (1 + 12 + 66) / 4096, and a large n stays finite.
  near(mcnemarExact(2, 10), 158 / 4096);
  const big = mcnemarExact(480, 520);
  assert.ok(big > 0.2 && big < 0.25, `${big}`); // normal approximation: 2 Phi(-39.5 / 15.81) = 0.2209
});

test('bad counts give a GripError that says what was expected', async () => {
  await expectError(() => wilson(5, 0), 'ERR_GRIP_RANGE', `expected an integer in [1, ${Number.MAX_SAFE_INTEGER}] for n but received number 0`);
  await expectError(() => wilson(6, 5), 'ERR_GRIP_RANGE', 'expected an integer in [0, 5] for correct but received number 6');
  await expectError(() => mcnemarExact(-1, 2), 'ERR_GRIP_RANGE', `expected an integer in [0, ${Number.MAX_SAFE_INTEGER}] for b but received number -1`);
});

test('pairedComparisons: the subject against the most accurate baseline at each ratio, pairs counted by hand', () => {
  const row = (pruner: string, keepRatio: number, outcomes: number[]): OutcomeRow => ({ pruner, keepRatio, outcomes, accuracy: outcomes.reduce((a, b) => a + b, 0) / outcomes.length });
  const rows = [
    row('unpruned', 1, [1, 1, 1, 1, 1, 1]),
    row('grip', 0.25, [1, 1, 1, 0, 1, 1]), // 5/6
    row('fastv', 0.25, [1, 0, 1, 1, 0, 0]), // 3/6: not the best at 0.25
    row('norm', 0.25, [0, 1, 1, 1, 1, 0]), // 4/6: the best
    row('grip', 0.11, [1, 0, 0, 0, 0, 0]),
    row('fastv', 0.11, [1, 1, 1, 1, 0, 0]), // the only baseline at 0.11 ...
    row('warmup', 0.11, [1, 1, 1, 1, 1, 1]), // ... warmup is not a baseline
    row('grip', 0.05, [1, 0, 0, 0, 0, 0]), // no baseline at 0.05: no comparison
  ];
  const out = pairedComparisons(rows, 'grip', ['fastv', 'norm']);
  assert.is(out.length, 2);
  // 0.25: grip right and norm wrong on questions 0 and 5; norm right and grip wrong on 3.
  assert.equal({ ...out[0]!, difference: Math.round(out[0]!.difference * 6) }, {
    keepRatio: 0.25, subject: 'grip', subjectAccuracy: 5 / 6, baseline: 'norm', baselineAccuracy: 4 / 6, difference: 1, onlySubject: 2, onlyBaseline: 1, pValue: mcnemarExact(2, 1),
  });
  assert.is(out[1]!.baseline, 'fastv');
  assert.is(out[1]!.onlySubject, 0);
  assert.is(out[1]!.onlyBaseline, 3);
  near(out[1]!.pValue, 2 / 8);
  // A tie goes to the baseline listed first.
  assert.is(pairedComparisons([row('grip', 0.5, [1, 0]), row('a', 0.5, [0, 1]), row('b', 0.5, [1, 0])], 'grip', ['a', 'b'])[0]!.baseline, 'a');
});

test('pairedComparisons refuses rows of different questions', async () => {
  await expectError(() => pairedComparisons([{ pruner: 'grip', keepRatio: 0.25, accuracy: 1, outcomes: [1, 1] }, { pruner: 'fastv', keepRatio: 0.25, accuracy: 1, outcomes: [1] }], 'grip', ['fastv']),
    'ERR_GRIP_SHAPE', 'expected 2 outcomes (the questions of grip) for the outcomes of fastv at keep ratio 0.25 but received 1');
});

test.run();
