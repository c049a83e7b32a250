// cdpruner.test.ts — CDPruner's conditional DPP: a hand-made case whose
// greedy answer is worked out below, an independent float64 reference (the
// relevance from scratch, the kernel, and a greedy that maximises the
// determinant itself by elimination) on random batch rows, the rank-spent
// fallback, and the error paths with their exact messages.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { CDPrunerPruner, makePruner, tensor, type PruneContext } from '../../lib/index.ts';
import { cdppGreedy } from '../../lib/prune/heuristics/cdpruner.ts';
import { expectError, rng, uniform } from '../helpers.ts';

const test = suite('cdpruner');

function context(states: number[][][], query: number[][], numKeep: number[]): PruneContext {
  const B = states.length, N = states[0]!.length, D = states[0]![0]!.length;
  return {
    visual: tensor(states.flat(2), [B, N, D]),
    query: tensor(query.flat(), [B, D]),
    keepRatio: Float32Array.from(numKeep, (k) => k / N),
    numKeep: Int32Array.from(numKeep),
    grid: { rows: 1, cols: N },
    backend: 'cpu',
  };
}
const lists = (sets: Int32Array[]) => sets.map((s) => Array.from(s));

/** det of a small symmetric matrix by Gaussian elimination with partial pivoting, float64. */
function det(m: number[][]): number {
  const a = m.map((row) => [...row]);
  const n = a.length;
  let d = 1;
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(a[r]![c]!) > Math.abs(a[p]![c]!)) p = r;
    if (a[p]![c] === 0) return 0;
    if (p !== c) { [a[p], a[c]] = [a[c]!, a[p]!]; d = -d; }
    d *= a[c]![c]!;
    for (let r = c + 1; r < n; r++) {
      const f = a[r]![c]! / a[c]![c]!;
      for (let k = c; k < n; k++) a[r]![k] = a[r]![k]! - f * a[c]![k]!;
    }
  }
  return d;
}

/** The paper's rule from scratch: relevance (mean over the text tokens ts), kernel, then k times the token whose addition gives the largest det(L_S). */
function referenceKeep(x: number[][], ts: number[][], k: number, theta: number): number[] {
  const unit = (v: number[]) => { const n = Math.hypot(...v); return v.map((e) => (n > 0 ? e / n : 0)); };
  const u = x.map(unit), uts = ts.map(unit);
  const dot = (p: number[], q: number[]) => p.reduce((s, e, i) => s + e * q[i]!, 0);
  const q = u.map((v) => (uts.length ? uts.reduce((s, ut) => s - dot(v, ut), 0) / uts.length : 0));
  const lo = Math.min(...q), hi = Math.max(...q);
  const alpha = theta / (2 * (1 - theta));
  const r = q.map((v) => Math.exp(alpha * ((v - lo) / (hi - lo + 1e-6))));
  const L = u.map((a, i) => u.map((b, j) => r[i]! * dot(a, b) * r[j]!));
  const chosen: number[] = [];
  for (let n = 0; n < k; n++) {
    let best = -1, bestDet = -Infinity;
    for (let j = 0; j < x.length; j++) {
      if (chosen.includes(j)) continue;
      const s = [...chosen, j];
      const value = det(s.map((a) => s.map((b) => L[a]![b]!)));
      // Within 1e-9 is a tie (a unit vector's |u|^2 is 1 +- 1e-16 here): the lower index keeps it, as the pruner's.
      if (best < 0 || value > bestDet + 1e-9 * Math.abs(bestDet)) { best = j; bestDet = value; }
    }
    chosen.push(best);
  }
  return chosen.sort((a, b) => a - b);
}

test('the relevance decides between two equally diverse second picks (worked by hand)', async () => {
  // h0 = e1, h1 = e2, h2 = (e1 + e2)/sqrt2; query -e1, so q = cos(h, e1) = 1, 0, 0.7071 (already in [0, 1]).
  // theta = 0.5: r = e^0.5, 1, e^0.3536. First pick: the largest L_ii = r_i^2, token 0.
  // Then the gains L_jj (1 - S_0j^2): token 1: 1 x 1 = 1; token 2: e^0.7071 x 0.5 = 1.014, so token 2.
  // With theta = 0 (a plain DPP, r = 1) the gains are 1 and 0.5: token 1.
  const s = Math.SQRT1_2;
  const states = [[[1, 0], [0, 1], [s, s]]], query = [[-1, 0]];
  assert.equal(lists(await new CDPrunerPruner().select(context(states, query, [1]))), [[0]]);
  assert.equal(lists(await new CDPrunerPruner().select(context(states, query, [2]))), [[0, 2]]);
  assert.equal(lists(await new CDPrunerPruner({ theta: 0 }).select(context(states, query, [2]))), [[0, 1]]);
  // The greedy order itself, on the same kernel.
  const S = Float32Array.of(1, 0, s, 0, 1, s, s, s, 1);
  const r = Float64Array.of(Math.exp(0.5), 1, Math.exp(0.5 * s));
  assert.equal(Array.from(cdppGreedy(S, r, 3, 3)), [0, 2, 1]);
});

test('once the rank is spent the rest go by relevance weight, lower index first', () => {
  // Three copies of e1 and one e2, equal weights: 0 (tie, lower index), 3 (gain 1), then every gain is 0: 1.
  const S = Float32Array.from([[1, 1, 1, 0], [1, 1, 1, 0], [1, 1, 1, 0], [0, 0, 0, 1]].flat());
  assert.equal(Array.from(cdppGreedy(S, Float64Array.of(1, 1, 1, 1), 4, 3)), [0, 3, 1]);
  assert.equal(Array.from(cdppGreedy(S, Float64Array.of(1, 1, 2, 1), 4, 4)), [2, 3, 0, 1]);
});

test('cdpruner matches a determinant-maximising float64 greedy on random batch rows', async () => {
  const D = 12, N = 30;
  for (const theta of [0.5, 0.2, 0.8, 0]) {
    const r = rng(17 + theta * 10);
    const numKeep = [12, 7, 3, 1];
    const B = numKeep.length;
    const states = uniform(r, B * N * D), query = uniform(r, B * D);
    const ctx: PruneContext = {
      visual: tensor(states, [B, N, D]), query: tensor(query, [B, D]),
      keepRatio: Float32Array.from(numKeep, (k) => k / N), numKeep: Int32Array.from(numKeep),
      grid: { rows: 5, cols: 6 }, backend: 'cpu',
    };
    const sets = await new CDPrunerPruner({ theta }).select(ctx);
    numKeep.forEach((k, b) => {
      const x = Array.from({ length: N }, (_, i) => Array.from(states.subarray((b * N + i) * D, (b * N + i + 1) * D)));
      const t = Array.from(query.subarray(b * D, (b + 1) * D));
      assert.equal(Array.from(sets[b]!), referenceKeep(x, [t], k, theta), `theta ${theta}, row ${b}`);
    });
  }
});

test('with the text tokens (ctx.text) the relevance is the mean over them, per row its own count', async () => {
  const D = 10, N = 24, T = 5;
  for (const theta of [0.5, 0.75]) {
    const r = rng(41 + theta * 10);
    const numKeep = [8, 5, 3], counts = [5, 2, 0];
    const B = numKeep.length;
    const states = uniform(r, B * N * D), text = uniform(r, B * T * D);
    const ctx: PruneContext = {
      visual: tensor(states, [B, N, D]), query: tensor(uniform(r, B * D), [B, D]),
      text: { states: tensor(text, [B, T, D]), count: Int32Array.from(counts) },
      keepRatio: Float32Array.from(numKeep, (k) => k / N), numKeep: Int32Array.from(numKeep),
      grid: { rows: 4, cols: 6 }, backend: 'cpu',
    };
    const sets = await new CDPrunerPruner({ theta }).select(ctx);
    numKeep.forEach((k, b) => {
      const x = Array.from({ length: N }, (_, i) => Array.from(states.subarray((b * N + i) * D, (b * N + i + 1) * D)));
      const ts = Array.from({ length: counts[b]! }, (_, j) => Array.from(text.subarray((b * T + j) * D, (b * T + j + 1) * D)));
      assert.equal(Array.from(sets[b]!), referenceKeep(x, ts, k, theta), `theta ${theta}, row ${b} (${counts[b]} text tokens)`);
    });
  }
  const ctx: PruneContext = {
    visual: tensor(new Float32Array(2 * 4 * 3).fill(1), [2, 4, 3]), query: tensor(new Float32Array(6), [2, 3]),
    text: { states: tensor(new Float32Array(2 * 2 * 3), [2, 2, 3]), count: Int32Array.from([1, 3]) },
    keepRatio: Float32Array.of(0.5, 0.5), numKeep: Int32Array.of(2, 2), grid: { rows: 1, cols: 4 }, backend: 'cpu',
  };
  await expectError(() => new CDPrunerPruner().select(ctx), 'ERR_GRIP_RANGE', 'expected an integer in [0, 2] for ctx.text.count[1] but received number 3');
});

test('makePruner passes theta; bad options and contexts give a GripError that says what was expected', async () => {
  assert.is((makePruner('cdpruner', { theta: 0.3 }) as CDPrunerPruner).theta, 0.3);
  assert.is(new CDPrunerPruner().theta, 0.5);
  assert.equal(makePruner('cdpruner', { layer: 2 }).point, { layer: 2 });
  await expectError(() => new CDPrunerPruner({ theta: 1.5 }), 'ERR_GRIP_RANGE', 'expected a number in [0, 1] for options.theta but received number 1.5');
  await expectError(() => new CDPrunerPruner({ theta: NaN }), 'ERR_GRIP_RANGE', 'expected a number in [0, 1] for options.theta but received number NaN');
  await expectError(() => new CDPrunerPruner({ theta: '0.5' as never }), 'ERR_GRIP_RANGE', 'expected a number in [0, 1] for options.theta but received the string "0.5"');
  await expectError(() => new CDPrunerPruner(5 as never), 'ERR_GRIP_RANGE', 'expected an options object for the cdpruner pruner but received number 5');
  const good = context([[[1, 0], [0, 1], [1, 1]]], [[1, 2]], [2]);
  await expectError(() => new CDPrunerPruner().select({ ...good, query: tensor(new Float32Array(3), [1, 3]) }), 'ERR_GRIP_SHAPE', 'expected [1, 2] [B,D] for ctx.query but received [1, 3]');
  await expectError(() => new CDPrunerPruner().select({ ...good, numKeep: Int32Array.of(4) }), 'ERR_GRIP_RANGE', 'expected an integer in [1, 3] for ctx.numKeep[0] but received number 4');
});

test.run();
