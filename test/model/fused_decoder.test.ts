// fused_decoder.test.ts — the fused decoder (one native call per layer range,
// fused_decoder.ts / grip_decoder_layers) computes bit for bit what the
// per-op path of runDecoder computes: hidden states, both caches and their
// lengths, after a ragged prefill and decode steps in which some rows sit
// out, over split layer ranges, on Llama (tiny-llava) and Qwen2 (q/k/v
// biases, M-RoPE: an image prompt through the per-op path, then flat decode
// rows through the fused one), with f32, bf16 and q8_0 weights, sync and
// async kernels, and on the CUDA emulator. Then the plan's lifetime: rebuilt
// when a cache tensor is replaced, freed with the cache, refused while a call
// is in flight, and a model loaded with decoder 'ops' or 'fused' generating
// the same tokens.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { ResolvedBackend } from '../../lib/backend.ts';
import { makeExamples, renderScene } from '../../lib/data/shapes/index.ts';
import { familyOf } from '../../lib/model/families.ts';
import { kernels } from '../../lib/model/kernels.ts';
import { KVCache, runDecoder, type MRope } from '../../lib/model/llama.ts';
import type { TextConfig } from '../../lib/model/config.ts';
import { loadVLM } from '../../lib/model/vlm.ts';
import { quantizeDecoder, type TextWeights } from '../../lib/model/weights.ts';
import { native } from '../../lib/native.ts';
import { mulberry32 } from '../../lib/random.ts';
import { FastVPruner } from '../../lib/prune/heuristics/fastv.ts';
import { Tensor } from '../../lib/tensor.ts';
import { expectError } from '../helpers.ts';

const test = suite('fused_decoder');
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const fixture = (name: string) => join(root, 'test', 'fixtures', name);

async function textOf(dir: string, weights: 'f32' | 'bf16' | 'q8_0'): Promise<{ w: TextWeights; config: TextConfig }> {
  const family = await familyOf(dir);
  // Both are stored in bf16; LLaVA converts at load, Qwen2-VL loads as stored only.
  const dtype = family.name === 'qwen_vl' ? 'auto' : weights === 'bf16' ? 'bf16' : 'f32';
  const model = await family.load(dir, { dtype, device: 'cpu', signal: undefined });
  if (weights === 'q8_0') await quantizeDecoder(model.text.weights);
  assert.is(model.text.weights.layers[0]!.gate.weight.dtype, weights, 'the weights under test');
  return { w: model.text.weights, config: model.text.config };
}

interface Step { tokens: number[]; T: number; from?: number; to?: number }

// Prefill rows of 5, 3 and 4 tokens; decode steps where a row sits out (0
// tokens); one step over split layer ranges ([0, 1) then [1, L)).
const STEPS: Step[] = [
  { tokens: [5, 3, 4], T: 5 },
  { tokens: [1, 1, 0], T: 1 },
  { tokens: [1, 0, 1], T: 1, from: 0, to: 1 },
  { tokens: [1, 0, 1], T: 1, from: 1 },
  { tokens: [2, 1, 1], T: 2 },
];

/** Runs STEPS through runDecoder with the given decoder path; returns every step's x and the final caches. */
async function drive(w: TextWeights, config: TextConfig, o: { decoder: 'fused' | 'ops'; mode: 'sync' | 'async'; backend: ResolvedBackend; mrope?: MRope }): Promise<{ xs: Float32Array[]; cache: KVCache }> {
  const B = 3, D = config.hiddenSize, L = config.numLayers;
  const cache = new KVCache(B, 16, config, 'cpu');
  cache.mrope = o.mrope;
  const rng = mulberry32(7);
  const next = new Int32Array(B);
  const xs: Float32Array[] = [];
  const run = { backend: o.backend, k: kernels(o.mode), decoder: o.decoder };
  for (const step of STEPS) {
    const x = new Tensor('f32', [B, step.T, D], Float32Array.from({ length: B * step.T * D }, () => rng() * 2 - 1), 'cpu');
    const positions = new Int32Array(B * step.T);
    for (let b = 0; b < B; b++) for (let t = 0; t < step.T; t++) positions[b * step.T + t] = next[b]! + t;
    const from = step.from ?? 0, to = step.to ?? L;
    await runDecoder(w, config, x, new Tensor('i32', [B, step.T], positions, 'cpu'), Int32Array.from(step.tokens), cache, { from, to }, run);
    if (to === L) step.tokens.forEach((n, b) => { next[b]! += n; });
    xs.push(Float32Array.from(x.host as Float32Array));
  }
  return { xs, cache };
}

function sameBits(a: Float32Array, b: Float32Array, what: string): void {
  assert.is(a.length, b.length, `${what}: length`);
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length), ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < ua.length; i++) {
    if (ua[i] !== ub[i]) assert.unreachable(`${what}: element ${i} differs (${a[i]} fused, ${b[i]} per op)`);
  }
}

async function compare(w: TextWeights, config: TextConfig, o: { mode: 'sync' | 'async'; backend: ResolvedBackend; mrope?: MRope }, what: string): Promise<void> {
  const fused = await drive(w, config, { ...o, decoder: 'fused' });
  const ops = await drive(w, config, { ...o, decoder: 'ops' });
  assert.ok(fused.cache.plan !== undefined, `${what}: the fused path ran`);
  assert.is(ops.cache.plan, undefined, `${what}: the per-op path made no plan`);
  fused.xs.forEach((x, i) => sameBits(x, ops.xs[i]!, `${what}: x after step ${i}`));
  for (let l = 0; l < config.numLayers; l++) {
    sameBits(fused.cache.keys[l]!.host as Float32Array, ops.cache.keys[l]!.host as Float32Array, `${what}: keys of layer ${l}`);
    sameBits(fused.cache.values[l]!.host as Float32Array, ops.cache.values[l]!.host as Float32Array, `${what}: values of layer ${l}`);
    assert.equal([...fused.cache.lengths[l]!], [...ops.cache.lengths[l]!], `${what}: lengths of layer ${l}`);
  }
  fused.cache.dispose();
  ops.cache.dispose();
}

// Qwen2-VL loads in its stored dtype only (bf16 here): no f32 case; the f32 kernels are the same ops as Llama's.
// Llama: the embedded model (hidden 128: q8_0 needs rows of whole 32-blocks, which tiny-llava's 48 are not).
for (const [dir, family, dtypes] of [[join(root, 'models', 'shapes-llava-tiny'), 'llama', ['f32', 'bf16', 'q8_0']], [fixture('tiny-qwen2-vl'), 'qwen2', ['bf16', 'q8_0']]] as const) {
  for (const weights of dtypes) {
    test(`${family} (${dir.split(/[\\/]/).pop()}), ${weights} weights: fused layers give the per-op bits, sync and async`, async () => {
      const { w, config } = await textOf(dir, weights);
      for (const mode of ['sync', 'async'] as const) await compare(w, config, { mode, backend: 'cpu' }, `${family} ${weights} ${mode}`);
    });
  }
}

test('qwen2 with M-RoPE: prompt rows whose 3D ids differ run per op, the flat decode rows fused, the same bits', async () => {
  const { w, config } = await textOf(fixture('tiny-qwen2-vl'), 'bf16');
  // Rows' first 3 indices have 3D ids that differ by axis (an image; the prefill runs per op); later ones are index + delta (the decode steps, fused).
  const P = 3;
  const ids = [0, 1, 2].map((b) => Int32Array.from({ length: 3 * P }, (_, i) => Math.floor(i / P) * (b + 1) + (i % P)));
  const mrope: MRope = { section: [2, 3, 3], ids, delta: [3, -1, 0] }; // config.json's mrope_section
  await compare(w, config, { mode: 'sync', backend: 'cpu', mrope }, 'qwen2 mrope');
});

test('the CUDA emulator runs the fused layers (the same C ABI ops on its device), the per-op bits', async () => {
  const { w, config } = await textOf(fixture('tiny-llava'), 'f32');
  await compare(w, config, { mode: 'async', backend: 'emu' }, 'llama emu');
});

test('the plan: rebuilt when a cache tensor is replaced, freed with the cache, counted in memoryStats', async () => {
  const { w, config } = await textOf(fixture('tiny-llava'), 'f32');
  const before = native().memoryStats();
  const cache = new KVCache(1, 8, config, 'cpu');
  const run = { backend: 'cpu' as const, k: kernels('sync') };
  const x = () => new Tensor('f32', [1, 1, config.hiddenSize], new Float32Array(config.hiddenSize).fill(0.5), 'cpu');
  await runDecoder(w, config, x(), new Tensor('i32', [1, 1], Int32Array.of(0), 'cpu'), Int32Array.of(1), cache, { from: 0, to: config.numLayers }, run);
  const first = cache.plan!;
  assert.is(native().memoryStats().decoderPlans, before.decoderPlans + 1);
  assert.ok(native().memoryStats().decoderWorkspaceBytes > before.decoderWorkspaceBytes);
  await runDecoder(w, config, x(), new Tensor('i32', [1, 1], Int32Array.of(1), 'cpu'), Int32Array.of(1), cache, { from: 0, to: config.numLayers }, run);
  assert.is(cache.plan, first, 'the same cache: the same plan');
  cache.keys[0] = new Tensor('f32', [...cache.keys[0]!.shape], Float32Array.from(cache.keys[0]!.host as Float32Array), 'cpu');
  await runDecoder(w, config, x(), new Tensor('i32', [1, 1], Int32Array.of(2), 'cpu'), Int32Array.of(1), cache, { from: 0, to: config.numLayers }, run);
  assert.ok(cache.plan !== first, 'a replaced cache tensor: a new plan');
  assert.is(cache.lengths[0]![0], 3);
  cache.dispose();
  assert.is(cache.plan, undefined);
  const after = native().memoryStats();
  assert.is(after.decoderWorkspaceBytes, before.decoderWorkspaceBytes, 'workspaces freed with the cache');
});

test('a prefill-sized workspace (over 16 MiB) is not kept between calls; a decode step\'s is', async () => {
  const { w, config } = await textOf(join(root, 'models', 'shapes-llava-tiny'), 'f32');
  const D = config.hiddenSize, L = config.numLayers, T = 3000;
  const before = native().memoryStats().decoderWorkspaceBytes;
  const cache = new KVCache(1, T + 1, config, 'cpu');
  const run = { backend: 'cpu' as const, k: kernels('async') };
  const x = new Tensor('f32', [1, T, D], new Float32Array(T * D).fill(0.01), 'cpu');
  await runDecoder(w, config, x, new Tensor('i32', [1, T], Int32Array.from({ length: T }, (_, i) => i), 'cpu'), Int32Array.of(T), cache, { from: 0, to: L }, run);
  assert.is(native().memoryStats().decoderWorkspaceBytes, before, `${T} rows: given back after the call`);
  await runDecoder(w, config, new Tensor('f32', [1, 1, D], new Float32Array(D), 'cpu'), new Tensor('i32', [1, 1], Int32Array.of(T), 'cpu'), Int32Array.of(1), cache, { from: 0, to: L }, run);
  assert.ok(native().memoryStats().decoderWorkspaceBytes > before, 'one row: kept for the next step');
  cache.dispose();
  assert.is(native().memoryStats().decoderWorkspaceBytes, before);
});

test('the plan refuses a second call while one is in flight, and calls after it is freed', async () => {
  const { w, config } = await textOf(join(root, 'models', 'shapes-llava-tiny'), 'f32');
  const D = config.hiddenSize, L = config.numLayers, T = 1024;
  const cache = new KVCache(1, T, config, 'cpu');
  const run = { backend: 'cpu' as const, k: kernels('async') };
  const xt = (t: number) => new Tensor('f32', [1, t, D], new Float32Array(t * D).fill(0.25), 'cpu');
  await runDecoder(w, config, xt(1), new Tensor('i32', [1, 1], Int32Array.of(0), 'cpu'), Int32Array.of(1), cache, { from: 0, to: L }, run);
  const handle = (cache.plan as unknown as { handle: object }).handle;
  // A prefill of T - 1 tokens: long enough (milliseconds) that the next call comes while it runs.
  const x = xt(T - 1), positions = new Tensor('i32', [1, T - 1], Int32Array.from({ length: T - 1 }, (_, i) => i + 1), 'cpu');
  const pending = native().decoderRun(4, handle, x, positions, Int32Array.of(T - 1), new Int32Array(L).fill(1), 0, L);
  await expectError(() => native().decoderRun(4, handle, x, positions, Int32Array.of(T - 1), new Int32Array(L).fill(1), 0, L), 'ERR_GRIP_RANGE',
    'expected a decoder plan not in use for plan but received one with a call in flight');
  await pending;
  cache.dispose();
  await expectError(() => native().decoderRun(0, handle, x, positions, Int32Array.of(T - 1), new Int32Array(L), 0, L), 'ERR_GRIP_RANGE',
    'expected a live decoder plan for plan but received a freed one');
});

test("loadVLM decoder 'ops' and 'fused' (default) generate the same tokens; a bad value is refused", async () => {
  const dir = join(root, 'models', 'shapes-llava-tiny');
  const fused = await loadVLM(dir, { backend: 'cpu' });
  const ops = await loadVLM(dir, { backend: 'cpu', decoder: 'ops' });
  const examples = makeExamples('test', 4);
  // FastV at layer 2 (a probe: the per-op path for that layer), each keep ratio, caches kept and compacted.
  const pruner = new FastVPruner({ layer: 2 });
  for (const cachePolicy of ['keep', 'compact'] as const) {
    const requests = await Promise.all(examples.map(async (ex, i) => ({ image: await renderScene(ex.scene), prompt: ex.question, maxNewTokens: 6, stopAtEos: false, pruner, keepRatio: [1, 0.5, 0.25, 0.11][i]!, cachePolicy })));
    const a = await fused.generateBatch(requests);
    const b = await ops.generateBatch(requests);
    assert.equal(a.map((r) => [...r.tokenIds]), b.map((r) => [...r.tokenIds]), cachePolicy);
  }
  await expectError(() => loadVLM(dir, { decoder: 'native' as never }), 'ERR_GRIP_RANGE', "expected one of 'fused', 'ops' for options.decoder but received the string \"native\"");
});

test.run();
