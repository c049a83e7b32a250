// ops.ts — the pruning ops and the transformer ops of the LLaVA runtime.
// Each op validates its arguments (lib/validate.ts),
// allocates its outputs and calls the addon once, on the backend chosen by
// lib/backend.ts. `ops.x(...)` runs off the event loop and returns a Promise
// (with an optional AbortSignal); `ops.xSync(...)` runs on the calling thread
// for tight loops where a microsecond op should not pay for a thread hop.
import { BACKEND_CODE, resolveBackend, type Backend } from './backend.js';
import { GripError } from './errors.js';
import { native, type NativeTensor } from './native.js';
import { Tensor, allocHost, describe, numel, type DType } from './tensor.js';
import { check } from './validate.js';

export interface OpOptions {
  /** Backend of this call (default: the global one, initially 'auto'). */
  backend?: Backend;
  /** Aborts the call: the Promise rejects with the signal's reason and the results are dropped. */
  signal?: AbortSignal;
}

/** The budget-aware scorer's parameters (all f32). D hidden, H scorer hidden, R query rank. */
export interface ScorerParams {
  lnWeight: Tensor; // [D]
  lnBias: Tensor; // [D]
  w1: Tensor; // [D,H]
  b1: Tensor; // [H]
  filmW: Tensor; // [FOURIER_FEATURES = 16, 2H]
  filmB: Tensor; // [2H]
  w2: Tensor; // [H]
  b2: Tensor; // [1]
  wq: Tensor; // [D,R]
  wk: Tensor; // [D,R]
}

export const SCORER_PARAM_NAMES = ['lnWeight', 'lnBias', 'w1', 'b1', 'filmW', 'filmB', 'w2', 'b2', 'wq', 'wk'] as const;
export type ScorerParamName = (typeof SCORER_PARAM_NAMES)[number];

/** Fourier features of the keep ratio that feed the scorer's FiLM (kFourierFeatures in native/core/args.h). */
export const FOURIER_FEATURES = 16;

/** The shape of each scorer parameter, with its layout: D token width, H scorer hidden, R query rank. */
export function scorerShapes(D: number, H: number, R: number): Record<ScorerParamName, { layout: string; shape: number[] }> {
  const F = FOURIER_FEATURES;
  return {
    lnWeight: { layout: '[D]', shape: [D] }, lnBias: { layout: '[D]', shape: [D] },
    w1: { layout: '[D,H]', shape: [D, H] }, b1: { layout: '[H]', shape: [H] },
    filmW: { layout: `[${F},2H]`, shape: [F, 2 * H] }, filmB: { layout: '[2H]', shape: [2 * H] },
    w2: { layout: '[H]', shape: [H] }, b2: { layout: '[1]', shape: [1] },
    wq: { layout: '[D,R]', shape: [D, R] }, wk: { layout: '[D,R]', shape: [D, R] },
  };
}

export interface OutOptions extends OpOptions {
  /**
   * Write the result into this tensor (same shape, dtype and device as the
   * result) instead of a new one: reusing buffers saves the allocation and
   * page faults, which dominate the data-movement ops.
   */
  out?: Tensor;
}

export interface MatmulOptions extends OutOptions {
  /** b is stored [N,K] (a Linear layer's weight [out,in]) instead of [K,N]. */
  transB?: boolean;
}

export interface AdamWOptions {
  /** 1-based step number (bias correction). */
  step: number;
  lr: number;
  beta1?: number; // default 0.9
  beta2?: number; // default 0.999
  eps?: number; // default 1e-8
  weightDecay?: number; // default 0.01
}

/** GELU variant: exact erf, the GPT-2 tanh approximation, or CLIP's quick_gelu x·sigmoid(1.702x). */
export type GeluKind = 'erf' | 'tanh' | 'quick';

export interface SoftmaxOptions extends OutOptions {
  /** Log-softmax instead of softmax. */
  log?: boolean;
}

export interface AttentionOptions extends OpOptions {
  /** Query i of row b sits at key kvLen[b] - qLen[b] + i and attends keys up to it (default true). */
  causal?: boolean;
  /** Valid query rows per batch row (default Tq); rows past it get zeros. */
  qLen?: ArrayLike<number>;
  /** Valid keys per batch row (default Tk). */
  kvLen?: ArrayLike<number>;
  /** Multiplies q·k (default 1/sqrt(Dh)). */
  scale?: number;
  /** Query rows (0..Tq-1, shared by all batch rows) whose softmax probabilities are returned in `probs`. */
  probRows?: ArrayLike<number>;
  /** Write the output [B,Tq,Hq,Dh] here. */
  out?: Tensor;
}

export interface AttentionResult {
  /** [B,Tq,Hq,Dh] f32. */
  out: Tensor;
  /** [B,Hq,R,Tk] f32 probabilities of the `probRows` rows (0 for keys not attended); only with probRows. */
  probs?: Tensor;
}

export interface TopkResult {
  /** [B,maxK] i32, ascending by position; -1 pads rows with a smaller k. */
  indices: Tensor;
  /** [B,maxK] f32, the scores at `indices` (-Infinity on padding). */
  values: Tensor;
}

export interface GumbelTopkResult {
  /** [B,G,k] i32 in sampling order. */
  indices: Tensor;
  /** [B,G] f32 Plackett-Luce log-probability of each ordered sample. */
  logProb: Tensor;
}

// ---- the one executor -----------------------------------------------------------

type Named = readonly [name: string, tensor: Tensor];
interface OutputSpec { shape: number[]; dtype: DType; given?: Tensor | undefined }
interface Plan {
  inputs: Named[];
  /** Tensors the op modifies in place. */
  inouts: Named[];
  outputs: OutputSpec[];
  call(mode: number, inputs: NativeTensor[], inouts: NativeTensor[], outputs: NativeTensor[]): Promise<void> | undefined;
}

function execute(plan: Plan, options: OpOptions | undefined, async: true): Promise<Tensor[]>;
function execute(plan: Plan, options: OpOptions | undefined, async: false): Tensor[];
function execute(plan: Plan, options: OpOptions | undefined, async: boolean): Tensor[] | Promise<Tensor[]> {
  const signal = options?.signal;
  signal?.throwIfAborted();
  const all = [...plan.inputs, ...plan.inouts];
  const onDevice = all.filter(([, t]) => t.device === 'cuda');
  if (onDevice.length > 0 && onDevice.length < all.length) {
    const host = all.find(([, t]) => t.device !== 'cuda')!;
    throw new GripError('ERR_GRIP_DEVICE', `expected a cuda tensor (like ${onDevice[0]![0]}) for ${host[0]} but received a cpu tensor`);
  }
  const backend = resolveBackend(options?.backend, onDevice.length > 0);
  // Host tensors on the CUDA backend travel to the device and back.
  const staged = backend === 'cuda' && onDevice.length === 0;
  const temporaries: Tensor[] = [];
  const place = (t: Tensor) => {
    if (!staged) return t;
    const d = t.toDevice();
    temporaries.push(d);
    return d;
  };
  const outputs: Tensor[] = []; // where the op writes
  let inputs: Tensor[];
  let inouts: Tensor[];
  // Frees what this call allocated (never the caller's tensors).
  const dropAll = () => {
    for (const t of temporaries) t.dispose();
    outputs.forEach((t, i) => {
      if (t !== plan.outputs[i]!.given) t.dispose();
    });
  };
  try {
    inputs = plan.inputs.map(([, t]) => place(t));
    inouts = plan.inouts.map(([, t]) => place(t));
    for (const spec of plan.outputs) {
      if (spec.given && !staged) {
        outputs.push(spec.given);
        continue;
      }
      const host = allocHost(spec.dtype, numel(spec.shape));
      const t = new Tensor(spec.dtype, spec.shape, host, 'cpu');
      outputs.push(backend === 'cuda' ? t.toDevice() : t);
    }
  } catch (error) {
    dropAll();
    throw error;
  }
  const mode = BACKEND_CODE[backend] | (async ? 4 : 0);
  const finish = (): Tensor[] => {
    if (!staged) return outputs;
    try {
      plan.inouts.forEach(([, original], i) => {
        original.host.set(inouts[i]!.toHost().host as never);
      });
      return outputs.map((t, i) => {
        const back = t.toHost();
        const given = plan.outputs[i]!.given;
        if (!given) return back;
        given.host.set(back.host as never);
        return given;
      });
    } finally {
      dropAll();
    }
  };
  if (!async) {
    try {
      plan.call(mode, inputs, inouts, outputs);
    } catch (error) {
      dropAll();
      throw error;
    }
    return finish();
  }
  return (async () => {
    try {
      await plan.call(mode, inputs, inouts, outputs);
    } catch (error) {
      dropAll();
      throw error;
    }
    if (signal?.aborted) {
      dropAll();
      throw signal.reason;
    }
    return finish();
  })();
}

// ---- argument helpers -------------------------------------------------------------

const FLOATS: readonly DType[] = ['f32', 'f16', 'bf16'];
const WEIGHTS: readonly DType[] = ['f32', 'f16', 'bf16', 'q8_0'];
const F32: readonly DType[] = ['f32'];
const I32: readonly DType[] = ['i32'];

function checkOptions(options: OpOptions | undefined): void {
  if (options === undefined) return;
  if (typeof options !== 'object' || options === null) check.fail('ERR_GRIP_RANGE', 'an options object', 'options', String(options));
  check.signal(options.signal, 'options.signal');
}

/** The caller's `out` tensor, checked against the result it must hold. */
function givenOut(options: OutOptions | undefined, shape: number[], dtype: DType, device: 'cpu' | 'cuda'): Tensor | undefined {
  const out = options?.out;
  if (out === undefined) return undefined;
  const want = `${dtype} [${shape.join(', ')}] on ${device}`;
  if (!(out instanceof Tensor)) check.fail('ERR_GRIP_SHAPE', `a Tensor ${want}`, 'options.out', describe(out));
  if (out.dtype !== dtype || out.device !== device || out.shape.length !== shape.length || out.shape.some((d, i) => d !== shape[i])) {
    check.fail(out.dtype !== dtype ? 'ERR_GRIP_DTYPE' : out.device !== device ? 'ERR_GRIP_DEVICE' : 'ERR_GRIP_SHAPE', want, 'options.out', `${out.dtype} [${out.shape.join(', ')}] on ${out.device}`);
  }
  return out;
}

function keepRatioTensor(keepRatio: Tensor | number | ArrayLike<number>, B: number, device: 'cpu' | 'cuda'): Tensor {
  if (keepRatio instanceof Tensor) {
    check.tensor(keepRatio, 'keepRatio', '[B]', F32, [B]);
    if (keepRatio.device === 'cpu') checkRatios(keepRatio.host as Float32Array);
    return keepRatio;
  }
  // Anything else reached Float32Array.from and threw a TypeError (fuzz finding).
  if (typeof keepRatio !== 'number' && !isArrayLike(keepRatio)) {
    check.fail('ERR_GRIP_RANGE', 'a number in (0, 1], an array of B numbers or a Tensor [B]', 'keepRatio', describe(keepRatio));
  }
  if (typeof keepRatio !== 'number') {
    for (let b = 0; b < keepRatio.length; b++) {
      if (typeof keepRatio[b] !== 'number') check.fail('ERR_GRIP_RANGE', 'values in (0, 1]', 'keepRatio', `${describe(keepRatio[b])} at [${b}]`);
    }
  }
  const values = typeof keepRatio === 'number' ? new Float32Array(B).fill(keepRatio) : Float32Array.from(keepRatio as ArrayLike<number>);
  if (typeof keepRatio !== 'number' && values.length !== B) {
    check.fail('ERR_GRIP_SHAPE', `${B} values [B]`, 'keepRatio', String(values.length));
  }
  if (typeof keepRatio === 'number') check.number(keepRatio, 'keepRatio', (v) => v > 0 && v <= 1, 'a number in (0, 1]');
  checkRatios(values);
  const t = new Tensor('f32', [B], values, 'cpu');
  return device === 'cuda' ? t.toDevice() : t;
}

function checkRatios(values: Float32Array): void {
  values.forEach((v, b) => {
    if (!(v > 0 && v <= 1)) check.fail('ERR_GRIP_RANGE', 'values in (0, 1]', 'keepRatio', `${v} at [${b}]`);
  });
}

function checkScorer(params: unknown, D: number, what: string): { H: number; R: number } {
  if (typeof params !== 'object' || params === null) check.fail('ERR_GRIP_SHAPE', 'scorer params', what, String(params));
  const p = params as Record<string, unknown>;
  const b1: unknown = p.b1, wq: unknown = p.wq;
  check.tensor(b1, `${what}.b1`, '[H]', F32);
  const H = b1.shape[0]!;
  check.tensor(wq, `${what}.wq`, '[D,R]', F32, [D, undefined]);
  const R = wq.shape[1]!;
  if (H < 1) check.fail('ERR_GRIP_SHAPE', 'H >= 1 [H]', `${what}.b1`, `[${H}]`);
  if (R < 1) check.fail('ERR_GRIP_SHAPE', 'R >= 1 [D,R]', `${what}.wq`, `[${D}, ${R}]`);
  const expected = scorerShapes(D, H, R);
  for (const name of SCORER_PARAM_NAMES) {
    const { layout, shape } = expected[name];
    check.tensor(p[name], `${what}.${name}`, layout, F32, shape);
  }
  return { H, R };
}

function paramList(params: ScorerParams, what: string): Named[] {
  return SCORER_PARAM_NAMES.map((name) => [`${what}.${name}`, params[name]] as const);
}

function toRecord(list: readonly NativeTensor[]): Record<string, NativeTensor> {
  const record: Record<string, NativeTensor> = {};
  SCORER_PARAM_NAMES.forEach((name, i) => { record[name] = list[i]!; });
  return record;
}

function fromOutputs(list: readonly Tensor[]): ScorerParams {
  const record = {} as Record<ScorerParamName, Tensor>;
  SCORER_PARAM_NAMES.forEach((name, i) => { record[name] = list[i]!; });
  return record;
}

// ---- plans (validate, then describe the call) ------------------------------------

function scorePlan(x: Tensor, query: Tensor, keepRatio: Tensor | number | ArrayLike<number>, params: ScorerParams, options?: OutOptions): Plan {
  checkOptions(options);
  check.tensor(x, 'x', '[B,N,D]', FLOATS);
  const [B, N, D] = x.shape as [number, number, number];
  check.tensor(query, 'query', '[B,D]', F32, [B, D]);
  checkScorer(params, D, 'params');
  const ratio = keepRatioTensor(keepRatio, B, x.device);
  return {
    inputs: [['x', x], ['query', query], ['keepRatio', ratio], ...paramList(params, 'params')],
    inouts: [],
    outputs: [{ shape: [B, N], dtype: 'f32', given: givenOut(options, [B, N], 'f32', x.device) }],
    call: (mode, [xn, qn, rn, ...pn], _io, [scores]) => native().scoreTokens(mode, xn!, qn!, rn!, toRecord(pn), scores!),
  };
}

function scoreBackwardPlan(x: Tensor, query: Tensor, keepRatio: Tensor | number | ArrayLike<number>, params: ScorerParams, dScores: Tensor, options?: OpOptions): Plan {
  const forward = scorePlan(x, query, keepRatio, params, options && { backend: options.backend, signal: options.signal });
  const [B, N] = x.shape as [number, number];
  check.tensor(dScores, 'dScores', '[B,N]', F32, [B, N]);
  return {
    inputs: [...forward.inputs, ['dScores', dScores]],
    inouts: [],
    outputs: SCORER_PARAM_NAMES.map((name) => ({ shape: [...params[name].shape], dtype: 'f32' as DType })),
    call: (mode, [xn, qn, rn, ...rest], _io, grads) => {
      const pn = rest.slice(0, SCORER_PARAM_NAMES.length);
      const dn = rest[SCORER_PARAM_NAMES.length]!;
      return native().scoreTokensBackward(mode, xn!, qn!, rn!, toRecord(pn), dn, toRecord(grads));
    },
  };
}

function topkPlan(scores: Tensor, k: number | ArrayLike<number>, options?: OpOptions): Plan {
  checkOptions(options);
  check.tensor(scores, 'scores', '[B,N]', F32);
  const [B, N] = scores.shape as [number, number];
  let perRow: Int32Array;
  if (typeof k === 'number') {
    check.integer(k, 'k', 0, N);
    perRow = new Int32Array(B).fill(k);
  } else {
    if (k == null || typeof (k as ArrayLike<number>).length !== 'number') check.fail('ERR_GRIP_RANGE', 'a number or one k per row', 'k', String(k));
    if (k.length !== B) check.fail('ERR_GRIP_SHAPE', `${B} values [B]`, 'k', String(k.length));
    perRow = new Int32Array(B);
    for (let b = 0; b < B; b++) {
      check.integer(k[b], `k[${b}]`, 0, N);
      perRow[b] = k[b]!;
    }
  }
  const maxK = perRow.reduce((m, v) => Math.max(m, v), 0);
  return {
    inputs: [['scores', scores]],
    inouts: [],
    outputs: [{ shape: [B, maxK], dtype: 'i32' }, { shape: [B, maxK], dtype: 'f32' }],
    call: (mode, [s], _io, [indices, values]) => native().topk(mode, s!, perRow, indices!, values!),
  };
}

function seedBigInt(seed: unknown): bigint {
  if (typeof seed === 'bigint' && seed >= 0n && seed < 1n << 64n) return seed;
  if (typeof seed === 'number' && Number.isSafeInteger(seed) && seed >= 0) return BigInt(seed);
  return check.fail('ERR_GRIP_RANGE', 'an integer in [0, 2^64) (number or bigint)', 'seed', typeof seed === 'bigint' ? `${seed}n` : String(seed));
}

function gumbelPlan(logits: Tensor, k: number, options: { samples: number; seed: number | bigint } & OpOptions): Plan {
  if (typeof options !== 'object' || options === null) check.fail('ERR_GRIP_RANGE', 'options { samples, seed }', 'options', String(options));
  checkOptions(options);
  check.tensor(logits, 'logits', '[B,N]', F32);
  const [B, N] = logits.shape as [number, number];
  check.integer(k, 'k', 0, N);
  check.integer(options.samples, 'samples', 1, 0x7fffffff);
  const seed = seedBigInt(options.seed);
  const G = options.samples;
  return {
    inputs: [['logits', logits]],
    inouts: [],
    outputs: [{ shape: [B, G, k], dtype: 'i32' }, { shape: [B, G], dtype: 'f32' }],
    call: (mode, [l], _io, [indices, logProb]) => native().gumbelTopk(mode, l!, k, G, seed, indices!, logProb!),
  };
}

function plIndices(logits: Tensor, indices: Tensor): [number, number, number] {
  check.tensor(logits, 'logits', '[B,N]', F32);
  const [B, N] = logits.shape as [number, number];
  check.tensor(indices, 'indices', '[B,G,k]', I32, [B]);
  const [, G, k] = indices.shape as [number, number, number];
  if (k > N) check.fail('ERR_GRIP_SHAPE', `k <= N = ${N} [B,G,k]`, 'indices', `[${indices.shape.join(', ')}]`);
  return [B, N, G];
}

function plLogProbPlan(logits: Tensor, indices: Tensor, options?: OpOptions): Plan {
  checkOptions(options);
  const [B, , G] = plIndices(logits, indices);
  return {
    inputs: [['logits', logits], ['indices', indices]],
    inouts: [],
    outputs: [{ shape: [B, G], dtype: 'f32' }],
    call: (mode, [l, i], _io, [lp]) => native().plackettLuceLogProb(mode, l!, i!, lp!),
  };
}

function plBackwardPlan(logits: Tensor, indices: Tensor, dLogProb: Tensor, options?: OpOptions): Plan {
  checkOptions(options);
  const [B, N, G] = plIndices(logits, indices);
  check.tensor(dLogProb, 'dLogProb', '[B,G]', F32, [B, G]);
  return {
    inputs: [['logits', logits], ['indices', indices], ['dLogProb', dLogProb]],
    inouts: [],
    outputs: [{ shape: [B, N], dtype: 'f32' }],
    call: (mode, [l, i, d], _io, [dl]) => native().plackettLuceBackward(mode, l!, i!, d!, dl!),
  };
}

function gatherPlan(x: Tensor, indices: Tensor, options?: OutOptions): Plan {
  checkOptions(options);
  check.tensor(x, 'x', '[B,N,D]', FLOATS);
  const [B, , D] = x.shape as [number, number, number];
  check.tensor(indices, 'indices', '[B,K]', I32, [B]);
  const K = indices.shape[1]!;
  return {
    inputs: [['x', x], ['indices', indices]],
    inouts: [],
    outputs: [{ shape: [B, K, D], dtype: x.dtype, given: givenOut(options, [B, K, D], x.dtype, x.device) }],
    call: (mode, [xn, i], _io, [out]) => native().gatherRows(mode, xn!, i!, out!),
  };
}

function checkKeep(cache: Tensor, keep: Tensor): [number, number, number, number, number] {
  check.tensor(cache, 'cache', '[B,Hkv,T,Dh]', FLOATS);
  const [B, Hkv, T, Dh] = cache.shape as [number, number, number, number];
  check.tensor(keep, 'keep', '[B,K]', I32, [B]);
  const K = keep.shape[1]!;
  if (K > T) check.fail('ERR_GRIP_SHAPE', `K <= T = ${T} [B,K]`, 'keep', `[${keep.shape.join(', ')}]`);
  return [B, Hkv, T, Dh, K];
}

function compactPlan(cache: Tensor, keep: Tensor, options?: OutOptions): Plan {
  checkOptions(options);
  const [B, Hkv, , Dh, K] = checkKeep(cache, keep);
  return {
    inputs: [['cache', cache], ['keep', keep]],
    inouts: [],
    outputs: [{ shape: [B, Hkv, K, Dh], dtype: cache.dtype, given: givenOut(options, [B, Hkv, K, Dh], cache.dtype, cache.device) }],
    call: (mode, [c, kp], _io, [out]) => native().compactKV(mode, c!, kp!, out!),
  };
}

function compactInPlacePlan(cache: Tensor, keep: Tensor, lengths: Int32Array, options?: OpOptions): Plan {
  checkOptions(options);
  checkKeep(cache, keep);
  return {
    inputs: [['keep', keep]],
    inouts: [['cache', cache]],
    outputs: [],
    call: (mode, [kp], [c]) => native().compactKVInPlace(mode, c!, kp!, lengths),
  };
}

function adamwPlan(param: Tensor, grad: Tensor, m: Tensor, v: Tensor, o: AdamWOptions, options?: OpOptions): Plan {
  checkOptions(options);
  if (typeof o !== 'object' || o === null) check.fail('ERR_GRIP_RANGE', 'AdamW options { step, lr, ... }', 'options', String(o));
  if (!(param instanceof Tensor)) check.fail('ERR_GRIP_SHAPE', 'a Tensor', 'param', describe(param));
  check.tensor(param, 'param', `[${param.shape.map((_, i) => `d${i}`).join(',')}]`, F32);
  const layout = '(the shape of param)';
  for (const [name, t] of [['grad', grad], ['m', m], ['v', v]] as const) {
    if (!(t instanceof Tensor) || t.shape.length !== param.shape.length || t.shape.some((d, i) => d !== param.shape[i])) {
      check.fail('ERR_GRIP_SHAPE', `[${param.shape.join(', ')}] ${layout}`, name, t instanceof Tensor ? `[${t.shape.join(', ')}]` : describe(t));
    }
    check.tensor(t, name, `[${param.shape.map((_, i) => `d${i}`).join(',')}]`, F32);
  }
  const beta1 = o.beta1 ?? 0.9, beta2 = o.beta2 ?? 0.999, eps = o.eps ?? 1e-8, weightDecay = o.weightDecay ?? 0.01;
  check.integer(o.step, 'step', 1, Number.MAX_SAFE_INTEGER);
  // The native step computes in float32: judge each value as float32 sees it.
  const f = Math.fround;
  check.number(o.lr, 'lr', (x) => Number.isFinite(f(x)) && x >= 0, 'a finite float32 >= 0');
  check.number(beta1, 'beta1', (x) => x >= 0 && f(x) < 1, 'a float32 in [0, 1)');
  check.number(beta2, 'beta2', (x) => x >= 0 && f(x) < 1, 'a float32 in [0, 1)');
  check.number(eps, 'eps', (x) => Number.isFinite(f(x)) && f(x) > 0, 'a finite float32 > 0');
  check.number(weightDecay, 'weightDecay', (x) => Number.isFinite(f(x)) && x >= 0, 'a finite float32 >= 0');
  return {
    inputs: [['grad', grad]],
    inouts: [['param', param], ['m', m], ['v', v]],
    outputs: [],
    call: (mode, [g], [p, mm, vv]) => native().adamw(mode, p!, g!, mm!, vv!, o.step, o.lr, beta1, beta2, eps, weightDecay),
  };
}

function matmulPlan(a: Tensor, b: Tensor, options?: MatmulOptions): Plan {
  checkOptions(options);
  const transB = options?.transB ?? false;
  if (typeof transB !== 'boolean') check.fail('ERR_GRIP_RANGE', 'a boolean', 'options.transB', String(transB));
  check.tensor(a, 'a', '[M,K]', F32);
  const [M, K] = a.shape as [number, number];
  check.tensor(b, 'b', transB ? '[N,K]' : '[K,N]', FLOATS, transB ? [undefined, K] : [K, undefined]);
  const N = transB ? b.shape[0]! : b.shape[1]!;
  return {
    inputs: [['a', a], ['b', b]],
    inouts: [],
    outputs: [{ shape: [M, N], dtype: 'f32', given: givenOut(options, [M, N], 'f32', a.device) }],
    call: (mode, [an, bn], _io, [out]) => native().matmul(mode, an!, bn!, transB, out!),
  };
}

// ---- transformer plans ----------------------------------------------------------

const GELU_KINDS: readonly GeluKind[] = ['erf', 'tanh', 'quick'];

/** A Tensor of any rank >= minRank (layout like "[..., D]" names it in messages). */
function anyRank(value: unknown, what: string, layout: string, dtypes: readonly DType[], minRank = 0): asserts value is Tensor {
  if (!(value instanceof Tensor)) check.fail('ERR_GRIP_SHAPE', `a Tensor ${layout}`, what, describe(value));
  if (value.shape.length < minRank) check.fail('ERR_GRIP_SHAPE', `at least ${minRank} dimension ${layout}`, what, `0 dimensions []`);
  check.tensor(value, what, `[${value.shape.map((_, i) => `d${i}`).join(',')}]`, dtypes);
}

/** A tensor with exactly `shape` (named `layout` in messages) and a dtype from `dtypes`. */
function sameShape(value: unknown, what: string, shape: readonly number[], layout: string, dtypes: readonly DType[]): asserts value is Tensor {
  if (!(value instanceof Tensor) || value.shape.length !== shape.length || value.shape.some((d, i) => d !== shape[i])) {
    check.fail('ERR_GRIP_SHAPE', `[${shape.join(', ')}] ${layout}`, what, value instanceof Tensor ? `[${value.shape.join(', ')}]` : describe(value));
  }
  check.tensor(value, what, `[${shape.map((_, i) => `d${i}`).join(',')}]`, dtypes);
}

const isArrayLike = (v: unknown): v is ArrayLike<unknown> => v != null && typeof v === 'object' && typeof (v as ArrayLike<unknown>).length === 'number';

/** n integers per row from a host array, each in [lo, hi(i)] (hiText names the bound). */
function hostInts(values: unknown, what: string, n: number, lo: number, hi: (i: number) => number, hiText?: (i: number) => string): Int32Array {
  if (!isArrayLike(values)) check.fail('ERR_GRIP_RANGE', `an array of ${n} integers`, what, describe(values));
  if (values.length !== n) check.fail('ERR_GRIP_SHAPE', `${n} values [${what === 'probRows' ? 'R' : 'B'}]`, what, String(values.length));
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const v = values[i];
    const max = hi(i);
    if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > max) {
      check.fail('ERR_GRIP_RANGE', `values in [${lo}, ${max}]${hiText ? ` ${hiText(i)}` : ''}`, what, `${typeof v === 'number' ? v : describe(v)} at [${i}]`);
    }
    out[i] = v;
  }
  return out;
}

/** A q8_0 matrix [N,K]: whole blocks of 32 along its rows, on the CPU backend (the same checks as the C ABI's). */
function checkQ8_0(t: Tensor, what: string, options: OpOptions | undefined, onDevice: boolean): void {
  const K = t.shape[1]!;
  if (K % 32 !== 0) check.fail('ERR_GRIP_SHAPE', 'a row length K that is a multiple of 32 (q8_0 blocks)', what, `K = ${K}`);
  if (resolveBackend(options?.backend, onDevice) !== 'cpu') check.fail('ERR_GRIP_UNSUPPORTED', 'a cpu tensor (q8_0 has CPU kernels only)', `device of ${what}`, 'cuda');
}

function linearPlan(x: Tensor, weight: Tensor, bias: Tensor | null | undefined, options?: OutOptions): Plan {
  checkOptions(options);
  anyRank(x, 'x', '[..., K]', F32, 1);
  const K = x.shape[x.shape.length - 1]!;
  check.tensor(weight, 'weight', '[N,K]', WEIGHTS, [undefined, K]);
  const N = weight.shape[0]!;
  if (weight.dtype === 'q8_0') checkQ8_0(weight, 'weight', options, x.device === 'cuda' || weight.device === 'cuda');
  const hasBias = bias !== null && bias !== undefined;
  if (hasBias) check.tensor(bias, 'bias', '[N]', F32, [N]);
  const shape = [...x.shape.slice(0, -1), N];
  return {
    inputs: hasBias ? [['x', x], ['weight', weight], ['bias', bias]] : [['x', x], ['weight', weight]],
    inouts: [],
    outputs: [{ shape, dtype: 'f32', given: givenOut(options, shape, 'f32', x.device) }],
    call: (mode, [xn, wn, bn], _io, [out]) => native().linear(mode, xn!, wn!, hasBias ? bn! : null, out!),
  };
}

function quantizePlan(x: Tensor, options?: OutOptions): Plan {
  checkOptions(options);
  check.tensor(x, 'x', '[N,K]', F32);
  const shape = [...x.shape];
  const probe = new Tensor('q8_0', shape, new Uint8Array(0), x.device);
  checkQ8_0(probe, 'x', options, x.device === 'cuda');
  return {
    inputs: [['x', x]],
    inouts: [],
    outputs: [{ shape, dtype: 'q8_0', given: givenOut(options, shape, 'q8_0', 'cpu') }],
    call: (mode, [xn], _io, [out]) => native().quantizeQ8_0(mode, xn!, out!),
  };
}

const eps32 = (eps: unknown) => check.number(eps, 'eps', (v) => Number.isFinite(Math.fround(v)) && v >= 0, 'a finite float32 >= 0');

function normPlan(x: Tensor, weight: Tensor, bias: Tensor | null, eps: number, options?: OutOptions): Plan {
  checkOptions(options);
  anyRank(x, 'x', '[..., D]', F32, 1);
  const D = x.shape[x.shape.length - 1]!;
  check.tensor(weight, 'weight', '[D]', F32, [D]);
  if (bias !== null) check.tensor(bias, 'bias', '[D]', F32, [D]);
  eps32(eps);
  const shape = [...x.shape];
  return {
    inputs: bias !== null ? [['x', x], ['weight', weight], ['bias', bias]] : [['x', x], ['weight', weight]],
    inouts: [],
    outputs: [{ shape, dtype: 'f32', given: givenOut(options, shape, 'f32', x.device) }],
    call: (mode, [xn, wn, bn], _io, [out]) => (bias !== null ? native().layerNorm(mode, xn!, wn!, bn!, eps, out!) : native().rmsNorm(mode, xn!, wn!, eps, out!)),
  };
}

function ropePlan(x: Tensor, positions: Tensor, theta: number, options?: OutOptions): Plan {
  checkOptions(options);
  check.tensor(x, 'x', '[B,T,H,Dh]', F32);
  const [B, T, , Dh] = x.shape as [number, number, number, number];
  if (Dh % 2 !== 0) check.fail('ERR_GRIP_SHAPE', 'an even head dim Dh [B,T,H,Dh]', 'x', `[${x.shape.join(', ')}]`);
  check.tensor(positions, 'positions', '[B,T]', I32, [B, T]);
  check.number(theta, 'theta', (v) => Number.isFinite(v) && v > 0, 'a finite number > 0');
  const shape = [...x.shape];
  return {
    inputs: [['x', x], ['positions', positions]],
    inouts: [],
    outputs: [{ shape, dtype: 'f32', given: givenOut(options, shape, 'f32', x.device) }],
    call: (mode, [xn, pn], _io, [out]) => native().rope(mode, xn!, pn!, theta, out!),
  };
}

function cacheWritePlan(cache: Tensor, src: Tensor, start: ArrayLike<number>, count: ArrayLike<number>, options?: OpOptions): Plan {
  checkOptions(options);
  check.tensor(cache, 'cache', '[B,Hkv,Tmax,Dh]', FLOATS);
  const [B, Hkv, Tmax, Dh] = cache.shape as [number, number, number, number];
  check.tensor(src, 'src', '[B,T,Hkv,Dh]', F32, [B, undefined, Hkv, Dh]);
  const T = src.shape[1]!;
  const counts = hostInts(count, 'count', B, 0, () => T);
  const starts = hostInts(start, 'start', B, 0, () => Tmax);
  for (let b = 0; b < B; b++) {
    if (starts[b]! + counts[b]! > Tmax) check.fail('ERR_GRIP_RANGE', `start + count <= Tmax = ${Tmax}`, `row ${b}`, `${starts[b]} + ${counts[b]}`);
  }
  return {
    inputs: [['src', src]],
    inouts: [['cache', cache]],
    outputs: [],
    call: (mode, [sn], [cn]) => native().cacheWrite(mode, cn!, sn!, starts, counts),
  };
}

function attentionPlan(q: Tensor, k: Tensor, v: Tensor, options?: AttentionOptions): Plan {
  checkOptions(options);
  check.tensor(q, 'q', '[B,Tq,Hq,Dh]', F32);
  const [B, Tq, Hq, Dh] = q.shape as [number, number, number, number];
  check.tensor(k, 'k', '[B,Hkv,Tk,Dh]', F32, [B, undefined, undefined, Dh]);
  const [, Hkv, Tk] = k.shape as [number, number, number, number];
  check.tensor(v, 'v', '[B,Hkv,Tk,Dh]', F32, [...k.shape]);
  // Hq = 0 < Hkv would make the native head group Hq / Hkv zero (a division by it: fuzz finding).
  if (Hkv === 0 ? Hq !== 0 : Hq % Hkv !== 0 || Hq === 0) check.fail('ERR_GRIP_SHAPE', `a positive multiple of Hkv = ${Hkv} query heads [B,Tq,Hq,Dh]`, 'q', `[${q.shape.join(', ')}]`);
  const causal = options?.causal ?? true;
  if (typeof causal !== 'boolean') check.fail('ERR_GRIP_RANGE', 'a boolean', 'options.causal', describe(causal));
  const scale = options?.scale ?? 1 / Math.sqrt(Dh);
  check.number(scale, 'options.scale', (x) => Number.isFinite(Math.fround(x)), 'a finite float32');
  const kvLen = options?.kvLen === undefined ? Int32Array.from({ length: B }, () => Tk) : hostInts(options.kvLen, 'kvLen', B, 0, () => Tk);
  let qLen: Int32Array;
  if (options?.qLen === undefined) {
    qLen = new Int32Array(B).fill(Tq);
    kvLen.forEach((kvl, b) => {
      if (Tq > kvl) check.fail('ERR_GRIP_RANGE', 'Tq <= kvLen (or an explicit qLen)', 'q', `Tq = ${Tq} > kvLen = ${kvl} at [${b}]`);
    });
  } else {
    qLen = hostInts(options.qLen, 'qLen', B, 0, (b) => Math.min(Tq, kvLen[b]!), () => '(qLen <= Tq and qLen <= kvLen)');
  }
  const rows = options?.probRows;
  if (rows !== undefined && !isArrayLike(rows)) check.fail('ERR_GRIP_RANGE', 'an array of query row indices', 'probRows', describe(rows));
  const probRows = rows === undefined ? null : hostInts(rows, 'probRows', rows.length, 0, () => Tq - 1);
  const R = probRows?.length ?? 0;
  const shape = [B, Tq, Hq, Dh];
  const outputs: OutputSpec[] = [{ shape, dtype: 'f32', given: givenOut(options, shape, 'f32', q.device) }];
  if (probRows) outputs.push({ shape: [B, Hq, R, Tk], dtype: 'f32' });
  const scale32 = Math.fround(scale);
  return {
    inputs: [['q', q], ['k', k], ['v', v]],
    inouts: [],
    outputs,
    call: (mode, [qn, kn, vn], _io, [out, probs]) => native().attention(mode, qn!, kn!, vn!, causal, scale32, qLen, kvLen, probRows, out!, probs ?? null),
  };
}

function geluPlan(x: Tensor, kind: GeluKind, options?: OutOptions): Plan {
  checkOptions(options);
  anyRank(x, 'x', '(any shape)', F32);
  check.oneOf(kind, 'kind', GELU_KINDS);
  const shape = [...x.shape];
  return {
    inputs: [['x', x]],
    inouts: [],
    outputs: [{ shape, dtype: 'f32', given: givenOut(options, shape, 'f32', x.device) }],
    call: (mode, [xn], _io, [out]) => native().gelu(mode, xn!, GELU_KINDS.indexOf(kind), out!),
  };
}

function siluMulPlan(gate: Tensor, up: Tensor, options?: OutOptions): Plan {
  checkOptions(options);
  anyRank(gate, 'gate', '(any shape)', F32);
  sameShape(up, 'up', gate.shape, '(the shape of gate)', F32);
  const shape = [...gate.shape];
  return {
    inputs: [['gate', gate], ['up', up]],
    inouts: [],
    outputs: [{ shape, dtype: 'f32', given: givenOut(options, shape, 'f32', gate.device) }],
    call: (mode, [g, u], _io, [out]) => native().siluMul(mode, g!, u!, out!),
  };
}

function addPlan(a: Tensor, b: Tensor, options?: OutOptions): Plan {
  checkOptions(options);
  anyRank(a, 'a', '(any shape)', F32);
  anyRank(b, 'b', '(a trailing part of the shape of a)', F32);
  const offset = a.shape.length - b.shape.length;
  if (offset < 0 || b.shape.some((d, i) => d !== a.shape[offset + i])) {
    check.fail('ERR_GRIP_SHAPE', `a trailing part of [${a.shape.join(', ')}] (the shape of a)`, 'b', `[${b.shape.join(', ')}]`);
  }
  const shape = [...a.shape];
  return {
    inputs: [['a', a], ['b', b]],
    inouts: [],
    outputs: [{ shape, dtype: 'f32', given: givenOut(options, shape, 'f32', a.device) }],
    call: (mode, [an, bn], _io, [out]) => native().add(mode, an!, bn!, out!),
  };
}

function softmaxPlan(x: Tensor, options?: SoftmaxOptions): Plan {
  checkOptions(options);
  anyRank(x, 'x', '[..., N]', F32, 1);
  const log = options?.log ?? false;
  if (typeof log !== 'boolean') check.fail('ERR_GRIP_RANGE', 'a boolean', 'options.log', describe(log));
  const shape = [...x.shape];
  return {
    inputs: [['x', x]],
    inouts: [],
    outputs: [{ shape, dtype: 'f32', given: givenOut(options, shape, 'f32', x.device) }],
    call: (mode, [xn], _io, [out]) => native().softmax(mode, xn!, log, out!),
  };
}

function embeddingPlan(table: Tensor, ids: Tensor, options?: OutOptions): Plan {
  checkOptions(options);
  check.tensor(table, 'table', '[V,D]', FLOATS);
  const D = table.shape[1]!;
  anyRank(ids, 'ids', '[...]', I32);
  if (ids.shape.length > 7) check.fail('ERR_GRIP_SHAPE', 'at most 7 dimensions', 'ids', `${ids.shape.length} dimensions`);
  const shape = [...ids.shape, D];
  return {
    inputs: [['table', table], ['ids', ids]],
    inouts: [],
    outputs: [{ shape, dtype: 'f32', given: givenOut(options, shape, 'f32', table.device) }],
    call: (mode, [tn, idn], _io, [out]) => native().embedding(mode, tn!, idn!, out!),
  };
}

/** layerNorm's bias is required (null is refused like any non-Tensor). */
function layerNormBias(bias: Tensor): Tensor {
  check.tensor(bias, 'bias', '[D]', F32);
  return bias;
}

function attentionResult([out, probs]: Tensor[]): AttentionResult {
  return probs ? { out: out!, probs } : { out: out! };
}

// ---- the public ops ----------------------------------------------------------------

type KeepRatio = Tensor | number | ArrayLike<number>;

export const ops = {
  /** scores[B,N] of the budget-aware scorer for x[B,N,D] (f32|f16|bf16), query[B,D], keep ratio per row. */
  async scoreTokens(x: Tensor, query: Tensor, keepRatio: KeepRatio, params: ScorerParams, options?: OutOptions): Promise<Tensor> {
    return (await execute(scorePlan(x, query, keepRatio, params, options), options, true))[0]!;
  },
  scoreTokensSync(x: Tensor, query: Tensor, keepRatio: KeepRatio, params: ScorerParams, options?: OutOptions): Tensor {
    return execute(scorePlan(x, query, keepRatio, params, options), options, false)[0]!;
  },

  /** Gradients of sum(dScores * scores) for every scorer parameter. */
  async scoreTokensBackward(x: Tensor, query: Tensor, keepRatio: KeepRatio, params: ScorerParams, dScores: Tensor, options?: OpOptions): Promise<ScorerParams> {
    return fromOutputs(await execute(scoreBackwardPlan(x, query, keepRatio, params, dScores, options), options, true));
  },
  scoreTokensBackwardSync(x: Tensor, query: Tensor, keepRatio: KeepRatio, params: ScorerParams, dScores: Tensor, options?: OpOptions): ScorerParams {
    return fromOutputs(execute(scoreBackwardPlan(x, query, keepRatio, params, dScores, options), options, false));
  },

  /** The k highest scores per row (k a number, or one per row), indices ascending by position. */
  async topk(scores: Tensor, k: number | ArrayLike<number>, options?: OpOptions): Promise<TopkResult> {
    const [indices, values] = await execute(topkPlan(scores, k, options), options, true);
    return { indices: indices!, values: values! };
  },
  topkSync(scores: Tensor, k: number | ArrayLike<number>, options?: OpOptions): TopkResult {
    const [indices, values] = execute(topkPlan(scores, k, options), options, false);
    return { indices: indices!, values: values! };
  },

  /** G ordered samples of k tokens without replacement from softmax(logits) (Gumbel-top-k), with log-probs. */
  async gumbelTopk(logits: Tensor, k: number, options: { samples: number; seed: number | bigint } & OpOptions): Promise<GumbelTopkResult> {
    const [indices, logProb] = await execute(gumbelPlan(logits, k, options), options, true);
    return { indices: indices!, logProb: logProb! };
  },
  gumbelTopkSync(logits: Tensor, k: number, options: { samples: number; seed: number | bigint } & OpOptions): GumbelTopkResult {
    const [indices, logProb] = execute(gumbelPlan(logits, k, options), options, false);
    return { indices: indices!, logProb: logProb! };
  },

  /** logProb[B,G] of ordered samples indices[B,G,k] under Plackett-Luce(logits). */
  async plackettLuceLogProb(logits: Tensor, indices: Tensor, options?: OpOptions): Promise<Tensor> {
    return (await execute(plLogProbPlan(logits, indices, options), options, true))[0]!;
  },
  plackettLuceLogProbSync(logits: Tensor, indices: Tensor, options?: OpOptions): Tensor {
    return execute(plLogProbPlan(logits, indices, options), options, false)[0]!;
  },

  /** dLogits[B,N] = d(sum dLogProb * logProb) / d logits. */
  async plackettLuceBackward(logits: Tensor, indices: Tensor, dLogProb: Tensor, options?: OpOptions): Promise<Tensor> {
    return (await execute(plBackwardPlan(logits, indices, dLogProb, options), options, true))[0]!;
  },
  plackettLuceBackwardSync(logits: Tensor, indices: Tensor, dLogProb: Tensor, options?: OpOptions): Tensor {
    return execute(plBackwardPlan(logits, indices, dLogProb, options), options, false)[0]!;
  },

  /** out[B,K,D] = x[b, indices[b,k], :]; index -1 gives zeros. */
  async gatherRows(x: Tensor, indices: Tensor, options?: OutOptions): Promise<Tensor> {
    return (await execute(gatherPlan(x, indices, options), options, true))[0]!;
  },
  gatherRowsSync(x: Tensor, indices: Tensor, options?: OutOptions): Tensor {
    return execute(gatherPlan(x, indices, options), options, false)[0]!;
  },

  /** out[B,Hkv,K,Dh] = cache[b, :, keep[b,k], :]; keep strictly ascending per row, then -1 padding (zeros). */
  async compactKV(cache: Tensor, keep: Tensor, options?: OutOptions): Promise<Tensor> {
    return (await execute(compactPlan(cache, keep, options), options, true))[0]!;
  },
  compactKVSync(cache: Tensor, keep: Tensor, options?: OutOptions): Tensor {
    return execute(compactPlan(cache, keep, options), options, false)[0]!;
  },

  /** Compacts cache in place (kept positions moved to the front, in order); returns the new length of each row. */
  async compactKVInPlace(cache: Tensor, keep: Tensor, options?: OpOptions): Promise<Int32Array> {
    const lengths = new Int32Array(cache instanceof Tensor ? (cache.shape[0] ?? 0) : 0);
    await execute(compactInPlacePlan(cache, keep, lengths, options), options, true);
    return lengths;
  },
  compactKVInPlaceSync(cache: Tensor, keep: Tensor, options?: OpOptions): Int32Array {
    const lengths = new Int32Array(cache instanceof Tensor ? (cache.shape[0] ?? 0) : 0);
    execute(compactInPlacePlan(cache, keep, lengths, options), options, false);
    return lengths;
  },

  /** out[M,N] = a[M,K] · b ([K,N], or [N,K] with transB); b f32, f16 or bf16. */
  async matmul(a: Tensor, b: Tensor, options?: MatmulOptions): Promise<Tensor> {
    return (await execute(matmulPlan(a, b, options), options, true))[0]!;
  },
  matmulSync(a: Tensor, b: Tensor, options?: MatmulOptions): Tensor {
    return execute(matmulPlan(a, b, options), options, false)[0]!;
  },

  // ---- transformer ops (f32 activations; "[..., D]" = any rank >= 1, last dim D) ----

  /**
   * out[..., N] = x[..., K] · weight[N,K]ᵀ + bias[N]; weight f32, f16, bf16 or
   * q8_0 (CPU; each row of x quantised per block of 32 too, int8 dots times
   * both scales, as llama.cpp's Q8_0 x Q8_0); bias f32 or null.
   */
  async linear(x: Tensor, weight: Tensor, bias: Tensor | null, options?: OutOptions): Promise<Tensor> {
    return (await execute(linearPlan(x, weight, bias, options), options, true))[0]!;
  },
  linearSync(x: Tensor, weight: Tensor, bias: Tensor | null, options?: OutOptions): Tensor {
    return execute(linearPlan(x, weight, bias, options), options, false)[0]!;
  },

  /** x f32 [N,K] (K % 32 == 0) as q8_0 blocks (ggml's quantize_row_q8_0_ref: d = max|x|/127 as f16, q = round half away from zero of x/d). CPU. */
  async quantizeQ8_0(x: Tensor, options?: OutOptions): Promise<Tensor> {
    return (await execute(quantizePlan(x, options), options, true))[0]!;
  },
  quantizeQ8_0Sync(x: Tensor, options?: OutOptions): Tensor {
    return execute(quantizePlan(x, options), options, false)[0]!;
  },

  /** LayerNorm over the last dim (biased variance, as torch): (x - mean) / sqrt(var + eps) * weight + bias. */
  async layerNorm(x: Tensor, weight: Tensor, bias: Tensor, eps: number, options?: OutOptions): Promise<Tensor> {
    return (await execute(normPlan(x, weight, layerNormBias(bias), eps, options), options, true))[0]!;
  },
  layerNormSync(x: Tensor, weight: Tensor, bias: Tensor, eps: number, options?: OutOptions): Tensor {
    return execute(normPlan(x, weight, layerNormBias(bias), eps, options), options, false)[0]!;
  },

  /** RMSNorm over the last dim (Llama): x / sqrt(mean(x²) + eps) * weight. */
  async rmsNorm(x: Tensor, weight: Tensor, eps: number, options?: OutOptions): Promise<Tensor> {
    return (await execute(normPlan(x, weight, null, eps, options), options, true))[0]!;
  },
  rmsNormSync(x: Tensor, weight: Tensor, eps: number, options?: OutOptions): Tensor {
    return execute(normPlan(x, weight, null, eps, options), options, false)[0]!;
  },

  /** Rotary embedding (Hugging Face Llama, rotate_half) of x[B,T,H,Dh] at positions[B,T] i32; `out: x` works in place. */
  async rope(x: Tensor, positions: Tensor, theta: number, options?: OutOptions): Promise<Tensor> {
    return (await execute(ropePlan(x, positions, theta, options), options, true))[0]!;
  },
  ropeSync(x: Tensor, positions: Tensor, theta: number, options?: OutOptions): Tensor {
    return execute(ropePlan(x, positions, theta, options), options, false)[0]!;
  },

  /** In place: cache[b, h, start[b]+i, :] = src[b, i, h, :] for i < count[b] (cache [B,Hkv,Tmax,Dh] f32|f16|bf16, src [B,T,Hkv,Dh] f32). */
  async cacheWrite(cache: Tensor, src: Tensor, start: ArrayLike<number>, count: ArrayLike<number>, options?: OpOptions): Promise<void> {
    await execute(cacheWritePlan(cache, src, start, count, options), options, true);
  },
  cacheWriteSync(cache: Tensor, src: Tensor, start: ArrayLike<number>, count: ArrayLike<number>, options?: OpOptions): void {
    execute(cacheWritePlan(cache, src, start, count, options), options, false);
  },

  /** Grouped-query attention of q[B,Tq,Hq,Dh] over k, v [B,Hkv,Tk,Dh] (causal by default, ragged qLen/kvLen, optional probabilities of probRows). */
  async attention(q: Tensor, k: Tensor, v: Tensor, options?: AttentionOptions): Promise<AttentionResult> {
    return attentionResult(await execute(attentionPlan(q, k, v, options), options, true));
  },
  attentionSync(q: Tensor, k: Tensor, v: Tensor, options?: AttentionOptions): AttentionResult {
    return attentionResult(execute(attentionPlan(q, k, v, options), options, false));
  },

  /** GELU elementwise: 'erf' (exact), 'tanh' (GPT-2 approximation) or 'quick' (x·sigmoid(1.702x), CLIP); `out: x` works in place. */
  async gelu(x: Tensor, kind: GeluKind, options?: OutOptions): Promise<Tensor> {
    return (await execute(geluPlan(x, kind, options), options, true))[0]!;
  },
  geluSync(x: Tensor, kind: GeluKind, options?: OutOptions): Tensor {
    return execute(geluPlan(x, kind, options), options, false)[0]!;
  },

  /** silu(gate) * up elementwise (Llama MLP). */
  async siluMul(gate: Tensor, up: Tensor, options?: OutOptions): Promise<Tensor> {
    return (await execute(siluMulPlan(gate, up, options), options, true))[0]!;
  },
  siluMulSync(gate: Tensor, up: Tensor, options?: OutOptions): Tensor {
    return execute(siluMulPlan(gate, up, options), options, false)[0]!;
  },

  /** a + b, b's shape equal to a trailing part of a's (broadcast over the leading dims); `out: a` works in place. */
  async add(a: Tensor, b: Tensor, options?: OutOptions): Promise<Tensor> {
    return (await execute(addPlan(a, b, options), options, true))[0]!;
  },
  addSync(a: Tensor, b: Tensor, options?: OutOptions): Tensor {
    return execute(addPlan(a, b, options), options, false)[0]!;
  },

  /** Softmax (or log-softmax with `log: true`) over the last dim. */
  async softmax(x: Tensor, options?: SoftmaxOptions): Promise<Tensor> {
    return (await execute(softmaxPlan(x, options), options, true))[0]!;
  },
  softmaxSync(x: Tensor, options?: SoftmaxOptions): Tensor {
    return execute(softmaxPlan(x, options), options, false)[0]!;
  },

  /** out[..., D] f32 = table[ids[...], :] for table [V,D] f32|f16|bf16 and ids i32 in [0, V). */
  async embedding(table: Tensor, ids: Tensor, options?: OutOptions): Promise<Tensor> {
    return (await execute(embeddingPlan(table, ids, options), options, true))[0]!;
  },
  embeddingSync(table: Tensor, ids: Tensor, options?: OutOptions): Tensor {
    return execute(embeddingPlan(table, ids, options), options, false)[0]!;
  },

  /** One AdamW step in place on param, m and v (PyTorch semantics: decoupled weight decay, bias correction). */
  async adamw(param: Tensor, grad: Tensor, m: Tensor, v: Tensor, adamw: AdamWOptions, options?: OpOptions): Promise<void> {
    await execute(adamwPlan(param, grad, m, v, adamw, options), options, true);
  },
  adamwSync(param: Tensor, grad: Tensor, m: Tensor, v: Tensor, adamw: AdamWOptions, options?: OpOptions): void {
    execute(adamwPlan(param, grad, m, v, adamw, options), options, false);
  },
};

