// gumbel.test.ts — Gumbel-top-k: the distribution (chi-square against the
// exact Plackett-Luce probabilities), exact reproducibility (seed -> sample,
// across calls, backends and emulator schedules), and the BigInt reference
// RNG predicting the exact sample. The emulator runs ~1 ms per sample, so it
// checks a 400-sample prefix against the cpu draw (the stream is counter
// based: sample g depends only on (seed, row, g, token)).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ops, tensor } from '../lib/index.ts';
import { BACKENDS, diffText, firstDiff, normErr, on, reportSkips, valuesOf } from './helpers.ts';
import { plLogProbRow } from './ref/ops.ts';
import * as ref from './ref/ops.ts';

const test = suite('gumbel');
reportSkips('gumbel.test.ts');

const G_STAT = 20000;
const EMU_G = 400;
const SEED = 0x5eedn;

/** Chi-square critical values at p = 0.001 by degrees of freedom. */
const CHI2_999: Record<number, number> = { 5: 20.515, 11: 31.264 };

/** All ordered k-tuples of distinct indices in [0,N) whose logits are finite. */
function orderedTuples(l: number[], k: number): number[][] {
  const out: number[][] = [];
  const rec = (prefix: number[]) => {
    if (prefix.length === k) return void out.push(prefix);
    for (let n = 0; n < l.length; n++) if (!prefix.includes(n) && l[n] !== -Infinity) rec([...prefix, n]);
  };
  rec([]);
  return out;
}

/** Pearson chi-square of the G samples of row b against exact PL probabilities. */
function chiSquare(indices: Int32Array, b: number, G: number, k: number, l: number[]): { chi2: number; dof: number; unexpected: number } {
  const tuples = orderedTuples(l, k);
  const counts = new Map<string, number>(tuples.map((t) => [t.join(','), 0]));
  let unexpected = 0;
  for (let g = 0; g < G; g++) {
    const key = Array.from(indices.subarray((b * G + g) * k, (b * G + g + 1) * k)).join(',');
    if (counts.has(key)) counts.set(key, counts.get(key)! + 1);
    else unexpected++;
  }
  let chi2 = 0;
  for (const t of tuples) {
    const expected = G * Math.exp(plLogProbRow(l, t));
    chi2 += (counts.get(t.join(','))! - expected) ** 2 / expected;
  }
  return { chi2, dof: tuples.length - 1, unexpected };
}

const STAT_LOGITS = [
  [1, 0.5, 0, -1], // k = 2: 12 ordered pairs, 11 dof
  [0, -Infinity, 2, 0], // k = 3 with a -Inf logit (never drawn): 6 ordered triples, 5 dof
];

test('cpu: ordered-pair frequencies match Plackett-Luce (chi-square, p = 0.001, 20000 samples)', () => {
  const out = ops.gumbelTopkSync(tensor(STAT_LOGITS[0]!, [1, 4]), 2, { samples: G_STAT, seed: SEED, backend: 'cpu' });
  const { chi2, dof, unexpected } = chiSquare(out.indices.host as Int32Array, 0, G_STAT, 2, STAT_LOGITS[0]!);
  assert.is(unexpected, 0, 'samples outside the ordered pairs of distinct indices');
  assert.ok(chi2 < CHI2_999[dof]!, `chi-square ${chi2.toFixed(2)} with ${dof} dof exceeds ${CHI2_999[dof]} (p < 0.001)`);
});

test('cpu: k=3 with a -Inf logit never draws it and matches Plackett-Luce (chi-square)', () => {
  const l = STAT_LOGITS[1]!;
  const out = ops.gumbelTopkSync(tensor(l, [1, 4]), 3, { samples: G_STAT, seed: SEED + 1n, backend: 'cpu' });
  const { chi2, dof, unexpected } = chiSquare(out.indices.host as Int32Array, 0, G_STAT, 3, l);
  assert.is(unexpected, 0, 'samples containing the -Inf logit or repeats');
  assert.ok(chi2 < CHI2_999[dof]!, `chi-square ${chi2.toFixed(2)} with ${dof} dof exceeds ${CHI2_999[dof]} (p < 0.001)`);
});

test('cpu: the chi-square test has power (detects a wrong distribution)', () => {
  // Same samples scored against shifted logits must fail: guards against a vacuous test.
  const out = ops.gumbelTopkSync(tensor(STAT_LOGITS[0]!, [1, 4]), 2, { samples: G_STAT, seed: SEED, backend: 'cpu' });
  const { chi2 } = chiSquare(out.indices.host as Int32Array, 0, G_STAT, 2, [1, 0.4, 0, -1]);
  assert.ok(chi2 > CHI2_999[11]!, `chi-square ${chi2.toFixed(2)} against logits [1, 0.4, 0, -1] should exceed ${CHI2_999[11]}`);
});

test('cpu: the BigInt reference predicts the exact sample for 2000 draws of 2 rows', () => {
  const logits = [0.3, -0.2, 1.5, 0, 0.9, -2, 0.1, 0.7, -0.5, 1.1, 0.2, -1, 0, 0.4];
  const B = 2, N = 7, k = 3, G = 1000;
  const seed = (1n << 63n) + 12345n; // needs all 64 bits
  const out = ops.gumbelTopkSync(tensor(logits, [B, N]), k, { samples: G, seed, backend: 'cpu' });
  const expected = ref.gumbelTopk(Float32Array.from(logits), B, N, k, G, seed);
  const got = Array.from(out.indices.host as Int32Array);
  assert.ok(firstDiff(got, Array.from(expected.indices)) < 0, `indices: ${diffText(got, Array.from(expected.indices))}`);
  const e = normErr(valuesOf(out.logProb), expected.logProb);
  assert.ok(e <= 1e-6, `logProb normalised error ${e.toExponential(3)} > 1e-6`);
});

test('cpu: same seed gives identical indices and logProb on repeated calls (sync and async)', async () => {
  const l = tensor([0.1, 0.2, -0.3, 1, 0, 0.5], [2, 3]);
  const a = ops.gumbelTopkSync(l, 2, { samples: 64, seed: 99, backend: 'cpu' });
  const b = ops.gumbelTopkSync(l, 2, { samples: 64, seed: 99, backend: 'cpu' });
  const c = await ops.gumbelTopk(l, 2, { samples: 64, seed: 99n, backend: 'cpu' });
  for (const o of [b, c]) {
    assert.equal(Array.from(o.indices.host), Array.from(a.indices.host), 'indices');
    assert.equal(Array.from(o.logProb.host), Array.from(a.logProb.host), 'logProb');
  }
});

test('cpu: different seeds give different samples', () => {
  const l = tensor(new Float32Array(16), [1, 16]);
  const a = ops.gumbelTopkSync(l, 4, { samples: 32, seed: 1, backend: 'cpu' });
  const b = ops.gumbelTopkSync(l, 4, { samples: 32, seed: 2, backend: 'cpu' });
  assert.not.equal(Array.from(a.indices.host), Array.from(b.indices.host), 'seeds 1 and 2 drew the same 32 samples');
});

test('cpu: samples are counter based (a G prefix and a row prefix reproduce)', () => {
  const rows = [0.5, -1, 2, 0, 1, 1, 1, 1];
  const big = ops.gumbelTopkSync(tensor(rows, [2, 4]), 2, { samples: 50, seed: 7, backend: 'cpu' });
  const small = ops.gumbelTopkSync(tensor(rows.slice(0, 4), [1, 4]), 2, { samples: 20, seed: 7, backend: 'cpu' });
  assert.equal(Array.from(small.indices.host), Array.from((big.indices.host as Int32Array).subarray(0, 40)), 'row 0, first 20 samples');
});

test('cpu: logProb equals plackettLuceLogProb of the returned indices', () => {
  const l = tensor([0.3, -0.2, 1.5, 0, 0.9, -2, 0.1, 0.7, -0.5, 1.1, -Infinity, -1], [2, 6]);
  const out = ops.gumbelTopkSync(l, 4, { samples: 200, seed: 31, backend: 'cpu' });
  const lp = ops.plackettLuceLogProbSync(l, out.indices, { backend: 'cpu' });
  const e = normErr(valuesOf(out.logProb), valuesOf(lp));
  assert.ok(e <= 1e-6, `gumbel logProb vs plackettLuceLogProb: normalised error ${e.toExponential(3)} (both are double sums stored as f32)`);
  assert.ok(Array.from(out.logProb.host).every((v) => v <= 0), 'log-probabilities are <= 0');
});

for (const b of BACKENDS) {
  if (b.backend === 'cpu') continue;
  const t = b.skip ? test.skip : test;
  t(`${b.name}: draws exactly the cpu samples (indices and logProb bits, ${EMU_G} samples, 2 rows)`, () => {
    const logits = tensor([1, 0.5, 0, -1, 0, -Infinity, 2, 0], [2, 4]);
    const G = b.backend === 'cuda' ? G_STAT : EMU_G;
    const cpu = ops.gumbelTopkSync(logits, 2, { samples: G, seed: SEED, backend: 'cpu' });
    const other = ops.gumbelTopkSync(logits, 2, { samples: G, seed: SEED, ...on(b) });
    const ci = Array.from(cpu.indices.host), oi = Array.from(other.indices.toHost().host);
    assert.ok(firstDiff(oi, ci) < 0, `indices: ${diffText(oi, ci)}`);
    const cl = Array.from(cpu.logProb.host), ol = Array.from(other.logProb.toHost().host);
    assert.ok(firstDiff(ol, cl) < 0, `logProb: ${diffText(ol, cl)}`);
  });
}

test.run();
