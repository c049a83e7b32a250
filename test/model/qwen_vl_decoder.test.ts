// qwen_vl_decoder.test.ts — the Qwen2 decoder with M-RoPE (llama.ts's runDecoder with an
// MRope table, q/k/v biases) after the Qwen vision tower, against the float64 numpy
// reference on both tiny checkpoints: last-prompt logits (1e-4 relative), greedy tokens and
// every step's logits, unpruned, pre-LLM (k10) and at layer 2 (k6, cache keep and compact).
// The stages are driven here by hand (the runtime does not carry 3D positions yet), with
// the runtime's conventions: a row's position is its original sequence index, mapped to
// 3D ids by the MRope table; kept rows keep theirs; new token t sits at index S + t.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { kernels } from '../../lib/model/kernels.ts';
import { KVCache, lmHead, runDecoder, type MRope } from '../../lib/model/llama.ts';
import { parseQwenVLConfig, type QwenVLConfig } from '../../lib/model/qwen_vl/config.ts';
import { qwenVLPositionIds } from '../../lib/model/qwen_vl/positions.ts';
import { loadQwenVision, runQwenVision } from '../../lib/model/qwen_vl/vision.ts';
import { loadQwenText } from '../../lib/model/qwen_vl/weights.ts';
import { Checkpoint } from '../../lib/model/safetensors.ts';
import { Tensor } from '../../lib/tensor.ts';
import type { TextWeights } from '../../lib/model/weights.ts';

const test = suite('qwen_vl_decoder');
const k = kernels('sync');
const run = { backend: 'cpu' as const, k };
const dirOf = (name: string) => fileURLToPath(new URL(`../fixtures/${name}/`, import.meta.url));
const floats = (b64: string) => new Float32Array(Uint8Array.from(Buffer.from(b64, 'base64')).buffer);
interface Case { name: string; prune: null | { point: string; layer?: number; keep: number[]; cache?: string }; last_logits: number[]; generated_ids: number[]; step_logits: { shape: number[]; data: number[] } }

async function setup(name: string) {
  const dir = dirOf(name);
  const ref = JSON.parse(readFileSync(dir + 'reference.json', 'utf8'));
  const config = parseQwenVLConfig(JSON.parse(readFileSync(dir + 'config.json', 'utf8')), 'config.json');
  const checkpoint = await Checkpoint.open(dir);
  const vision = await loadQwenVision(checkpoint, config, dir, { device: 'cpu' });
  const text = await loadQwenText(checkpoint, config, dir, { device: 'cpu' });
  await checkpoint.close();
  const visual = (await runQwenVision(vision, config, floats(ref.pixel_values_f32le_base64), ref.grid_thw, run)).toHost().host as Float32Array;
  const ids: number[] = ref.input_ids;
  const D = config.text.hiddenSize;
  const embedded = (await k.embedding(text.embed, new Tensor('i32', [ids.length], Int32Array.from(ids), 'cpu'))).toHost().host as Float32Array;
  const rows = Float32Array.from(embedded);
  rows.set(visual, ref.image_token_pos * D);
  const pos = qwenVLPositionIds(ids, [ref.grid_thw], config, config.vision.spatialMergeSize);
  const mrope: MRope = { section: config.mropeSection, ids: [pos.ids], delta: [pos.ropeDelta] };
  return { ref, config, text, rows, mrope };
}

/** Rows `indices` of x [S, D] as [1, n, D], with their indices as positions. */
function pick(rows: Float32Array, indices: number[], D: number): { x: Tensor; positions: Tensor } {
  const out = new Float32Array(indices.length * D);
  indices.forEach((i, j) => out.set(rows.subarray(i * D, (i + 1) * D), j * D));
  return { x: new Tensor('f32', [1, indices.length, D], out, 'cpu'), positions: new Tensor('i32', [1, indices.length], Int32Array.from(indices), 'cpu') };
}

async function logitsOf(text: TextWeights, config: QwenVLConfig, x: Tensor, row: number): Promise<Float32Array> {
  const D = config.text.hiddenSize;
  const h = new Tensor('f32', [1, D], (x.toHost().host as Float32Array).slice(row * D, (row + 1) * D), 'cpu');
  return (await lmHead(text, config.text, h, run)).toHost().host as Float32Array;
}

/** The case's prefill and greedy steps, as the runtime would run them. */
async function runCase(s: Awaited<ReturnType<typeof setup>>, c: Case, steps: number) {
  const { ref, config, text, rows, mrope } = s;
  const D = config.text.hiddenSize, L = config.text.numLayers, S: number = ref.input_ids.length;
  const start: number = ref.image_token_pos, N: number = ref.num_image_tokens;
  const all = Array.from({ length: S }, (_, i) => i);
  const kept = c.prune ? all.filter((i) => i < start || i >= start + N || c.prune!.keep.includes(i - start)) : all;
  const cache = new KVCache(1, S + steps, config.text, 'cpu');
  const opts = { ...run, mrope };
  let last: Tensor;
  if (c.prune?.point === 'in_llm') {
    const K = c.prune.layer!;
    const full = pick(rows, all, D);
    await runDecoder(text, config.text, full.x, full.positions, Int32Array.of(S), cache, { from: 0, to: K }, opts);
    const after = pick(full.x.toHost().host as Float32Array, kept, D);
    await runDecoder(text, config.text, after.x, after.positions, Int32Array.of(kept.length), cache, { from: K, to: L }, opts);
    if (c.prune.cache === 'compact') {
      const keep = new Tensor('i32', [1, kept.length], Int32Array.from(kept), 'cpu');
      for (let l = 0; l < K; l++) {
        cache.lengths[l] = await k.compactKVInPlace(cache.keys[l]!, keep, run);
        await k.compactKVInPlace(cache.values[l]!, keep, run);
      }
    }
    last = after.x;
  } else {
    const p = pick(rows, kept, D);
    await runDecoder(text, config.text, p.x, p.positions, Int32Array.of(kept.length), cache, { from: 0, to: L }, opts);
    last = p.x;
  }
  const stepLogits = [await logitsOf(text, config, last, kept.length - 1)];
  const generated: number[] = [];
  for (let t = 0; t < steps; t++) {
    const row = stepLogits[t]!;
    let best = 0;
    for (let v = 1; v < row.length; v++) if (row[v]! > row[best]!) best = v;
    generated.push(best);
    if (t === steps - 1) break;
    const x = await k.embedding(text.embed, new Tensor('i32', [1, 1], Int32Array.of(best), 'cpu'));
    await runDecoder(text, config.text, x, new Tensor('i32', [1, 1], Int32Array.of(S + t), 'cpu'), Int32Array.of(1), cache, { from: 0, to: L }, opts);
    stepLogits.push(await logitsOf(text, config, x, 0));
  }
  return { stepLogits, generated };
}

function close(got: Float32Array, want: ArrayLike<number>, what: string): void {
  let maxDiff = 0, maxAbs = 0, at = -1;
  for (let i = 0; i < want.length; i++) {
    maxAbs = Math.max(maxAbs, Math.abs(want[i]!));
    const d = Math.abs(got[i]! - want[i]!);
    if (d > maxDiff) { maxDiff = d; at = i; }
  }
  assert.ok(maxDiff <= 1e-4 * maxAbs, `${what}: max |difference| ${maxDiff} at ${at} > 1e-4 x ${maxAbs}`);
}

for (const name of ['tiny-qwen2-vl', 'tiny-qwen2_5-vl']) {
  const cases = ['a_unpruned', 'b_pre_llm_k10', 'c_in_llm_l2_k6_keep', 'd_in_llm_l2_k6_compact'];
  for (const caseName of cases) {
    test(`${name} ${caseName}: logits (1e-4 relative) and greedy tokens equal the reference`, async () => {
      const s = await setup(name);
      const c = (s.ref.cases as Case[]).find((x) => x.name === caseName)!;
      const steps = c.generated_ids.length;
      const r = await runCase(s, c, steps);
      close(r.stepLogits[0]!, c.last_logits, 'last prompt logits');
      assert.equal(r.generated, c.generated_ids, 'greedy tokens');
      const V = c.step_logits.shape[1]!;
      for (let t = 0; t < steps; t++) close(r.stepLogits[t]!, c.step_logits.data.slice(t * V, (t + 1) * V), `step ${t} logits`);
    });
  }
}

test('M-RoPE is not plain RoPE here: the image rows\' 3D ids change the logits', async () => {
  const s = await setup('tiny-qwen2-vl');
  const c = (s.ref.cases as Case[]).find((x) => x.name === 'a_unpruned')!;
  const flat: MRope = { ...s.mrope, ids: [Int32Array.from({ length: 3 * s.ref.input_ids.length }, (_, i) => i % s.ref.input_ids.length)], delta: [0] };
  const r = await runCase({ ...s, mrope: flat }, c, 1);
  let maxDiff = 0;
  c.last_logits.forEach((v, i) => { maxDiff = Math.max(maxDiff, Math.abs(r.stepLogits[0]![i]! - v)); });
  assert.ok(maxDiff > 0.01, `1D positions changed the logits by only ${maxDiff}`);
});

test.run();
