// int8.test.ts — loadVLM(dir, { weights: 'int8' }) on the embedded testbed
// model: which tensors become q8_0 (the decoder's Linear weights and the LM
// head; embeddings, norms and the vision tower stay float), that its logits
// stay within the 8-bit error of the f32 model's with the same top tokens,
// and the option's refusals (unknown format, CUDA, a second rounding,
// in-features not a multiple of 32).
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { makeExamples, renderScene } from '../../lib/data/shapes/index.ts';
import { loadVLM } from '../../lib/model/vlm.ts';
import { quantizeDecoder, type TextWeights } from '../../lib/model/weights.ts';
import { tensor } from '../../lib/tensor.ts';
import { expectError } from '../helpers.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const modelDir = join(root, 'models', 'shapes-llava-tiny');

const f32 = await loadVLM(modelDir, { backend: 'cpu', dtype: 'f32' });
const int8 = await loadVLM(modelDir, { backend: 'cpu', weights: 'int8' });

test("weights 'int8': the decoder's Linear weights and the LM head are q8_0, the rest stays float", () => {
  const w = (int8 as unknown as { model: { text: { weights: TextWeights } } }).model.text.weights;
  for (const [i, layer] of w.layers.entries()) {
    for (const name of ['q', 'k', 'v', 'o', 'gate', 'up', 'down'] as const) assert.is(layer[name].weight.dtype, 'q8_0', `layers.${i}.${name}`);
    assert.is(layer.inputNorm.dtype, 'f32');
  }
  assert.is(w.lmHead.dtype, 'q8_0');
  assert.is(w.embed.dtype, 'f32');
  assert.is(w.norm.dtype, 'f32');
});

test("weights 'int8': last-position logits within the 8-bit error of f32, same top token", async () => {
  const examples = makeExamples('test', 8);
  for (const [i, ex] of examples.entries()) {
    const image = await renderScene(ex.scene);
    const want = (await f32.logits({ image, prompt: ex.question })).logits.host as Float32Array;
    const got = (await int8.logits({ image, prompt: ex.question })).logits.host as Float32Array;
    let num = 0, den = 0, topW = 0, topG = 0;
    for (let v = 0; v < want.length; v++) {
      num += (got[v]! - want[v]!) ** 2;
      den += want[v]! ** 2;
      if (want[v]! > want[topW]!) topW = v;
      if (got[v]! > got[topG]!) topG = v;
    }
    const rel = Math.sqrt(num / den);
    // 8-bit weights and activations: 0.8% on average, 4.9% at worst over 200 test questions (tools/testbed/int8-accuracy.ts); these 8 stay under 4%.
    assert.ok(rel < 0.04 && rel > 1e-5, `question ${i}: relative logits error ${rel}`);
    assert.is(topG, topW, `question ${i}: top token`);
  }
});

test("weights option refusals: unknown format, CUDA, dtype rounding first", async () => {
  await expectError(() => loadVLM(modelDir, { weights: 'int4' as 'int8' }), 'ERR_GRIP_RANGE', `expected one of 'float', 'int8' for options.weights but received the string "int4"`);
  await expectError(() => loadVLM(modelDir, { weights: 'int8', backend: 'cuda' }), 'ERR_GRIP_UNSUPPORTED',
    "expected 'cpu' or 'auto' (q8_0 weights have CPU kernels only) with options.weights 'int8' for options.backend but received 'cuda'");
  await expectError(() => loadVLM(modelDir, { weights: 'int8', dtype: 'bf16' }), 'ERR_GRIP_RANGE',
    "expected 'auto' or 'f32' with options.weights 'int8' for options.dtype but received 'bf16'");
});

test("weights 'int8' refuses a decoder whose in-features are not a multiple of 32", async () => {
  const linear = (n: number, k: number) => ({ weight: tensor(new Float32Array(n * k), [n, k]), bias: null });
  const layer = { inputNorm: tensor(new Float32Array(64), [64]), postNorm: tensor(new Float32Array(64), [64]), q: linear(64, 64), k: linear(64, 64), v: linear(64, 64), o: linear(64, 64), gate: linear(48, 64), up: linear(48, 64), down: linear(64, 48) };
  const weights: TextWeights = { embed: tensor(new Float32Array(64 * 5), [5, 64]), layers: [layer], norm: tensor(new Float32Array(64), [64]), lmHead: tensor(new Float32Array(64 * 5), [5, 64]) };
  await expectError(() => quantizeDecoder(weights), 'ERR_GRIP_SHAPE',
    "expected in-features that are a multiple of 32 (q8_0 blocks) for the decoder's layers.0.down weight [64, 48] with weights 'int8' but received 48");
});

test.run();
