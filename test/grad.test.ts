// grad.test.ts — gradients against central finite differences of the float64
// reference forwards (test/ref):
//  (a) the TS analytic backwards, tightly (float64 all the way: FD with step
//      1e-5 has truncation error ~h^2 = 1e-10 and rounding ~1e-16/h = 1e-11,
//      so 1e-7 relative is a 100x margin);
//  (b) the native backwards on every backend, in f32 (relative 1e-3 of the
//      largest gradient entry for the scorer — its f32 kernels sum B*N*H
//      products; 1e-5 for Plackett-Luce, which is computed in double and only
//      stored as f32).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ops, tensor } from '../lib/index.ts';
import { BACKENDS, on, reportSkips, rng, scorerParams, uniform, valuesOf, type BackendRun } from './helpers.ts';
import { erf, erfc, gelu, geluGrad } from './ref/math.ts';
import { plBackward, plLogProb } from './ref/ops.ts';
import { PARAM_NAMES, scoreTokens, scoreTokensBackward, type RefParams } from './ref/scorer.ts';

const H_FD = 1e-5;
const REF_TOL = 1e-7;
const NATIVE_SCORE_TOL = 1e-3;
const NATIVE_PL_TOL = 1e-5;

/** max|a-b| / max|b| (b the finite-difference gradient; floor 1e-12). */
function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let diff = 0, scale = 1e-12;
  for (let i = 0; i < b.length; i++) {
    diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(b[i]!));
  }
  return diff / scale;
}

/** Central differences of f at every entry of `v` (modified in place and restored). */
function fd(v: Float64Array, f: () => number): Float64Array {
  const g = new Float64Array(v.length);
  for (let i = 0; i < v.length; i++) {
    const x0 = v[i]!;
    v[i] = x0 + H_FD;
    const up = f();
    v[i] = x0 - H_FD;
    const down = f();
    v[i] = x0;
    g[i] = (up - down) / (2 * H_FD);
  }
  return g;
}

// ---- the scorer problem ------------------------------------------------------------------

const S = { B: 2, N: 3, D: 8, H: 4, R: 2 };
const keep = [0.3, 0.85];
function scorerProblem() {
  const r = rng(4242);
  const xv = uniform(r, S.B * S.N * S.D, 2);
  const qv = uniform(r, S.B * S.D);
  const sp = scorerParams(r, S.D, S.H, S.R);
  const dv = uniform(r, S.B * S.N);
  return { xv, qv, sp, dv };
}
const problem = scorerProblem();
const keepF32 = Float32Array.from(keep);

function loss(p: RefParams): number {
  const s = scoreTokens(problem.xv, problem.qv, keepF32, S.B, S.N, p);
  let l = 0;
  for (let i = 0; i < s.length; i++) l += problem.dv[i]! * s[i]!;
  return l;
}

/** FD gradients of the reference loss for every param (computed once). */
const fdGrads: RefParams = (() => {
  const p = problem.sp.ref;
  const g = {} as RefParams;
  for (const name of PARAM_NAMES) g[name] = fd(p[name], () => loss(p));
  return g;
})();

// ---- the Plackett-Luce problem -----------------------------------------------------------------

const P = { B: 2, N: 7, G: 4, k: 3 };
const plLogits = Float64Array.from(uniform(rng(77), P.B * P.N, 2));
plLogits[3] = -Infinity; // a -Inf logit that is never drawn: its gradient is 0
const plIdx = Int32Array.from([
  0, 1, 2, 6, 5, 4, 2, 0, 6, 1, 2, 4, // row 0 (never draws index 3)
  3, 0, 1, 6, 5, 4, 2, 0, 1, 0, 1, 2, // row 1
]);
const plD = Float64Array.from(uniform(rng(78), P.B * P.G));
function plLoss(l: Float64Array): number {
  const lp = plLogProb(l, plIdx, P.B, P.N, P.G, P.k);
  let s = 0;
  for (let i = 0; i < lp.length; i++) s += plD[i]! * lp[i]!;
  return s;
}
/** FD with -Inf entries skipped (their true gradient is 0). */
const plFd = (() => {
  const l = plLogits.slice();
  const g = new Float64Array(l.length);
  for (let i = 0; i < l.length; i++) {
    if (l[i] === -Infinity) continue;
    const x0 = l[i]!;
    l[i] = x0 + H_FD;
    const up = plLoss(l);
    l[i] = x0 - H_FD;
    const down = plLoss(l);
    l[i] = x0;
    g[i] = (up - down) / (2 * H_FD);
  }
  return g;
})();

// ---- tests ---------------------------------------------------------------------------------

const test = suite('grad');
reportSkips('grad.test.ts');

test('reference erf/erfc match known values to 1e-15', () => {
  const known: [number, number][] = [
    [0, 0], [0.1, 0.1124629160182849], [0.5, 0.5204998778130465], [1, 0.8427007929497149],
    [2, 0.9953222650189527], [2.5, 0.9995930479825550], [3, 0.9999779095030014], [-1.5, -0.9661051464753108],
  ];
  for (const [x, v] of known) assert.ok(Math.abs(erf(x) - v) < 1e-15, `erf(${x}) = ${erf(x)}, expected ${v}`);
  const erfc3 = 2.209049699858544e-5, erfc5 = 1.5374597944280349e-12;
  assert.ok(Math.abs(erfc(3) / erfc3 - 1) < 1e-13, `erfc(3) = ${erfc(3)}`);
  assert.ok(Math.abs(erfc(5) / erfc5 - 1) < 1e-13, `erfc(5) = ${erfc(5)}`);
});

test('reference geluGrad matches finite differences of gelu', () => {
  for (const z of [-6, -3, -1.2, -0.3, 0, 0.4, 1, 2.49, 2.51, 4]) {
    const num = (gelu(z + H_FD) - gelu(z - H_FD)) / (2 * H_FD);
    assert.ok(Math.abs(num - geluGrad(z)) < 1e-9, `gelu'(${z}): analytic ${geluGrad(z)} vs FD ${num}`);
  }
});

test('reference scoreTokensBackward matches finite differences (float64, 1e-7)', () => {
  const p = problem.sp.ref;
  const analytic = scoreTokensBackward(problem.xv, problem.qv, keepF32, S.B, S.N, p, problem.dv);
  for (const name of PARAM_NAMES) {
    const e = relErr(analytic[name], fdGrads[name]);
    assert.ok(e < REF_TOL, `d loss / d ${name}: relative error ${e.toExponential(3)} > ${REF_TOL}`);
  }
});

test('reference plackettLuceBackward matches finite differences (float64, 1e-7)', () => {
  const analytic = plBackward(plLogits, plIdx, plD, P.B, P.N, P.G, P.k);
  const e = relErr(analytic, plFd);
  assert.ok(e < REF_TOL, `dLogits: relative error ${e.toExponential(3)} > ${REF_TOL}`);
  assert.is(analytic[3], 0, 'the never-drawn -Inf logit has zero gradient');
});

function nativeScore(b: BackendRun) {
  const { xv, qv, sp, dv } = problem;
  const grads = ops.scoreTokensBackwardSync(
    tensor(xv, [S.B, S.N, S.D]), tensor(qv, [S.B, S.D]), keep, sp.params, tensor(Float32Array.from(dv), [S.B, S.N]), on(b));
  for (const name of PARAM_NAMES) {
    const e = relErr(valuesOf(grads[name]), fdGrads[name]);
    assert.ok(e < NATIVE_SCORE_TOL, `${b.name} d loss / d ${name}: relative error ${e.toExponential(3)} > ${NATIVE_SCORE_TOL}`);
  }
}

function nativePl(b: BackendRun) {
  const out = ops.plackettLuceBackwardSync(
    tensor(Float32Array.from(plLogits), [P.B, P.N]), tensor(plIdx, [P.B, P.G, P.k]), tensor(Float32Array.from(plD), [P.B, P.G]), on(b));
  const v = valuesOf(out);
  const e = relErr(v, plFd);
  assert.ok(e < NATIVE_PL_TOL, `${b.name} dLogits: relative error ${e.toExponential(3)} > ${NATIVE_PL_TOL}`);
  assert.is(v[3], 0, `${b.name}: the never-drawn -Inf logit has zero gradient`);
}

for (const b of BACKENDS) {
  const t = b.skip ? test.skip : test;
  t(`${b.name}: scoreTokensBackward (f32) matches finite differences of the reference forward`, () => nativeScore(b));
  t(`${b.name}: plackettLuceBackward matches finite differences of the reference log-prob`, () => nativePl(b));
}

test.run();
