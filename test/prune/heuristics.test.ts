// heuristics.test.ts — the heuristic baselines (uniform, norm, cls/VisionZip,
// divprune) on hand-made contexts whose right answer is known, the
// invariants every pruner keeps on random contexts (ascending, distinct,
// numKeep per row, ragged rows), the same answers on every backend, and the
// error paths with their exact codes and messages.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { CDPrunerPruner, DivPrunePruner, FastVPruner, GripError, GripPruner, NormPruner, RandomPruner, UniformPruner, VisionZipMergePruner, VisionZipPruner, PyramidDropPruner, makePruner, tensor, PRUNER_NAMES, type PruneContext, type Pruner } from '../../lib/index.ts';
import { maxMinGreedy } from '../../lib/prune/heuristics/divprune.ts';
import { uniformGridIndices } from '../../lib/prune/heuristics/uniform.ts';
import { contextualCount } from '../../lib/prune/heuristics/visionzip.ts';
import { checkKeepSets } from '../../lib/prune/pruner.ts';
import { BACKENDS, on, reportSkips, rng, uniform, type BackendRun, expectError } from '../helpers.ts';

const test = suite('heuristics');
reportSkips('heuristics.test.ts');

interface ContextSpec {
  /** [B][N][D] token states (default: zeros of width 1). */
  states?: number[][][];
  grid: { rows: number; cols: number };
  numKeep: number[];
  /** [B][N] attention to the visual tokens. */
  attention?: number[][];
  backend?: PruneContext['backend'];
}

function context(spec: ContextSpec): PruneContext {
  const B = spec.numKeep.length, N = spec.grid.rows * spec.grid.cols;
  const states = spec.states ?? Array.from({ length: B }, () => Array.from({ length: N }, () => [0]));
  const D = states[0]![0]!.length;
  const N0 = states[0]!.length;
  return {
    visual: tensor(states.flat(2), [B, N0, D]),
    query: tensor(new Float32Array(B * D), [B, D]),
    keepRatio: Float32Array.from(spec.numKeep, (k) => k / N),
    numKeep: Int32Array.from(spec.numKeep),
    grid: spec.grid,
    ...(spec.attention ? { attention: Float32Array.from(spec.attention.flat()) } : {}),
    backend: spec.backend ?? 'cpu',
  };
}

/** A context of random states and attention: B rows, a rows x cols grid, D features. */
function randomContext(seed: number, grid: { rows: number; cols: number }, numKeep: number[], D: number): PruneContext {
  const r = rng(seed);
  const B = numKeep.length, N = grid.rows * grid.cols;
  const states = uniform(r, B * N * D);
  const attention = Float32Array.from({ length: B * N }, () => r());
  return {
    visual: tensor(states, [B, N, D]),
    query: tensor(uniform(r, B * D), [B, D]),
    keepRatio: Float32Array.from(numKeep, (k) => k / N),
    numKeep: Int32Array.from(numKeep),
    grid,
    attention,
    backend: 'cpu',
  };
}

const lists = (sets: Int32Array[]) => sets.map((s) => Array.from(s));

/** Runs fn (sync, or a Promise that must reject) and checks the GripError's code and message. */

// ---- uniform -------------------------------------------------------------------------

test('uniform keeps the 4x4 lattice of rows and columns {1, 3, 5, 7} for 16 of 8x8', async () => {
  const [kept] = await new UniformPruner().select(context({ grid: { rows: 8, cols: 8 }, numKeep: [16] }));
  const lattice = [1, 3, 5, 7].flatMap((row) => [1, 3, 5, 7].map((col) => row * 8 + col));
  assert.equal(lattice, [9, 11, 13, 15, 25, 27, 29, 31, 41, 43, 45, 47, 57, 59, 61, 63]);
  assert.equal(Array.from(kept!), lattice);
});

test('uniform keeps {2, 6} x {2, 6} for 4 of 8x8, the centre for 1, everything for 64', async () => {
  const sets = await new UniformPruner().select(context({ grid: { rows: 8, cols: 8 }, numKeep: [4, 1, 64] }));
  assert.equal(lists(sets), [[18, 22, 50, 54], [36], Array.from({ length: 64 }, (_, i) => i)]);
});

test('uniform keeps the stride-s lattice for m x m of an (m·s) x (m·s) grid, offset floor(s/2)', () => {
  for (let m = 1; m <= 6; m++) {
    for (let s = 1; s <= 4; s++) {
      const side = m * s;
      const at = Array.from({ length: m }, (_, i) => s * i + Math.floor(s / 2));
      const expected = at.flatMap((row) => at.map((col) => row * side + col));
      assert.equal(Array.from(uniformGridIndices(side, side, m * m)), expected, `m = ${m}, s = ${s}`);
    }
  }
});

test('uniform on a 4x8 grid keeps 2 rows of 4 for k = 8', () => {
  assert.equal(Array.from(uniformGridIndices(4, 8, 8)), [9, 11, 13, 15, 25, 27, 29, 31]);
});

test('uniform spreads any k: lattice rows differ by at most one token and every k is reachable', () => {
  for (const [rows, cols] of [[8, 8], [5, 7], [1, 9], [9, 1], [24, 24], [3, 16]] as const) {
    for (let k = 1; k <= rows * cols; k++) {
      const kept = uniformGridIndices(rows, cols, k);
      assert.is(kept.length, k, `${rows}x${cols}, k = ${k}: count`);
      for (let i = 1; i < k; i++) assert.ok(kept[i]! > kept[i - 1]!, `${rows}x${cols}, k = ${k}: ascending at ${i}`);
      assert.ok(kept[0]! >= 0 && kept[k - 1]! < rows * cols, `${rows}x${cols}, k = ${k}: in range`);
      const perRow = new Map<number, number>();
      for (const index of kept) perRow.set(Math.floor(index / cols), (perRow.get(Math.floor(index / cols)) ?? 0) + 1);
      const counts = [...perRow.values()];
      assert.ok(Math.max(...counts) - Math.min(...counts) <= 1, `${rows}x${cols}, k = ${k}: row counts ${counts}`);
    }
  }
});

// ---- norm ----------------------------------------------------------------------------

test('norm keeps the rows made large, whatever their sign', async () => {
  const small = [[0.1, 0, 0], [0, 0.2, 0], [0, 0, 0.1], [0.1, 0.1, 0.1]];
  const states = [[small[0]!, [3, 4, 0], small[1]!, small[2]!, [0, 0, -6], small[3]!]];
  const [two] = await new NormPruner().select(context({ states, grid: { rows: 2, cols: 3 }, numKeep: [2] }));
  assert.equal(Array.from(two!), [1, 4]);
  // The third largest is [0, 0.2, 0] at index 2 (0.2 beats [0.1, 0.1, 0.1] at 0.173).
  const [three] = await new NormPruner().select(context({ states, grid: { rows: 2, cols: 3 }, numKeep: [3] }));
  assert.equal(Array.from(three!), [1, 2, 4]);
});

test('norm breaks ties toward the lower index and ranks each batch row on its own', async () => {
  const states = [
    [[1, 0], [0, 1], [0.5, 0], [1, 1]],
    [[9, 0], [0, 0], [0, 0], [0, 8]],
  ];
  const sets = await new NormPruner().select(context({ states, grid: { rows: 2, cols: 2 }, numKeep: [2, 1] }));
  // Row 0: [1, 1] (1.41) first, then [1, 0] and [0, 1] tie at 1 -> index 0.
  assert.equal(lists(sets), [[0, 3], [0]]);
});

// ---- cls (VisionZip) -----------------------------------------------------------------

test('cls keeps the tokens with the most CLS attention and asks the runtime for it', async () => {
  const pruner = new VisionZipPruner();
  assert.equal(pruner.needs, { attention: 'cls' });
  assert.is(pruner.point, 'pre-llm');
  const attention = [[0.01, 0.3, 0.02, 0.2, 0.05, 0.01, 0.4, 0.01, 0]];
  const [kept] = await pruner.select(context({ grid: { rows: 3, cols: 3 }, numKeep: [3], attention }));
  assert.equal(Array.from(kept!), [1, 3, 6]);
});

test('cls with contextual tokens adds VisionZip\'s uniform targets from the leftovers', async () => {
  // Dominant: the 4 most attended, 0, 5, 10 and 15. Leftovers (12): 1 2 3 4 6 7 8 9 11 12 13 14;
  // step = floor(12 / 2) = 6, so the targets are leftovers [0] and [6]: tokens 1 and 8.
  const attention = [Array.from({ length: 16 }, (_, i) => (i % 5 === 0 ? 1 : 0.01 * i))];
  const ctx = context({ grid: { rows: 4, cols: 4 }, numKeep: [6], attention });
  assert.equal(lists(await new VisionZipPruner({ contextual: 2 }).select(ctx)), [[0, 1, 5, 8, 10, 15]]);
  // The same split as a fraction: round(0.3 · 6) = 2.
  assert.equal(lists(await new VisionZipPruner({ contextual: 0.3 }).select(ctx)), [[0, 1, 5, 8, 10, 15]]);
  // Without contextual tokens: the 6 most attended (0 5 10 15, then 14 and 13).
  assert.equal(lists(await new VisionZipPruner().select(ctx)), [[0, 5, 10, 13, 14, 15]]);
});

test('cls keeps at least one dominant token: the contextual share is capped at numKeep - 1', async () => {
  assert.equal([contextualCount(10 / 64, 64), contextualCount(10 / 64, 128), contextualCount(10 / 64, 192)], [10, 20, 30]);
  assert.equal([contextualCount(5, 3), contextualCount(0.9, 1), contextualCount(0, 7)], [2, 0, 0]);
  const attention = [[0, 0, 0, 1, 0, 0]];
  const [one] = await new VisionZipPruner({ contextual: 4 }).select(context({ grid: { rows: 2, cols: 3 }, numKeep: [1], attention }));
  assert.equal(Array.from(one!), [3]);
});

// ---- divprune ------------------------------------------------------------------------

test('maxMinGreedy starts at the most isolated token and then takes the farthest from the chosen', () => {
  // Tokens 0,1 and 2,3 are near pairs (similarity 0.9); 4 is alone (at most 0.1 to anyone).
  // From 4, the farthest is 1 (similarity -0.5); then 2 (max(0.1, 0.2) = 0.2 beats 3's 0.3), then 0, then 3.
  const S = [
    [1, 0.9, 0.1, 0.0, 0.1],
    [0.9, 1, 0.2, 0.3, -0.5],
    [0.1, 0.2, 1, 0.9, 0.1],
    [0.0, 0.3, 0.9, 1, 0.1],
    [0.1, -0.5, 0.1, 0.1, 1],
  ];
  assert.equal(Array.from(maxMinGreedy(Float32Array.from(S.flat()), 5, 5)), [4, 1, 2, 0, 3]);
  assert.equal(Array.from(maxMinGreedy(Float32Array.from([7]), 1, 1)), [0]);
});

test('divprune on two tight clusters and an outlier keeps the outlier and one token of each cluster', async () => {
  // Cluster A near e1 (tokens 0, 2, 4), cluster B near e2 (1, 3, 5), the outlier at 6 points away from both.
  const states = [[
    [1, 0, 0.1], [0, 1, 0.1], [1, 0, -0.1], [0, 1, -0.2], [1, 0.05, 0], [0.05, 1, 0], [-1, -0.5, 0],
  ]];
  const ctx = context({ states, grid: { rows: 1, cols: 7 }, numKeep: [3] });
  const [kept] = await new DivPrunePruner().select(ctx);
  const set = Array.from(kept!);
  assert.ok(set.includes(6), `the outlier is kept: ${set}`);
  assert.is(set.filter((i) => i % 2 === 0 && i < 6).length, 1, `one of cluster A: ${set}`);
  assert.is(set.filter((i) => i % 2 === 1).length, 1, `one of cluster B: ${set}`);
  // Scaling a token does not move it (cosine distance): the same choice with token 4 x100.
  const scaled = [states[0]!.map((v, i) => (i === 4 ? v.map((x) => 100 * x) : v))];
  assert.equal(lists(await new DivPrunePruner().select(context({ states: scaled, grid: { rows: 1, cols: 7 }, numKeep: [3] }))), [set]);
  // With one token to keep, the most isolated one: the outlier.
  assert.equal(lists(await new DivPrunePruner().select(context({ states, grid: { rows: 1, cols: 7 }, numKeep: [1] }))), [[6]]);
});

test('divprune matches a float64 max-min greedy over cosine distance on random batch rows', async () => {
  const D = 12, grid = { rows: 5, cols: 6 }, numKeep = [30, 11, 4];
  const ctx = randomContext(7, grid, numKeep, D);
  const N = grid.rows * grid.cols;
  const states = ctx.visual.host as Float32Array;
  const sets = await new DivPrunePruner().select(ctx);
  numKeep.forEach((k, b) => {
    const x = Array.from({ length: N }, (_, i) => Array.from(states.subarray((b * N + i) * D, (b * N + i + 1) * D)));
    const unit = x.map((v) => { const n = Math.hypot(...v); return v.map((e) => e / n); });
    const dist = (i: number, j: number) => 1 - unit[i]!.reduce((s, e, d) => s + e * unit[j]![d]!, 0);
    // The paper's greedy: first argmax_i min_{j != i} d(i, j), then argmax_j min_{s in S} d(s, j).
    const chosen: number[] = [];
    for (let n = 0; n < k; n++) {
      let best = -1, bestScore = -Infinity;
      for (let j = 0; j < N; j++) {
        if (chosen.includes(j)) continue;
        const others = n === 0 ? Array.from({ length: N }, (_, i) => i).filter((i) => i !== j) : chosen;
        const score = Math.min(...others.map((s) => dist(s, j)));
        if (score > bestScore) { best = j; bestScore = score; }
      }
      chosen.push(best);
    }
    assert.equal(Array.from(sets[b]!), chosen.sort((p, q) => p - q), `row ${b}`);
  });
});

// ---- every pruner ----------------------------------------------------------------------

const everyPruner = (): Pruner[] => [
  new UniformPruner(), new NormPruner(), new VisionZipPruner(), new VisionZipPruner({ contextual: 0.25 }), new DivPrunePruner(),
  new RandomPruner({ seed: 3 }), new FastVPruner(), new CDPrunerPruner(),
];

test('every pruner keeps numKeep[b] ascending distinct tokens per ragged row, and the heuristics are deterministic', async () => {
  for (const [grid, numKeep] of [[{ rows: 6, cols: 8 }, [48, 17, 1, 24]], [{ rows: 1, cols: 1 }, [1]], [{ rows: 3, cols: 5 }, [2, 15]]] as const) {
    const N = grid.rows * grid.cols;
    const ctx = randomContext(11, grid, [...numKeep], 9);
    for (const pruner of everyPruner()) {
      const sets = await pruner.select(ctx);
      checkKeepSets(pruner.name, sets, numKeep.length, N);
      assert.equal(sets.map((s) => s.length), [...numKeep], `${pruner.name}: counts`);
      if (pruner.name !== 'random') assert.equal(lists(await pruner.select(ctx)), lists(sets), `${pruner.name}: the same answer twice`);
    }
  }
});

test('norm, cls and divprune give the same keep-sets on every backend', async () => {
  const grid = { rows: 6, cols: 8 }, numKeep = [48, 17, 1];
  const reference = randomContext(21, grid, numKeep, 16);
  const pruners = [new NormPruner(), new VisionZipPruner({ contextual: 3 }), new DivPrunePruner(), new CDPrunerPruner()];
  const expected = await Promise.all(pruners.map((p) => p.select(reference)));
  for (const run of BACKENDS as readonly BackendRun[]) {
    if (run.skip) continue;
    const { backend } = on(run);
    const visual = backend === 'cuda' ? reference.visual.toDevice() : reference.visual;
    const ctx: PruneContext = { ...reference, visual, backend };
    for (let p = 0; p < pruners.length; p++) {
      assert.equal(lists(await pruners[p]!.select(ctx)), lists(expected[p]!), `${pruners[p]!.name} on ${run.name}`);
    }
    if (visual !== reference.visual) visual.dispose();
  }
});

// ---- options, names, errors ------------------------------------------------------------

test('the point is configurable and defaults to pre-LLM', () => {
  for (const Make of [UniformPruner, NormPruner, VisionZipPruner, DivPrunePruner, CDPrunerPruner]) {
    assert.is(new Make().point, 'pre-llm', Make.name);
    assert.equal(new Make({ point: { layer: 2 } }).point, { layer: 2 }, Make.name);
  }
});

test('makePruner builds every listed name, with the layer and the options each takes', () => {
  assert.equal([...PRUNER_NAMES], ['fastv', 'random', 'uniform', 'norm', 'cls', 'visionzip', 'divprune', 'cdpruner', 'pyramiddrop', 'pyramiddrop-final']);
  const classes: Record<string, unknown> = {
    fastv: FastVPruner, random: RandomPruner, uniform: UniformPruner, norm: NormPruner, cls: VisionZipPruner, visionzip: VisionZipMergePruner, divprune: DivPrunePruner, cdpruner: CDPrunerPruner,
    pyramiddrop: PyramidDropPruner, 'pyramiddrop-final': PyramidDropPruner,
  };
  for (const name of PRUNER_NAMES) {
    const pruner = makePruner(name);
    assert.is(pruner.name, name);
    assert.instance(pruner, classes[name] as never);
    if (name.startsWith('pyramiddrop')) assert.equal(pruner.point, { layers: [1, 2, 3] }, name);
    else assert.equal(makePruner(name, { layer: 3 }).point, { layer: 3 }, name);
  }
  assert.is(makePruner('norm').point, 'pre-llm');
  assert.is((makePruner('cls', { contextual: 0.25 }) as VisionZipPruner).contextual, 0.25);
});

test('bad options and names give a GripError that says what was expected', async () => {
  await expectError(() => makePruner('magic'), 'ERR_GRIP_RANGE', 'expected one of fastv, random, uniform, norm, cls, visionzip, divprune, cdpruner, pyramiddrop, pyramiddrop-final for pruner but received "magic"');
  await expectError(() => new VisionZipPruner({ contextual: -1 }), 'ERR_GRIP_RANGE', 'expected a fraction in [0, 1) or a whole number of tokens for options.contextual but received number -1');
  await expectError(() => makePruner('cls', { contextual: 2.5 }), 'ERR_GRIP_RANGE', 'expected a fraction in [0, 1) or a whole number of tokens for options.contextual but received number 2.5');
  await expectError(() => new VisionZipPruner({ contextual: NaN }), 'ERR_GRIP_RANGE', 'expected a fraction in [0, 1) or a whole number of tokens for options.contextual but received number NaN');
  await expectError(() => new VisionZipPruner({ contextual: '1' as never }), 'ERR_GRIP_RANGE', 'expected a fraction in [0, 1) or a whole number of tokens for options.contextual but received the string "1"');
  await expectError(() => new NormPruner({ point: { layer: 0 } }), 'ERR_GRIP_RANGE', "expected 'pre-llm' or { layer: K } with an integer K >= 1 for options.point but received {\"layer\":0}");
  await expectError(() => makePruner('divprune', { layer: 1.5 }), 'ERR_GRIP_RANGE', "expected 'pre-llm' or { layer: K } with an integer K >= 1 for options.point but received {\"layer\":1.5}");
  await expectError(() => new UniformPruner({ point: 'in-llm' as never }), 'ERR_GRIP_RANGE', "expected 'pre-llm' or { layer: K } with an integer K >= 1 for options.point but received the string \"in-llm\"");
  await expectError(() => new DivPrunePruner(5 as never), 'ERR_GRIP_RANGE', 'expected an options object for the divprune pruner but received number 5');
});

test('a context the pruner cannot use gives a GripError naming the field', async () => {
  const good = randomContext(1, { rows: 2, cols: 4 }, [3], 4);
  await expectError(() => new VisionZipPruner().select({ ...good, attention: undefined }), 'ERR_GRIP_SHAPE', "expected 'cls' attention [1, 8] (8 values) for ctx.attention of the cls pruner but received none");
  await expectError(() => new VisionZipPruner().select({ ...good, attention: new Float32Array(7) }), 'ERR_GRIP_SHAPE', "expected 'cls' attention [1, 8] (8 values) for ctx.attention of the cls pruner but received 7 values");
  await expectError(() => new NormPruner().select({ ...good, visual: tensor(new Float32Array(36), [1, 9, 4]) }), 'ERR_GRIP_SHAPE', 'expected [1, 8, 4] [B,N,D] for ctx.visual but received [1, 9, 4]');
  await expectError(() => new DivPrunePruner().select({ ...good, numKeep: Int32Array.of(9) }), 'ERR_GRIP_RANGE', 'expected an integer in [1, 8] for ctx.numKeep[0] but received number 9');
  await expectError(() => new UniformPruner().select({ ...good, numKeep: Int32Array.of(0) }), 'ERR_GRIP_RANGE', 'expected an integer in [1, 8] for ctx.numKeep[0] but received number 0');
});

test('fastv refuses a context without its attention as cls does: the same code, the same message shape', async () => {
  const good = randomContext(1, { rows: 2, cols: 4 }, [3], 4);
  await expectError(() => new FastVPruner().select({ ...good, attention: undefined }), 'ERR_GRIP_SHAPE', "expected 'last-token' attention [1, 8] (8 values) for ctx.attention of the fastv pruner but received none");
  await expectError(() => new FastVPruner().select({ ...good, attention: new Float32Array(7) }), 'ERR_GRIP_SHAPE', "expected 'last-token' attention [1, 8] (8 values) for ctx.attention of the fastv pruner but received 7 values");
  await expectError(() => new FastVPruner({ layer: 0 }), 'ERR_GRIP_RANGE', 'expected an integer in [1, 2147483647] for options.layer but received number 0');
  await expectError(() => new FastVPruner(5 as never), 'ERR_GRIP_RANGE', 'expected an options object for the fastv pruner but received number 5');
  await expectError(() => new RandomPruner({ point: { layer: -1 } }), 'ERR_GRIP_RANGE', "expected 'pre-llm' or { layer: K } with an integer K >= 1 for options.point but received {\"layer\":-1}");
});

test('every pruner, GRIP included, refuses the same bad context with the same GripError', async () => {
  const good = randomContext(2, { rows: 2, cols: 4 }, [3], 4);
  const host = { dir: 'four-wide', numImageTokens: 8, config: { text: { hiddenSize: 4, numLayers: 4 } } };
  const pruners = [...everyPruner(), GripPruner.init(host, { hidden: 8, rank: 4 })];
  for (const pruner of pruners) {
    assert.ok((await pruner.select(good)).length === 1, `${pruner.name} selects on the good context`);
    await expectError(() => pruner.select({ ...good, numKeep: Int32Array.of(9) }), 'ERR_GRIP_RANGE', 'expected an integer in [1, 8] for ctx.numKeep[0] but received number 9');
    await expectError(() => pruner.select({ ...good, numKeep: [3] as never }), 'ERR_GRIP_RANGE', 'expected an Int32Array for ctx.numKeep but received an array');
    await expectError(() => pruner.select({ ...good, grid: { rows: 0, cols: 4 } }), 'ERR_GRIP_RANGE', 'expected an integer in [1, 2147483647] for ctx.grid.rows but received number 0');
  }
  // The pruners that read the states check them the same way.
  for (const pruner of [new NormPruner(), new DivPrunePruner(), new CDPrunerPruner(), GripPruner.init(host, { hidden: 8, rank: 4 })]) {
    await expectError(() => pruner.select({ ...good, visual: tensor(new Float32Array(36), [1, 9, 4]) }), 'ERR_GRIP_SHAPE', 'expected [1, 8, 4] [B,N,D] for ctx.visual but received [1, 9, 4]');
  }
});

test.run();
