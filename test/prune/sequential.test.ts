// sequential.test.ts — GRIP's keep-set policy with a redundancy penalty:
// against an independent reference written here (the penalty recomputed
// from scratch at every pick), against the native Plackett-Luce ops at
// λ = 0, its gradient by finite differences, its sampler's frequencies
// against the probabilities it claims, a hand-made case whose answer is
// known, and its error messages; then the GRIP pruner and GRPO with λ > 0.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { cosineSimilarities, greedyKeep, GripError, keepLogProb, ops, sampleKeep, tensor, type SequentialPolicy } from '../../lib/index.ts';
import { mulberry32 } from '../../lib/random.ts';
import { BACKENDS, caught, on, reportSkips, rng, uniform } from '../helpers.ts';

reportSkips('prune/sequential.test.ts');

/** A random policy: N scores in [-2, 2), cosines of N random unit vectors in 3 dimensions (so some tokens are alike). */
function randomPolicy(seed: number, N: number, redundancy: number): SequentialPolicy & { scores: Float32Array; similarity: Float32Array } {
  const r = rng(seed);
  const scores = uniform(r, N, 2);
  const v = Array.from({ length: N }, () => {
    const x = [r() - 0.5, r() - 0.5, r() - 0.5];
    const norm = Math.hypot(...x);
    return x.map((a) => a / norm);
  });
  const similarity = new Float32Array(N * N);
  for (let i = 0; i < N; i++) for (let j = 0; j < N; j++) similarity[i * N + j] = v[i]!.reduce((a, x, d) => a + x * v[j]![d]!, 0);
  return { scores, similarity, redundancy };
}

/** The reference: log π(order), each pick's logits rebuilt from the definition. */
function referenceLogProb(p: SequentialPolicy, order: readonly number[]): number {
  const N = p.scores.length;
  let logProb = 0;
  for (let t = 0; t < order.length; t++) {
    const chosen = order.slice(0, t);
    const logit = (n: number) => p.scores[n]! - p.redundancy * Math.max(0, ...chosen.map((m) => p.similarity[n * N + m]!));
    const rest = Array.from({ length: N }, (_, n) => n).filter((n) => !chosen.includes(n));
    logProb += logit(order[t]!) - Math.log(rest.reduce((a, n) => a + Math.exp(logit(n)), 0));
  }
  return logProb;
}

test('log-probabilities equal the reference, for λ = 0 and λ > 0', () => {
  for (const redundancy of [0, 0.7, 4]) {
    const p = randomPolicy(11, 9, redundancy);
    const r = mulberry32(5);
    for (let trial = 0; trial < 5; trial++) {
      const order = Array.from({ length: 9 }, (_, i) => i).sort(() => r() - 0.5).slice(0, 1 + trial);
      const got = keepLogProb(p, order).logProb;
      const want = referenceLogProb(p, order);
      assert.ok(Math.abs(got - want) < 1e-9, `λ ${redundancy}, order ${order}: ${got} vs ${want}`);
    }
  }
});

test('at λ = 0 the policy is the native Plackett-Luce: log-probs, gradient, and greedy = top-k', async () => {
  const N = 12, k = 5, G = 4;
  const p = randomPolicy(3, N, 0);
  const logits = tensor(p.scores, [1, N]);
  const { indices } = await ops.gumbelTopk(logits, k, { samples: G, seed: 7 });
  const native = Array.from((await ops.plackettLuceLogProb(logits, indices)).host as Float32Array);
  const dLogProb = Float32Array.of(0.5, -1, 2, 0.25);
  const nativeGrad = Array.from((await ops.plackettLuceBackward(logits, indices, tensor(dLogProb, [1, G]))).host as Float32Array);
  const host = indices.host as Int32Array;
  const grad = new Float64Array(N);
  for (let g = 0; g < G; g++) {
    const order = host.subarray(g * k, (g + 1) * k);
    const { logProb, dScores } = keepLogProb(p, order, dLogProb[g]!);
    assert.ok(Math.abs(logProb - native[g]!) < 1e-5, `sample ${g}: ${logProb} vs ${native[g]}`);
    dScores.forEach((d, n) => { grad[n] = grad[n]! + d; });
  }
  grad.forEach((d, n) => assert.ok(Math.abs(d - nativeGrad[n]!) < 1e-5, `dScores[${n}]: ${d} vs ${nativeGrad[n]}`));
  const topk = Array.from(p.scores.keys()).sort((a, b) => p.scores[b]! - p.scores[a]! || a - b).slice(0, k);
  assert.equal(Array.from(greedyKeep(p, k)), topk);
});

test('the gradient of the log-probability matches finite differences (λ > 0)', () => {
  const p = randomPolicy(21, 7, 1.5);
  const order = [4, 0, 6, 2];
  const { dScores } = keepLogProb(p, order, 1);
  const h = 1e-6;
  for (let n = 0; n < 7; n++) {
    const up = Float64Array.from(p.scores), down = Float64Array.from(p.scores);
    up[n]! += h;
    down[n]! -= h;
    const fd = (keepLogProb({ ...p, scores: up }, order).logProb - keepLogProb({ ...p, scores: down }, order).logProb) / (2 * h);
    assert.ok(Math.abs(fd - dScores[n]!) < 1e-6, `dScores[${n}]: ${dScores[n]} vs ${fd}`);
  }
  // dLogProb scales it.
  const scaled = keepLogProb(p, order, -3).dScores;
  scaled.forEach((d, n) => assert.ok(Math.abs(d + 3 * dScores[n]!) < 1e-12));
});

test('the sampler draws each ordered keep-set with the probability it reports', () => {
  const p = randomPolicy(8, 4, 2);
  const counts = new Map<string, number>();
  const random = mulberry32(99);
  const draws = 40000;
  for (let i = 0; i < draws; i++) {
    const { order, logProb } = sampleKeep(p, 2, random);
    assert.ok(Math.abs(logProb - keepLogProb(p, order).logProb) < 1e-12);
    const key = Array.from(order).join(',');
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  let total = 0;
  for (let a = 0; a < 4; a++) {
    for (let b = 0; b < 4; b++) {
      if (a === b) continue;
      const prob = Math.exp(referenceLogProb(p, [a, b]));
      total += prob;
      const freq = (counts.get(`${a},${b}`) ?? 0) / draws;
      // 5 standard errors of a binomial frequency.
      assert.ok(Math.abs(freq - prob) < 5 * Math.sqrt(prob * (1 - prob) / draws) + 1e-4, `${a},${b}: frequency ${freq}, probability ${prob}`);
    }
  }
  assert.ok(Math.abs(total - 1) < 1e-9, `the ordered pairs' probabilities sum to ${total}`);
});

test('a hand-made case: the penalty trades a near-duplicate for a distinct token', () => {
  // Tokens 0 and 1 are the same direction, token 2 orthogonal, token 3 opposite to 0.
  const similarity = Float32Array.of(
    1, 1, 0, -1,
    1, 1, 0, -1,
    0, 0, 1, 0,
    -1, -1, 0, 1,
  );
  const scores = Float32Array.of(3, 2.9, 1, 0.5);
  assert.equal(Array.from(greedyKeep({ scores, similarity, redundancy: 0 }, 3)), [0, 1, 2]);
  // λ = 1: token 1 costs 2.9 − 1 = 1.9 > 1, still second; λ = 5: 2.9 − 5 < 1, so 2; then 3 (−1 cosine: no bonus, 0.5) beats 1 (2.9 − 5).
  assert.equal(Array.from(greedyKeep({ scores, similarity, redundancy: 1 }, 3)), [0, 1, 2]);
  assert.equal(Array.from(greedyKeep({ scores, similarity, redundancy: 5 }, 3)), [0, 2, 3]);
  // Ties go to the lower index.
  assert.equal(Array.from(greedyKeep({ scores: Float32Array.of(1, 1, 1, 1), similarity, redundancy: 5 }, 2)), [0, 2]);
});

test('bad input is refused with its exact message', async () => {
  const p = randomPolicy(1, 4, 1);
  const cases: [() => unknown, string][] = [
    [() => greedyKeep(p, 0), 'expected an integer in [1, 4] for k but received number 0'],
    [() => greedyKeep(p, 5), 'expected an integer in [1, 4] for k but received number 5'],
    [() => greedyKeep({ ...p, similarity: new Float32Array(15) }, 2), 'expected 16 similarities ([N, N] for N = 4) for policy.similarity but received 15'],
    [() => greedyKeep({ ...p, redundancy: -1 }, 2), 'expected a finite number >= 0 for policy.redundancy but received number -1'],
    [() => greedyKeep(null as never, 1), 'expected a policy { scores, similarity, redundancy } with at least one score for policy but received null'],
    [() => greedyKeep({ ...p, scores: new Float32Array(0) }, 1), 'expected a policy { scores, similarity, redundancy } with at least one score for policy but received an object'],
    [() => greedyKeep({ ...p, similarity: undefined as never }, 1), 'expected 16 similarities ([N, N] for N = 4) for policy.similarity but received undefined'],
    [() => sampleKeep(p, 2, 0.5 as never), 'expected a function returning uniform numbers in [0, 1) for random but received number 0.5'],
    [() => keepLogProb(p, [1, 1]), 'expected distinct indices in [0, 4) for order but received 1 at [1]'],
    [() => keepLogProb(p, [0, 4]), 'expected distinct indices in [0, 4) for order but received 4 at [1]'],
  ];
  for (const [run, message] of cases) {
    const error = await caught(async () => run());
    assert.instance(error, GripError);
    assert.is(error.message, message);
  }
});

test('cosineSimilarities refuses what is not an f32 [B, N, D] tensor, or an unknown backend', async () => {
  const cases: [() => Promise<unknown>, string][] = [
    [() => cosineSimilarities(tensor(new Float32Array(6), [6]), 'cpu'), 'expected 3 dimensions [B,N,D] for visual but received 1 dimensions [6]'],
    [() => cosineSimilarities(tensor(new Int32Array(8), [1, 2, 4]), 'cpu'), 'expected f32 for dtype of visual but received i32'],
    [() => cosineSimilarities(tensor(new Float32Array(8), [1, 2, 4]), 'gpu' as 'cpu'), 'expected one of \'cpu\', \'emu\', \'cuda\' for backend but received the string "gpu"'],
  ];
  for (const [run, message] of cases) {
    const error = await caught(run);
    assert.instance(error, GripError);
    assert.is(error.message, message);
  }
});

for (const run of BACKENDS) {
  const t = run.skip ? test.skip : test;
  t(`${run.name}: cosineSimilarities gives each batch row its own [N, N] cosines; a zero state has cosine 0`, async () => {
    const B = 2, N = 5, D = 6;
    const h = uniform(rng(4), B * N * D);
    h.fill(0, (1 * N + 3) * D, (1 * N + 4) * D); // row 1, token 3 is zero
    const states = tensor(h, [B, N, D]);
    const { backend } = on(run);
    const got = await cosineSimilarities(backend === 'cuda' ? states.toDevice() : states, backend);
    assert.is(got.length, B);
    for (let b = 0; b < B; b++) {
      const v = (i: number) => Array.from(h.subarray((b * N + i) * D, (b * N + i + 1) * D));
      for (let i = 0; i < N; i++) {
        for (let j = 0; j < N; j++) {
          const dot = v(i).reduce((a, x, d) => a + x * v(j)[d]!, 0);
          const norms = Math.hypot(...v(i)) * Math.hypot(...v(j));
          const want = norms === 0 ? 0 : dot / norms;
          assert.ok(Math.abs(got[b]![i * N + j]! - want) < 1e-5, `[${b}] (${i}, ${j}): ${got[b]![i * N + j]} vs ${want}`);
        }
      }
    }
  });
}

test.run();
