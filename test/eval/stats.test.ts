// stats.test.ts — the Wilson interval against Newcombe's (1998) published
// table, and the exact McNemar p-value against binomial sums done by hand.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mcnemarExact, wilson } from '../../lib/eval/stats.ts';
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

test.run();
