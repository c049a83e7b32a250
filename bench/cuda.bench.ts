// cuda.bench.ts — the CUDA twin of each op against its CPU twin, in the same
// process, at LLaVA-1.5-7B shapes (N=576 visual tokens, D=4096, 32 heads x 128,
// a 611-token prefill = 576 visual + 35 text tokens, decode over 1000 cached
// keys, MLP width 11008; scorer H=256, R=64, K=144 kept).
//
// Per row: the op on device-resident tensors (inputs made on the host and
// copied with toDevice() once; results into preallocated device tensors via
// { out } where the op has it) and the same op on host tensors with
// { backend: 'cpu' }; the median time per call of each, the speed-up
// (CPU / CUDA), an effective throughput, and a correctness spot-check: the
// CUDA result against the CPU result (normalised error max|a-b| / max(1,
// max|cpu|) for floats; selections, indices and copies must be identical).
// Any check over its tolerance makes the run exit 1.
//
// GPU timing and synchronisation: every grip CUDA op is synchronous. Each
// kernel launch in cuda/*.cuh goes through grip_dev_check_launch
// (cuda/common.cuh), which calls cudaDeviceSynchronize, and the xSync API runs
// the op on the calling thread (native/napi/addon.cc Run() without mode bit
// 4), so a call returns only after its kernels have finished. In addition each
// timed sample (a batch of `inner` calls) ends with a 4-byte device-to-host
// cudaMemcpy of a fence tensor, which blocks until all earlier work on the
// (legacy) default stream is done, so the figures stay right should the ops
// ever become asynchronous. The GPU time therefore includes the per-call
// host work (argument checks in lib/, the N-API call) and, for ops that
// allocate scratch, their cudaMalloc/cudaFree: it is what a caller of the API
// pays. Ops without an `out` option (marked †) also allocate their outputs
// on each call (cudaMalloc + a zero fill copied from the host); the loop frees
// them after the sample's clock stops.
//
// Usage: node --import tsx bench/cuda.bench.ts [--quick] [--only WORD] [--emu]
//   --quick  fewer repetitions (about 0.2 s per op on the GPU, 1 CPU run)
//   --only   rows whose op name contains WORD
//   --emu    no GPU needed: the "CUDA" side runs the same .cu kernels on grip's
//            SIMT emulator on the CPU, at tiny shapes: it tests this script, its
//            timings mean nothing.
import { spawnSync } from 'node:child_process';
import { GripError, info, ops, scorerShapes, tensor, zeros, type DType, type ScorerParamName, type ScorerParams, type Tensor } from '../lib/index.ts';
import { normErr } from '../test/helpers.ts';

const argv = process.argv.slice(2);
const quick = argv.includes('--quick');
const emu = argv.includes('--emu');
const onlyAt = argv.indexOf('--only');
const only = onlyAt >= 0 ? argv[onlyAt + 1]?.toLowerCase() : undefined;

const started = performance.now();
const i = info();
console.log(`grip-vlm ${i.version} · cuda ${JSON.stringify(i.cuda)} · node ${process.version} · cpu simd ${i.simd}, ${i.threads} threads`);
if (!emu && i.backend !== 'cuda') {
  const why = i.cuda.compiled ? 'this build has CUDA but no device is visible' : 'this build has no CUDA';
  console.log(`No CUDA device visible (info().backend is '${i.backend}': ${why}): nothing to benchmark, exiting. (--emu tests this script on the SIMT emulator.)`);
  process.exit(0);
}
if (emu) {
  console.log('--emu: the CUDA column is the SIMT emulator running the CUDA kernels on the CPU, at tiny shapes; this checks the script, not the GPU.');
} else {
  const smi = spawnSync('nvidia-smi', ['--query-gpu=name,driver_version,memory.total', '--format=csv,noheader'], { encoding: 'utf8' });
  if (smi.status === 0 && smi.stdout.trim()) console.log(`device: ${smi.stdout.trim().split('\n')[0]}`);
}

// ---- tolerances (normalised error, see the header) -----------------------------------
/** f32 float ops: the twins differ only in summation order (K up to 4096 terms). */
const F32_TOL = 1e-3;
/** bf16 inputs: both twins widen exactly, but bf16 rows are held to a looser bound. */
const BF16_TOL = 1e-2;
/** Selections, indices, bit copies: identical. */
const EXACT = 0;

// ---- repetitions --------------------------------------------------------------------------
const GPU_BUDGET_S = emu ? 0.05 : quick ? 0.2 : 1.0; // timed seconds per op on the GPU side (plus warm-up)
const CPU_BUDGET_S = emu ? 0.05 : quick ? 0.05 : 0.4; // the CPU side: small, it is slow at these shapes
const GPU_MIN_SAMPLES = quick || emu ? 3 : 10;
const CPU_MIN_SAMPLES = quick ? 1 : 3;
const MAX_SAMPLES = 200;
/** A GPU sample batches calls up to this long, so the fence and the clock read are amortised. */
const GPU_SAMPLE_MS = 2;
const CPU_SAMPLE_MS = 5;

// ---- data -----------------------------------------------------------------------------------
let seed = 1;
/** n uniform values in [-scale, scale) from a seeded LCG (fast enough for 75M values). */
function floats(n: number, scale = 1): Float32Array {
  const out = new Float32Array(n);
  for (let j = 0; j < n; j++) {
    seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
    out[j] = (seed / 4294967296 * 2 - 1) * scale;
  }
  return out;
}

const CPU = { backend: 'cpu' } as const;
/** Options of the "CUDA" side: device tensors pick CUDA themselves; --emu names the emulator. */
const GPU = emu ? ({ backend: 'emu' } as const) : {};

/** Device tensors of the current case, disposed when it is done. */
let live: Tensor[] = [];
/** The device copy of a host tensor (--emu: the host tensor itself). */
function dev(t: Tensor): Tensor {
  if (emu) return t;
  const d = t.toDevice();
  live.push(d);
  return d;
}
/** A preallocated result tensor on the GPU side. */
function devZeros(shape: number[], dtype: DType = 'f32'): Tensor {
  if (emu) return zeros(shape, dtype);
  const d = zeros(shape, dtype, 'cuda');
  live.push(d);
  return d;
}

/** The fence: a 4-byte device-to-host copy waits for all earlier work on the default stream. */
const fence = emu ? null : zeros([1], 'f32', 'cuda');
const barrier = (): void => {
  fence?.toHost();
};

function scorer(D: number, H: number, R: number): ScorerParams {
  const shapes = scorerShapes(D, H, R);
  const values = (name: ScorerParamName, scale: number) => floats(shapes[name].shape.reduce((a, b) => a * b, 1), scale);
  const param = (name: ScorerParamName, scale: number) => tensor(values(name, scale), shapes[name].shape);
  return {
    lnWeight: tensor(values('lnWeight', 0.5).map((v) => 1 + v), shapes.lnWeight.shape), lnBias: param('lnBias', 0.3),
    w1: param('w1', 1 / Math.sqrt(D)), b1: param('b1', 0.3), filmW: param('filmW', 0.2), filmB: param('filmB', 0.2),
    w2: param('w2', 1 / Math.sqrt(H)), b2: tensor([0.5], shapes.b2.shape), wq: param('wq', 1 / Math.sqrt(D)), wk: param('wk', 1 / Math.sqrt(D)),
  };
}
const devParams = (p: ScorerParams): ScorerParams =>
  Object.fromEntries(Object.entries(p).map(([k, t]) => [k, dev(t as Tensor)])) as unknown as ScorerParams;

// ---- shapes ---------------------------------------------------------------------------------
// Full: LLaVA-1.5-7B. --emu: tiny (the emulator runs each CUDA thread as a fiber).
const S = emu
  ? { M: 16, D: 32, Dout: 24, T: 12, N: 24, H: 8, R: 4, Bs: [1, 3], K: 6, G: 4, Hq: 4, Dh: 16, Tk: 40, F: 48, Tc: 20, Kc: 7 }
  : { M: 576, D: 4096, Dout: 4096, T: 611, N: 576, H: 256, R: 64, Bs: [1, 32], K: 144, G: 8, Hq: 32, Dh: 128, Tk: 1000, F: 11008, Tc: 611, Kc: 179 };

// ---- the cases ------------------------------------------------------------------------------
interface Case {
  op: string;
  shape: string;
  /** Work per call, for the throughput columns (GFLOP/s when flop is given, else GB/s). */
  work: { flop?: number; bytes?: number };
  /** Tolerance of each output, in the order cpu() and gpu() return them. */
  tols: number[];
  /** No `out` option: each GPU call allocates its outputs (timed), freed after the sample. */
  allocates?: boolean;
  cpu: () => Tensor[];
  gpu: () => Tensor[];
}

const cases: [string, () => Case][] = [];
const add = (op: string, setup: () => Case) => cases.push([op, setup]);

// matmul: a [M,K] f32 x b [K,N], f32 and bf16 weights.
for (const dtype of ['f32', 'bf16'] as const) {
  add(`matmul (${dtype} b)`, () => {
    const { M, D: K, Dout: N } = S;
    const a = tensor(floats(M * K), [M, K]);
    const b = tensor(floats(K * N, 1 / Math.sqrt(K)), [K, N], dtype);
    const [ad, bd] = [dev(a), dev(b)];
    const out = zeros([M, N]), outd = devZeros([M, N]);
    return {
      op: `matmul (${dtype} b)`, shape: `${M}x${N}x${K}`, work: { flop: 2 * M * N * K }, tols: [dtype === 'f32' ? F32_TOL : BF16_TOL],
      cpu: () => [ops.matmulSync(a, b, { ...CPU, out })],
      gpu: () => [ops.matmulSync(ad, bd, { ...GPU, out: outd })],
    };
  });
}

// linear: a Llama projection, bf16 weight [N,K] and an f32 bias, over the 611-token prefill.
add('linear (bf16 W, bias)', () => {
  const { T, D: K, Dout: N } = S;
  const x = tensor(floats(T * K), [T, K]);
  const w = tensor(floats(N * K, 1 / Math.sqrt(K)), [N, K], 'bf16');
  const bias = tensor(floats(N, 0.1), [N]);
  const [xd, wd, bd] = [dev(x), dev(w), dev(bias)];
  const out = zeros([T, N]), outd = devZeros([T, N]);
  return {
    op: 'linear (bf16 W, bias)', shape: `${T}x${N}x${K}`, work: { flop: 2 * T * N * K }, tols: [BF16_TOL],
    cpu: () => [ops.linearSync(x, w, bias, { ...CPU, out })],
    gpu: () => [ops.linearSync(xd, wd, bd, { ...GPU, out: outd })],
  };
});

// scoreTokens: B=1 and B=32 (f32 x), and B=1 with bf16 x.
for (const [B, dtype] of [[S.Bs[0]!, 'f32'], [S.Bs[1]!, 'f32'], [S.Bs[0]!, 'bf16']] as const) {
  add(`scoreTokens (${dtype} x)`, () => {
    const { N, D, H, R } = S;
    const p = scorer(D, H, R), pd = devParams(p);
    const x = tensor(floats(B * N * D), [B, N, D], dtype);
    const q = tensor(floats(B * D), [B, D]);
    // A keep-ratio tensor (a plain number would be copied to the device on every call).
    const ratio = tensor(new Float32Array(B).fill(0.25), [B]);
    const [xd, qd, rd] = [dev(x), dev(q), dev(ratio)];
    const out = zeros([B, N]), outd = devZeros([B, N]);
    return {
      op: `scoreTokens (${dtype} x)`, shape: `B=${B} N=${N} D=${D} H=${H} R=${R}`, work: { flop: 2 * B * N * D * H },
      tols: [dtype === 'f32' ? F32_TOL : BF16_TOL],
      cpu: () => [ops.scoreTokensSync(x, q, ratio, p, { ...CPU, out })],
      gpu: () => [ops.scoreTokensSync(xd, qd, rd, pd, { ...GPU, out: outd })],
    };
  });
}

// topk (no `out`): indices and values must be identical.
for (const B of S.Bs) {
  add('topk', () => {
    const { N, K } = S;
    const scores = tensor(floats(B * N), [B, N]);
    const sd = dev(scores);
    return {
      op: 'topk †', shape: `B=${B} N=${N} k=${K}`, work: { bytes: B * N * 4 }, tols: [EXACT, EXACT], allocates: true,
      cpu: () => { const r = ops.topkSync(scores, K, CPU); return [r.indices, r.values]; },
      gpu: () => { const r = ops.topkSync(sd, K, GPU); return [r.indices, r.values]; },
    };
  });
}

// Gumbel-top-k and the Plackett-Luce log-prob and its backward (no `out`): G samples of k of N.
{
  const sampling = () => {
    const { N, K, G } = S;
    const logits = tensor(floats(N, 3), [1, N]);
    const sample = ops.gumbelTopkSync(logits, K, { samples: G, seed: 7, ...CPU });
    const dLogProb = tensor(floats(G), [1, G]);
    return { N, K, G, logits, indices: sample.indices, dLogProb, ld: dev(logits), id: dev(sample.indices), dd: dev(dLogProb) };
  };
  add('gumbelTopk', () => {
    const { N, K, G, logits, ld } = sampling();
    return {
      op: 'gumbelTopk †', shape: `B=1 G=${G} N=${N} k=${K}`, work: {}, tols: [EXACT, F32_TOL], allocates: true,
      cpu: () => { const r = ops.gumbelTopkSync(logits, K, { samples: G, seed: 7, ...CPU }); return [r.indices, r.logProb]; },
      gpu: () => { const r = ops.gumbelTopkSync(ld, K, { samples: G, seed: 7, ...GPU }); return [r.indices, r.logProb]; },
    };
  });
  add('plackettLuceLogProb', () => {
    const { N, K, G, logits, indices, ld, id } = sampling();
    return {
      op: 'plackettLuceLogProb †', shape: `B=1 G=${G} N=${N} k=${K}`, work: {}, tols: [F32_TOL], allocates: true,
      cpu: () => [ops.plackettLuceLogProbSync(logits, indices, CPU)],
      gpu: () => [ops.plackettLuceLogProbSync(ld, id, GPU)],
    };
  });
  add('plackettLuceBackward', () => {
    const { N, K, G, logits, indices, dLogProb, ld, id, dd } = sampling();
    return {
      op: 'plackettLuceBackward †', shape: `B=1 G=${G} N=${N} k=${K}`, work: {}, tols: [F32_TOL], allocates: true,
      cpu: () => [ops.plackettLuceBackwardSync(logits, indices, dLogProb, CPU)],
      gpu: () => [ops.plackettLuceBackwardSync(ld, id, dd, GPU)],
    };
  });
}

// gatherRows: the K kept visual tokens out of [1,N,D] (bit copies).
for (const dtype of ['f32', 'bf16'] as const) {
  add(`gatherRows (${dtype})`, () => {
    const { N, D, K } = S;
    const x = tensor(floats(N * D), [1, N, D], dtype);
    const keep = ops.topkSync(tensor(floats(N), [1, N]), K, CPU).indices;
    const [xd, kd] = [dev(x), dev(keep)];
    const out = zeros([1, K, D], dtype), outd = devZeros([1, K, D], dtype);
    const bytes = K * D * (dtype === 'f32' ? 4 : 2);
    return {
      op: `gatherRows (${dtype})`, shape: `B=1 N=${N} D=${D} K=${K}`, work: { bytes: 2 * bytes }, tols: [EXACT],
      cpu: () => [ops.gatherRowsSync(x, keep, { ...CPU, out })],
      gpu: () => [ops.gatherRowsSync(xd, kd, { ...GPU, out: outd })],
    };
  });
}

// compactKV: an f16 KV cache of the prefill, keeping 144 visual + 35 text positions (bit copies).
add('compactKV (f16)', () => {
  const { Hq: Hkv, Tc: T, Dh, Kc: K } = S;
  const keep = tensor(Int32Array.from({ length: K }, (_, j) => Math.floor((j * T) / K)), [1, K]);
  const cache = tensor(floats(Hkv * T * Dh), [1, Hkv, T, Dh], 'f16');
  const [cd, kd] = [dev(cache), dev(keep)];
  const out = zeros([1, Hkv, K, Dh], 'f16'), outd = devZeros([1, Hkv, K, Dh], 'f16');
  return {
    op: 'compactKV (f16)', shape: `B=1 Hkv=${Hkv} T=${T} Dh=${Dh} K=${K}`, work: { bytes: 2 * Hkv * K * Dh * 2 }, tols: [EXACT],
    cpu: () => [ops.compactKVSync(cache, keep, { ...CPU, out })],
    gpu: () => [ops.compactKVSync(cd, kd, { ...GPU, out: outd })],
  };
});

// attention: causal prefill of the 611-token prompt, and one decode step over 1000 cached keys.
add('attention prefill', () => {
  const { T, Hq, Dh } = S;
  const q = tensor(floats(T * Hq * Dh), [1, T, Hq, Dh]);
  const k = tensor(floats(Hq * T * Dh), [1, Hq, T, Dh]);
  const v = tensor(floats(Hq * T * Dh), [1, Hq, T, Dh]);
  const [qd, kd, vd] = [dev(q), dev(k), dev(v)];
  const out = zeros([1, T, Hq, Dh]), outd = devZeros([1, T, Hq, Dh]);
  return {
    op: 'attention prefill (causal)', shape: `Tq=Tk=${T} H=${Hq} Dh=${Dh}`, work: { flop: (4 * Hq * Dh * T * (T + 1)) / 2 }, tols: [F32_TOL],
    cpu: () => [ops.attentionSync(q, k, v, { ...CPU, out }).out],
    gpu: () => [ops.attentionSync(qd, kd, vd, { ...GPU, out: outd }).out],
  };
});
add('attention decode', () => {
  const { Tk, Hq, Dh } = S;
  const q = tensor(floats(Hq * Dh), [1, 1, Hq, Dh]);
  const k = tensor(floats(Hq * Tk * Dh), [1, Hq, Tk, Dh]);
  const v = tensor(floats(Hq * Tk * Dh), [1, Hq, Tk, Dh]);
  const [qd, kd, vd] = [dev(q), dev(k), dev(v)];
  const out = zeros([1, 1, Hq, Dh]), outd = devZeros([1, 1, Hq, Dh]);
  return {
    // Memory-bound: K and V read once.
    op: 'attention decode', shape: `Tq=1 Tk=${Tk} H=${Hq} Dh=${Dh}`, work: { bytes: 2 * Hq * Tk * Dh * 4 }, tols: [F32_TOL],
    cpu: () => [ops.attentionSync(q, k, v, { ...CPU, out }).out],
    gpu: () => [ops.attentionSync(qd, kd, vd, { ...GPU, out: outd }).out],
  };
});

add('rmsNorm', () => {
  const { T, D } = S;
  const x = tensor(floats(T * D, 3), [T, D]);
  const w = tensor(floats(D), [D]);
  const [xd, wd] = [dev(x), dev(w)];
  const out = zeros([T, D]), outd = devZeros([T, D]);
  return {
    op: 'rmsNorm', shape: `${T}x${D}`, work: { bytes: 2 * T * D * 4 }, tols: [F32_TOL],
    cpu: () => [ops.rmsNormSync(x, w, 1e-6, { ...CPU, out })],
    gpu: () => [ops.rmsNormSync(xd, wd, 1e-6, { ...GPU, out: outd })],
  };
});

add('siluMul', () => {
  const { T, F } = S;
  const gate = tensor(floats(T * F, 4), [T, F]);
  const up = tensor(floats(T * F), [T, F]);
  const [gd, ud] = [dev(gate), dev(up)];
  const out = zeros([T, F]), outd = devZeros([T, F]);
  return {
    op: 'siluMul', shape: `${T}x${F}`, work: { bytes: 3 * T * F * 4 }, tols: [F32_TOL],
    cpu: () => [ops.siluMulSync(gate, up, { ...CPU, out })],
    gpu: () => [ops.siluMulSync(gd, ud, { ...GPU, out: outd })],
  };
});

// ---- checking -------------------------------------------------------------------------------

/** Index of the first differing stored element (bit patterns for f16/bf16), or -1. */
function firstDiff(a: Tensor, b: Tensor): number {
  const x = a.toHost().host, y = b.toHost().host;
  if (x.length !== y.length) return 0;
  for (let j = 0; j < x.length; j++) if (!Object.is(x[j], y[j])) return j;
  return -1;
}

interface Verdict { err: number; tol: number; ok: boolean; text: string }

/** The worst output's verdict: the largest error relative to its tolerance (a mismatch of an exact output is the worst). */
function compare(cpu: Tensor[], gpu: Tensor[], tols: number[]): Verdict {
  let worst: Verdict = { err: 0, tol: 0, ok: true, text: 'identical' };
  let worstScore = -1;
  tols.forEach((tol, o) => {
    let v: Verdict;
    if (tol === EXACT) {
      const at = firstDiff(gpu[o]!, cpu[o]!);
      v = at < 0 ? { err: 0, tol, ok: true, text: 'identical' } : { err: Infinity, tol, ok: false, text: `output ${o} differs at [${at}]` };
    } else {
      const err = normErr(gpu[o]!.toFloat32(), cpu[o]!.toFloat32());
      v = { err, tol, ok: err <= tol, text: `${err.toExponential(1)} (tol ${tol})` };
    }
    const score = v.ok ? (tol === EXACT ? 0 : v.err / tol) : Number.isNaN(v.err) ? Infinity : v.err / (tol || Number.MIN_VALUE);
    if (score > worstScore) [worst, worstScore] = [v, score];
  });
  return worst;
}

// ---- timing ---------------------------------------------------------------------------------

interface Timing { ms: number; samples: number; calls: number }

/**
 * Median milliseconds per call: one estimate call, then samples of `inner`
 * calls (batched up to sampleMs, each sample ended by the barrier) until the
 * budget is spent and minSamples are taken. free() drops a sample's outputs
 * after its clock stops.
 */
function time(run: () => Tensor[], side: 'cpu' | 'gpu', free: (outputs: Tensor[]) => void): Timing {
  const gpu = side === 'gpu';
  const sync = gpu ? barrier : () => {};
  const budgetMs = 1000 * (gpu ? GPU_BUDGET_S : CPU_BUDGET_S);
  const minSamples = gpu ? GPU_MIN_SAMPLES : CPU_MIN_SAMPLES;
  let t = performance.now();
  free(run());
  sync();
  const estimate = Math.max(performance.now() - t, 1e-4);
  const inner = Math.max(1, Math.floor((gpu ? GPU_SAMPLE_MS : CPU_SAMPLE_MS) / estimate));
  // A call far slower than expected gets 3 samples, not minSamples, so the run stays bounded.
  const wanted = estimate * minSamples > 3 * budgetMs ? Math.min(minSamples, 3) : minSamples;
  const perCall: number[] = [];
  const start = performance.now();
  while (perCall.length < wanted || (performance.now() - start < budgetMs && perCall.length < MAX_SAMPLES)) {
    const outputs: Tensor[] = [];
    t = performance.now();
    for (let j = 0; j < inner; j++) outputs.push(...run());
    sync();
    perCall.push((performance.now() - t) / inner);
    free(outputs);
  }
  perCall.sort((a, b) => a - b);
  const mid = perCall.length >> 1;
  const ms = perCall.length % 2 ? perCall[mid]! : (perCall[mid - 1]! + perCall[mid]!) / 2;
  return { ms, samples: perCall.length, calls: perCall.length * inner };
}

/** 3 significant digits, without exponent notation down to 0.001. */
const fmt3 = (v: number) => (v >= 100 ? v.toFixed(0) : v >= 0.001 ? v.toPrecision(3) : v.toExponential(2));
const fmtRatio = (r: number) => (r >= 10 ? r.toFixed(0) : r >= 1 ? r.toFixed(1) : r.toPrecision(2));
function fmtWork(work: Case['work'], ms: number): string {
  if (work.flop) return `${fmt3(work.flop / ms / 1e6)} GFLOP/s`;
  if (work.bytes) return `${fmt3(work.bytes / ms / 1e6)} GB/s`;
  return '';
}

// ---- the run ----------------------------------------------------------------------------------

console.log(`\n### CUDA vs CPU (${emu ? 'SIMT emulator, tiny shapes' : 'LLaVA-1.5-7B shapes'}${quick ? ', --quick' : ''})\n`);
const GPU_NAME = emu ? 'emu' : 'CUDA';
console.log(`| op | shape | CPU ms | ${GPU_NAME} ms | speed-up (CPU/${GPU_NAME}) | CPU throughput | ${GPU_NAME} throughput | ${GPU_NAME} vs CPU (max norm. error) | calls CPU / ${GPU_NAME} |`);
console.log('|---|---|---|---|---|---|---|---|---|');
const failures: string[] = [];
const skipped: string[] = [];
for (const [name, setup] of cases) {
  if (only !== undefined && !name.toLowerCase().includes(only)) continue;
  live = [];
  let c: Case | undefined;
  try {
    c = setup();
    // Warm-up runs, whose outputs are the spot-check (copied to the host before the timed runs reuse `out`).
    const cpuOut = c.cpu().map((t) => tensor(t.host.slice(), [...t.shape], t.dtype));
    const gpuRaw = c.gpu();
    const gpuOut = gpuRaw.map((t) => t.toHost());
    if (c.allocates && !emu) gpuRaw.forEach((t) => t.dispose());
    const verdict = compare(cpuOut, gpuOut, c.tols);
    if (!verdict.ok) failures.push(`${c.op} ${c.shape}: ${verdict.text}`);
    const freeGpu = c.allocates && !emu ? (ts: Tensor[]) => ts.forEach((t) => t.dispose()) : () => {};
    const g = time(c.gpu, 'gpu', freeGpu);
    const cp = time(c.cpu, 'cpu', () => {});
    console.log(`| ${c.op} | ${c.shape} | ${fmt3(cp.ms)} | ${fmt3(g.ms)} | ${fmtRatio(cp.ms / g.ms)}x | ${fmtWork(c.work, cp.ms)} | ${fmtWork(c.work, g.ms)} | ${verdict.ok ? '' : 'FAIL '}${verdict.text} | ${cp.calls} / ${g.calls} |`);
  } catch (error) {
    if (error instanceof GripError && error.code === 'ERR_GRIP_UNSUPPORTED') {
      skipped.push(`${name}: ${error.message}`);
      console.log(`| ${name} | ${c?.shape ?? ''} | | | | | | skipped: no CUDA path (${error.message}) | |`);
    } else {
      failures.push(`${name}: ${error instanceof Error ? error.message : String(error)}`);
      console.log(`| ${name} | ${c?.shape ?? ''} | | | | | | FAIL: ${error instanceof Error ? error.message : String(error)} | |`);
    }
  } finally {
    for (const t of live) t.dispose();
    live = [];
  }
}

console.log(`\n† no \`out\` option: each ${GPU_NAME} call also allocates its outputs${emu ? '' : ' (cudaMalloc + a zero fill from the host)'}, inside the timing.`);
console.log(emu
  ? `emu ms: median per call of the SIMT emulator (synchronous, no fence). CPU: { backend: 'cpu' }, ${i.threads} threads.`
  : `CUDA ms: median per call over samples of batched calls, each sample ended by a device-to-host fence copy; the ops themselves end with cudaDeviceSynchronize. CPU: { backend: 'cpu' }, ${i.threads} threads.`);
if (skipped.length) console.log(`skipped (no CUDA path): ${skipped.join('; ')}`);
console.log(`total ${((performance.now() - started) / 1000).toFixed(1)} s`);
fence?.dispose();
if (failures.length) {
  console.log(`\nFAILED ${failures.length} check${failures.length > 1 ? 's' : ''}:\n  ${failures.join('\n  ')}`);
  process.exit(1);
}
console.log(`all ${GPU_NAME} results match the CPU within tolerance`);
