// last_rows.test.ts — runDecoder's `outputs: 'last'` (the end of a prefill
// whose next step reads only each row's last token): every layer's K and V
// and the cache lengths are bit for bit those of `outputs: 'all'`, the last
// row of each batch row matches to rounding (its products take the GEMV),
// the other rows keep the last layer's input, the fused and per-op paths
// agree bit for bit, and a decode step after either prefill gives the same
// hidden states to rounding. Llama (f32, q8_0) and Qwen2 (q/k/v biases, bf16).
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { familyOf } from '../../lib/model/families.ts';
import { kernels } from '../../lib/model/kernels.ts';
import { KVCache, runDecoder } from '../../lib/model/llama.ts';
import type { TextConfig } from '../../lib/model/config.ts';
import { quantizeDecoder, type TextWeights } from '../../lib/model/weights.ts';
import { mulberry32 } from '../../lib/random.ts';
import { Tensor } from '../../lib/tensor.ts';

const test = suite('runDecoder outputs last');
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

async function textOf(dir: string, weights: 'f32' | 'q8_0' | 'stored'): Promise<{ w: TextWeights; config: TextConfig }> {
  const family = await familyOf(dir);
  const model = await family.load(dir, { dtype: weights === 'stored' ? 'auto' : 'f32', device: 'cpu', signal: undefined });
  if (weights === 'q8_0') await quantizeDecoder(model.text.weights);
  return { w: model.text.weights, config: model.text.config };
}

const B = 3, T = 6, TOKENS = [6, 2, 4];

interface Run { x: Float32Array; cache: KVCache; decoded: Float32Array }

/** A ragged prefill of TOKENS through layers [from, L) (layers before `from` run with 'all' first), then one decode step. */
async function prefill(w: TextWeights, config: TextConfig, outputs: 'all' | 'last', decoder: 'fused' | 'ops', from = 0): Promise<Run> {
  const D = config.hiddenSize, L = config.numLayers;
  const rng = mulberry32(3);
  const cache = new KVCache(B, 16, config, 'cpu');
  const run = { backend: 'cpu' as const, k: kernels('async'), decoder };
  const x = new Tensor('f32', [B, T, D], Float32Array.from({ length: B * T * D }, () => rng() * 2 - 1), 'cpu');
  const positions = new Tensor('i32', [B, T], Int32Array.from({ length: B * T }, (_, i) => i % T), 'cpu');
  const tokens = Int32Array.from(TOKENS);
  if (from > 0) await runDecoder(w, config, x, positions, tokens, cache, { from: 0, to: from }, run);
  await runDecoder(w, config, x, positions, tokens, cache, { from, to: L }, { ...run, outputs });
  const prefilled = Float32Array.from(x.host as Float32Array);
  // One decode step: each row's next token at the position after its prompt.
  const step = new Tensor('f32', [B, 1, D], Float32Array.from({ length: B * D }, () => rng() * 2 - 1), 'cpu');
  await runDecoder(w, config, step, new Tensor('i32', [B, 1], Int32Array.from(TOKENS), 'cpu'), new Int32Array(B).fill(1), cache, { from: 0, to: L }, run);
  return { x: prefilled, cache, decoded: Float32Array.from(step.host as Float32Array) };
}

function sameBits(a: Float32Array, b: Float32Array, what: string): void {
  assert.is(a.length, b.length, `${what}: length`);
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length), ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < ua.length; i++) if (ua[i] !== ub[i]) assert.unreachable(`${what}: element ${i} differs (${a[i]} against ${b[i]})`);
}

/** max |a - b| over the rows, relative to max |b| there. */
function relGap(a: Float32Array, b: Float32Array, rows: number[], D: number): number {
  let gap = 0, scale = 0;
  for (const r of rows)
    for (let d = 0; d < D; d++) {
      gap = Math.max(gap, Math.abs(a[r * D + d]! - b[r * D + d]!));
      scale = Math.max(scale, Math.abs(b[r * D + d]!));
    }
  return gap / scale;
}

const lastRows = TOKENS.map((n, b) => b * T + n - 1);
const CASES = [
  ['tiny-llava f32', join(root, 'test', 'fixtures', 'tiny-llava'), 'f32', 1e-5],
  ['shapes-llava-tiny q8_0', join(root, 'models', 'shapes-llava-tiny'), 'q8_0', 1e-5],
  ['tiny-qwen2-vl bf16 (biases)', join(root, 'test', 'fixtures', 'tiny-qwen2-vl'), 'stored', 1e-5],
] as const;

for (const [name, dir, weights, tol] of CASES) {
  test(`${name}: caches bit for bit, last rows to rounding, other rows the last layer's input, fused = ops, decode after it`, async () => {
    const { w, config } = await textOf(dir, weights);
    const D = config.hiddenSize, L = config.numLayers;
    const all = await prefill(w, config, 'all', 'fused');
    const last = await prefill(w, config, 'last', 'fused');
    const lastOps = await prefill(w, config, 'last', 'ops');
    for (let l = 0; l < L; l++) {
      sameBits(last.cache.keys[l]!.host as Float32Array, all.cache.keys[l]!.host as Float32Array, `keys of layer ${l}`);
      sameBits(last.cache.values[l]!.host as Float32Array, all.cache.values[l]!.host as Float32Array, `values of layer ${l}`);
      assert.equal([...last.cache.lengths[l]!], [...all.cache.lengths[l]!], `lengths of layer ${l}`);
    }
    const gap = relGap(last.x, all.x, lastRows, D);
    assert.ok(gap < tol, `last rows: relative gap ${gap.toExponential(2)} (bound ${tol})`);
    assert.ok(relGap(last.decoded, all.decoded, [0, 1, 2], D) < tol, 'the decode step after the prefill');
    sameBits(last.x, lastOps.x, 'fused and per-op paths: x');
    sameBits(last.decoded, lastOps.decoded, 'fused and per-op paths: the decode step');
    // The other rows hold the input of the last layer: x after layers [0, L - 1).
    const cache = new KVCache(B, 16, config, 'cpu');
    const rng = mulberry32(3);
    const input = new Tensor('f32', [B, T, D], Float32Array.from({ length: B * T * D }, () => rng() * 2 - 1), 'cpu');
    await runDecoder(w, config, input, new Tensor('i32', [B, T], Int32Array.from({ length: B * T }, (_, i) => i % T), 'cpu'), Int32Array.from(TOKENS), cache, { from: 0, to: L - 1 }, { backend: 'cpu', k: kernels('async') });
    cache.dispose();
    const upTo = input.host as Float32Array;
    for (let r = 0; r < B * T; r++) {
      if (lastRows.includes(r)) continue;
      sameBits(last.x.subarray(r * D, (r + 1) * D), upTo.subarray(r * D, (r + 1) * D), `row ${r}: the last layer's input`);
    }
    for (const run of [all, last, lastOps]) run.cache.dispose();
  });
}

test('a range of one layer, and T = 1 (nothing to skip: bit for bit outputs all)', async () => {
  const { w, config } = await textOf(join(root, 'test', 'fixtures', 'tiny-llava'), 'f32');
  const D = config.hiddenSize, L = config.numLayers;
  const all = await prefill(w, config, 'all', 'fused', L - 1);
  const last = await prefill(w, config, 'last', 'fused', L - 1);
  assert.ok(relGap(last.x, all.x, lastRows, D) < 1e-5, 'last rows');
  sameBits(last.cache.keys[L - 1]!.host as Float32Array, all.cache.keys[L - 1]!.host as Float32Array, 'keys of the last layer');
  // Decode steps (T = 1) under 'last' take the ordinary path.
  const cacheA = new KVCache(B, 4, config, 'cpu'), cacheB = new KVCache(B, 4, config, 'cpu');
  const rng = mulberry32(5);
  const values = Float32Array.from({ length: B * D }, () => rng() * 2 - 1);
  const xa = new Tensor('f32', [B, 1, D], values.slice(), 'cpu'), xb = new Tensor('f32', [B, 1, D], values.slice(), 'cpu');
  const pos = () => new Tensor('i32', [B, 1], new Int32Array(B), 'cpu');
  await runDecoder(w, config, xa, pos(), new Int32Array(B).fill(1), cacheA, { from: 0, to: L }, { backend: 'cpu', k: kernels('sync') });
  await runDecoder(w, config, xb, pos(), new Int32Array(B).fill(1), cacheB, { from: 0, to: L }, { backend: 'cpu', k: kernels('sync'), outputs: 'last' });
  sameBits(xb.host as Float32Array, xa.host as Float32Array, 'T = 1');
  for (const c of [all.cache, last.cache, cacheA, cacheB]) c.dispose();
});

test.run();
