// llava_next_features.test.ts — llavaNextImageFeatures on the tiny LLaVA-NeXT
// checkpoint against the numpy reference's per-tile features and packed
// visual tokens (base image, unpadded tile grid, image_newline per row).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Checkpoint } from '../../lib/model/safetensors.ts';
import { kernels } from '../../lib/model/kernels.ts';
import { loadWeights } from '../../lib/model/weights.ts';
import { parseLlavaNextConfig } from '../../lib/model/llava_next/config.ts';
import { asLlavaStages, llavaNextImageFeatures, readImageNewline } from '../../lib/model/llava_next/features.ts';
import { expectError, normErr } from '../helpers.ts';

const test = suite('llava_next_features');
const DIR = fileURLToPath(new URL('../fixtures/tiny-llava-next/', import.meta.url));
const REF = JSON.parse(readFileSync(DIR + 'reference.json', 'utf8')).model;
const config = parseLlavaNextConfig(JSON.parse(readFileSync(DIR + 'config.json', 'utf8')), 'config.json');

async function load() {
  const checkpoint = await Checkpoint.open(DIR);
  try {
    const weights = await loadWeights(checkpoint, asLlavaStages(config), DIR, { dtype: 'auto', device: 'cpu' });
    return { weights, newline: await readImageNewline(checkpoint, config, DIR) };
  } finally {
    await checkpoint.close();
  }
}

const options = { backend: 'cpu' as const, k: kernels('sync') };

test('the packed visual tokens equal the reference (relative error < 1e-4)', async () => {
  const { weights, newline } = await load();
  const px = Float32Array.from(REF.pixel_values.data as number[]);
  const out = await llavaNextImageFeatures(weights, newline, config, px, REF.image_size, { ...options, clsAttention: true });
  assert.equal(out.tokens.shape, REF.visual_tokens.shape);
  const got = out.tokens.toFloat32();
  const err = normErr(got, REF.visual_tokens.data);
  assert.ok(err < 1e-4, `visual tokens: relative error ${err}`);
  // the newline rows are image_newline itself, bit for bit
  const D = config.text.hiddenSize;
  const rows = Array.from(out.geometry.tokenTile).flatMap((t, i) => (t === -1 ? [i] : []));
  assert.is(rows.length, 6);
  for (const i of rows) assert.equal(Array.from(got.subarray(i * D, (i + 1) * D)), Array.from(newline));
  // CLS attention: 0 exactly on the newlines, a probability elsewhere
  const cls = out.clsAttention!;
  for (let i = 0; i < cls.length; i++) {
    if (out.geometry.tokenTile[i] === -1) assert.is(cls[i], 0);
    else assert.ok(cls[i]! > 0 && cls[i]! < 1, `cls[${i}] = ${cls[i]}`);
  }
});

test('a tile count that does not fit the image is refused', async () => {
  const { weights, newline } = await load();
  await expectError(() => llavaNextImageFeatures(weights, newline, config, new Float32Array(3 * 3 * 32 * 32), REF.image_size, options),
    'ERR_GRIP_SHAPE', 'expected 12288 values (4 crops of 3x32x32) for tiles but received 9216');
  await expectError(() => llavaNextImageFeatures(weights, newline.subarray(1), config, new Float32Array(4 * 3 * 32 * 32), REF.image_size, options),
    'ERR_GRIP_SHAPE', 'expected 48 values for newline but received 47');
});

test('a checkpoint without image_newline is refused, naming the tensor', async () => {
  // tiny-llava holds the same weights as tiny-llava-next but no image_newline (LLaVA-1.5 has none)
  const other = fileURLToPath(new URL('../fixtures/tiny-llava/', import.meta.url));
  const checkpoint = await Checkpoint.open(other);
  try {
    await expectError(() => readImageNewline(checkpoint, config, 'DIR'), 'ERR_GRIP_FORMAT',
      'expected tensor "image_newline" (or "model.image_newline") in DIR but received none');
  } finally {
    await checkpoint.close();
  }
});

test.run();
