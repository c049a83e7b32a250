// malformed.test.ts — the runtime's corpus of bad inputs: broken checkpoint
// directories (missing or misshapen tensors, truncated weights, bad config,
// missing tokenizer or processor files), odd and corrupt images, and bad
// requests. Each gives its GripError with an exact message; none crashes.
// (The safetensors, config, processor and tokenizer layers have their own,
// larger corpora in the files beside this one.)
import { copyFileSync, mkdtempSync, readFileSync, rmSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { GripError, tensor } from '../../lib/index.ts';
import { loadVLM, type VLM } from '../../lib/model/vlm.ts';
import { SafetensorsFile, writeSafetensors } from '../../lib/model/safetensors.ts';
import { RandomPruner } from '../../lib/prune/heuristics/random.ts';
import type { Pruner } from '../../lib/prune/pruner.ts';
import { caught, expectError } from '../helpers.ts';

const source = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'tiny-llava');
const work = mkdtempSync(join(tmpdir(), 'grip-malformed-'));
const FILES = ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json', 'preprocessor_config.json'];
let counter = 0;

/** A copy of the test checkpoint, changed by `edit`. */
async function variant(edit: (dir: string) => void | Promise<void>): Promise<string> {
  const dir = join(work, `v${counter++}`);
  const { mkdirSync } = await import('node:fs');
  mkdirSync(dir);
  for (const f of FILES) copyFileSync(join(source, f), join(dir, f));
  await edit(dir);
  return dir;
}

async function rewriteTensors(dir: string, change: (tensors: Record<string, import('../../lib/index.ts').Tensor>) => void): Promise<void> {
  const file = await SafetensorsFile.open(join(dir, 'model.safetensors'));
  const tensors: Record<string, import('../../lib/index.ts').Tensor> = {};
  for (const name of file.names) tensors[name] = await file.read(name);
  await file.close();
  change(tensors);
  await writeSafetensors(join(dir, 'model.safetensors'), tensors);
}

function editJson(dir: string, file: string, change: (json: Record<string, any>) => void): void {
  const json = JSON.parse(readFileSync(join(dir, file), 'utf8'));
  change(json);
  writeFileSync(join(dir, file), JSON.stringify(json));
}


let model: VLM;
test.before(async () => {
  model = await loadVLM(source, { backend: 'cpu' });
});
test.after(() => rmSync(work, { recursive: true, force: true }));

// ---- checkpoint directories ---------------------------------------------------------

test('a missing tensor is named with the directory', async () => {
  const dir = await variant((d) => rewriteTensors(d, (t) => { delete t['language_model.model.layers.1.mlp.up_proj.weight']; }));
  await expectError(() => loadVLM(dir), 'ERR_GRIP_FORMAT', `expected tensor "language_model.model.layers.1.mlp.up_proj.weight" in ${dir} but received none`);
});

test('a tensor of the wrong shape is named with both shapes', async () => {
  const dir = await variant((d) => rewriteTensors(d, (t) => { t['multi_modal_projector.linear_1.weight'] = tensor(new Float32Array(48 * 16), [48, 16]); }));
  await expectError(() => loadVLM(dir), 'ERR_GRIP_FORMAT', `expected shape [48, 32] for tensor "multi_modal_projector.linear_1.weight" in ${dir} but received [48, 16]`);
});

test('a missing vision layer norm is named', async () => {
  const dir = await variant((d) => rewriteTensors(d, (t) => { delete t['vision_tower.vision_model.pre_layrnorm.bias']; }));
  await expectError(() => loadVLM(dir), 'ERR_GRIP_FORMAT', `expected tensor "vision_tower.vision_model.pre_layrnorm.bias" in ${dir} but received none`);
});

test('a checkpoint without lm_head and without tied embeddings is refused', async () => {
  const dir = await variant((d) => rewriteTensors(d, (t) => { delete t['language_model.lm_head.weight']; }));
  await expectError(() => loadVLM(dir), 'ERR_GRIP_FORMAT', `expected tensor "lm_head.weight" (or tie_word_embeddings) in ${dir} but received none`);
});

test('tied embeddings stand in for a missing lm_head', async () => {
  const dir = await variant(async (d) => {
    await rewriteTensors(d, (t) => { delete t['language_model.lm_head.weight']; });
    editJson(d, 'config.json', (c) => { c.text_config.tie_word_embeddings = true; });
  });
  const tied = await loadVLM(dir);
  const pixelValues = tensor(new Float32Array(3 * 32 * 32), [3, 32, 32]);
  const r = await tied.generate({ pixelValues, prompt: 'what is the color?', maxNewTokens: 2 });
  assert.ok(r.tokenIds.length >= 1);
});

test('truncated weights are a format error naming the file', async () => {
  const dir = await variant((d) => truncateSync(join(d, 'model.safetensors'), 5000));
  await expectError(() => loadVLM(dir), 'ERR_GRIP_FORMAT', /model\.safetensors/);
});

test('an unknown model_type is unsupported, named', async () => {
  const dir = await variant((d) => editJson(d, 'config.json', (c) => { c.model_type = 'qwen2_vl'; }));
  await expectError(() => loadVLM(dir), 'ERR_GRIP_UNSUPPORTED', /"qwen2_vl"/);
});

test('a config whose heads do not divide the hidden size is refused', async () => {
  const dir = await variant((d) => editJson(d, 'config.json', (c) => { c.text_config.num_attention_heads = 5; c.text_config.num_key_value_heads = 5; }));
  await expectError(() => loadVLM(dir), 'ERR_GRIP_RANGE', `expected a multiple of text_config.num_attention_heads (5) for text_config.hidden_size in ${dir}/config.json but received number 48`);
});

test('a config that disagrees with the weights fails on the first misshapen tensor', async () => {
  const dir = await variant((d) => editJson(d, 'config.json', (c) => { c.text_config.intermediate_size = 128; }));
  await expectError(() => loadVLM(dir), 'ERR_GRIP_FORMAT', `expected shape [128, 48] for tensor "language_model.model.layers.0.mlp.gate_proj.weight" in ${dir} but received [96, 48]`);
});

test('a missing tokenizer.json or preprocessor_config.json is an IO error naming it', async () => {
  const a = await variant((d) => unlinkSync(join(d, 'tokenizer.json')));
  await expectError(() => loadVLM(a), 'ERR_GRIP_IO', /tokenizer\.json/);
  const b = await variant((d) => unlinkSync(join(d, 'preprocessor_config.json')));
  await expectError(() => loadVLM(b), 'ERR_GRIP_IO', /preprocessor_config\.json/);
});

test('a crop size that is not the vision tower image size is refused at the first image', async () => {
  const dir = await variant((d) => editJson(d, 'preprocessor_config.json', (c) => { c.crop_size = { height: 16, width: 16 }; c.size = { shortest_edge: 16 }; }));
  const m = await loadVLM(dir);
  const png = await sharp({ create: { width: 20, height: 20, channels: 3, background: '#808080' } }).png().toBuffer();
  await expectError(() => m.generate({ image: png, prompt: 'what?' }), 'ERR_GRIP_SHAPE', `expected pixel values [3, 32, 32] (vision_config.image_size) for the crop size of ${dir}/preprocessor_config.json but received [3, 16, 16]`);
});

test('a directory that does not exist is an IO error', async () => {
  await expectError(() => loadVLM(join(work, 'nowhere')), 'ERR_GRIP_IO', /nowhere/);
});

// ---- images -------------------------------------------------------------------------

test('grayscale, alpha, 1x1 and very wide images all run', async () => {
  const images = [
    await sharp({ create: { width: 40, height: 30, channels: 3, background: '#808080' } }).grayscale().png().toBuffer(),
    await sharp({ create: { width: 40, height: 30, channels: 4, background: { r: 10, g: 200, b: 10, alpha: 0.5 } } }).png().toBuffer(),
    await sharp({ create: { width: 1, height: 1, channels: 3, background: '#ff0000' } }).png().toBuffer(),
    await sharp({ create: { width: 3000, height: 3, channels: 3, background: '#0000ff' } }).jpeg().toBuffer(),
    { data: new Uint8Array(5 * 7 * 3).fill(128), width: 5, height: 7, channels: 3 as const },
  ];
  for (const image of images) {
    const r = await model.generate({ image, prompt: 'what is the color?', maxNewTokens: 1 });
    assert.is(r.tokenIds.length, 1);
  }
});

test('corrupt and empty image bytes are format errors', async () => {
  await expectError(() => model.generate({ image: Buffer.from('not an image at all'), prompt: 'what?' }), 'ERR_GRIP_FORMAT', /expected an image/);
  await expectError(() => model.generate({ image: Buffer.alloc(0), prompt: 'what?' }), 'ERR_GRIP_FORMAT', /expected an image/);
  const png = await sharp({ create: { width: 64, height: 64, channels: 3, background: '#123456' } }).png().toBuffer();
  await expectError(() => model.generate({ image: png.subarray(0, 60), prompt: 'what?' }), 'ERR_GRIP_FORMAT', /expected an image/);
});

test('raw pixels of the wrong length are a shape error', async () => {
  await expectError(() => model.generate({ image: { data: new Uint8Array(10), width: 4, height: 4, channels: 3 }, prompt: 'what?' }), 'ERR_GRIP_SHAPE', /48/);
});

// ---- requests -----------------------------------------------------------------------

const pixelValues = tensor(new Float32Array(3 * 32 * 32), [3, 32, 32]);

test('a request without an image or without a prompt says which', async () => {
  await expectError(() => model.generate({ prompt: 'what?' }), 'ERR_GRIP_RANGE', 'expected image or pixelValues for requests[0] but received neither');
  await expectError(() => model.generate({ pixelValues }), 'ERR_GRIP_RANGE', 'expected prompt (a string) or inputIds for requests[0] but received neither');
});

test('pixel values of the wrong shape are a shape error', async () => {
  await expectError(() => model.generate({ pixelValues: tensor(new Float32Array(3 * 16 * 16), [3, 16, 16]), prompt: 'what?' }), 'ERR_GRIP_SHAPE', 'expected [3, 32, 32] [C,H,W] for requests[0].pixelValues but received [3, 16, 16]');
});

test('token ids without the image token, or with it twice, are refused', async () => {
  await expectError(() => model.generate({ pixelValues, inputIds: [1, 5, 6] }), 'ERR_GRIP_RANGE', 'expected one image token (4) or a run of 64 for requests[0] token ids but received 0');
  await expectError(() => model.generate({ pixelValues, inputIds: [1, 4, 5, 4] }), 'ERR_GRIP_RANGE', 'expected one image token (4) or a run of 64 for requests[0] token ids but received 2');
  await expectError(() => model.generate({ pixelValues, inputIds: [1, 4, 500] }), 'ERR_GRIP_RANGE', 'expected an integer in [0, 71] for requests[0].inputIds[2] but received number 500');
});

test('keep ratios outside (0, 1] and bad token budgets are range errors', async () => {
  await expectError(() => model.generate({ pixelValues, prompt: 'what?', keepRatio: 0, pruner: new RandomPruner() }), 'ERR_GRIP_RANGE', 'expected a number in (0, 1] for requests[0].keepRatio but received number 0');
  await expectError(() => model.generate({ pixelValues, prompt: 'what?', keepRatio: 1.5 }), 'ERR_GRIP_RANGE', 'expected a number in (0, 1] for requests[0].keepRatio but received number 1.5');
  await expectError(() => model.generate({ pixelValues, prompt: 'what?', maxNewTokens: -1 }), 'ERR_GRIP_RANGE', 'expected an integer in [0, 1048576] for requests[0].maxNewTokens but received number -1');
});

test('a prune layer outside [1, layers) is a range error', async () => {
  await expectError(() => model.generate({ pixelValues, prompt: 'what?', pruner: new RandomPruner({ point: { layer: 4 } }) }), 'ERR_GRIP_RANGE', `expected 'pre-llm' or { layer: K } with K in [1, 3] for pruner.point but received {"layer":4}`);
  // A pruner of one's own (the built-in ones refuse layer 0 when constructed: test/prune/heuristics.test.ts).
  const layerZero: Pruner = { name: 'layer-zero', point: { layer: 0 }, select: async (ctx) => [...ctx.numKeep].map((k) => Int32Array.from({ length: k }, (_, i) => i)) };
  await expectError(() => model.generate({ pixelValues, prompt: 'what?', pruner: layerZero }), 'ERR_GRIP_RANGE', `expected 'pre-llm' or { layer: K } with K in [1, 3] for pruner.point but received {"layer":0}`);
});

test('a pruner returning bad keep-sets is caught before it reaches native code', async () => {
  const bad = (sets: unknown): Pruner => ({ name: 'bad', point: 'pre-llm', select: async () => sets as Int32Array[] });
  await expectError(() => model.generate({ pixelValues, prompt: 'what?', pruner: bad([]) }), 'ERR_GRIP_SHAPE', 'expected 1 keep-sets (one per row) from pruner "bad" but received 0');
  await expectError(() => model.generate({ pixelValues, prompt: 'what?', pruner: bad([Int32Array.of(3, 2)]) }), 'ERR_GRIP_RANGE', 'expected ascending distinct indices in [0, 64) for row 0 from pruner "bad" but received 2 at [1]');
  await expectError(() => model.generate({ pixelValues, prompt: 'what?', pruner: bad([Int32Array.of(64)]) }), 'ERR_GRIP_RANGE', 'expected ascending distinct indices in [0, 64) for row 0 from pruner "bad" but received 64 at [0]');
  await expectError(() => model.generate({ pixelValues, prompt: 'what?', pruner: bad([new Int32Array(0)]) }), 'ERR_GRIP_SHAPE', 'expected an Int32Array of 1..64 indices for row 0 from pruner "bad" but received 0 indices');
});

test('a pruner that needs LLM attention cannot run before the LLM', async () => {
  const early: Pruner = { name: 'early', point: 'pre-llm', needs: { attention: 'last-token' }, select: async () => [] };
  await expectError(() => model.generate({ pixelValues, prompt: 'what?', pruner: early }), 'ERR_GRIP_UNSUPPORTED', `expected an in-LLM point ({ layer: K }) for a pruner that needs 'last-token' attention but received 'pre-llm' (pruner "early")`);
});

test('answerLogProb refuses an empty answer and empty keep-sets', async () => {
  await expectError(() => model.answerLogProb({ pixelValues, prompt: 'what?', answer: [], keepSets: [null] }), 'ERR_GRIP_SHAPE', 'expected at least one answer token for request.answer but received 0');
  await expectError(() => model.answerLogProb({ pixelValues, prompt: 'what?', answer: 'red', keepSets: [] }), 'ERR_GRIP_SHAPE', 'expected a non-empty array of keep-sets for request.keepSets but received an empty array');
});

test('a batch must share its pruner', async () => {
  await expectError(() => model.generateBatch([{ pixelValues, prompt: 'a' }, { pixelValues, prompt: 'b', pruner: new RandomPruner() }]), 'ERR_GRIP_RANGE', 'expected the same pruner in every request of a batch for requests[1].pruner but received random');
});

test.run();
