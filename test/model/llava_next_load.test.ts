// llava_next_load.test.ts — the LLaVA-NeXT checkpoint through loadVLM and
// `grip run`: an image file end to end, the answer log-likelihood of the GRPO
// reward on its ragged layout, and malformed checkpoints (pinpoints,
// image_newline, a processor that disagrees with the model), each refused
// with a GripError naming the field.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { tensor } from '../../lib/index.ts';
import { keptPicturesUnsupported } from '../../lib/eval/pictures.ts';
import { anyresGeometry } from '../../lib/model/llava_next/processor.ts';
import { loadVLM } from '../../lib/model/vlm.ts';
import { numKeepFor } from '../../lib/prune/pruner.ts';
import { expectError } from '../helpers.ts';

const test = suite('llava_next_load');
const root = fileURLToPath(new URL('../../', import.meta.url));
const DIR = join(root, 'test', 'fixtures', 'tiny-llava-next');
const REF = JSON.parse(readFileSync(join(DIR, 'reference.json'), 'utf8')).model;
const CONFIG = JSON.parse(readFileSync(join(DIR, 'config.json'), 'utf8'));
const PROCESSOR = JSON.parse(readFileSync(join(DIR, 'preprocessor_config.json'), 'utf8'));
const work = mkdtempSync(join(tmpdir(), 'grip-llava-next-'));
const image = join(work, 'wide.png');
const env = { ...process.env };
delete env.FORCE_COLOR;

test.before(async () => {
  await sharp({ create: { width: 70, height: 20, channels: 3, background: { r: 200, g: 30, b: 30 } } }).png().toFile(image);
});
test.after(() => rmSync(work, { recursive: true, force: true }));

test('grip run on the LLaVA-NeXT layout: a 70x20 image, 1x3 tiles, fastv keeps a quarter of its 214 tokens', () => {
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(root, 'lib', 'cli.ts'), 'run', '--model', DIR, '--image', image,
    '--prompt', 'what is the color of the shape ?', '--keep', '0.25', '--pruner', 'fastv', '--max-new-tokens', '3', '--json'], { encoding: 'utf8', cwd: root, env });
  assert.is(r.status, 0, r.stderr);
  const result = JSON.parse(r.stdout) as { tokenIds: number[]; kept: { indices: number[] } };
  assert.is(anyresGeometry([20, 70], CONFIG.image_grid_pinpoints, 32, 4).numImageTokens, 214);
  assert.is(result.kept.indices.length, numKeepFor(0.25, 214));
  assert.ok(result.tokenIds.length >= 1 && result.tokenIds.length <= 3);
});

test('grip run\'s stderr line counts the image\'s own visual tokens (214 of a 70x20 image), not the model\'s largest layout', () => {
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(root, 'lib', 'cli.ts'), 'run', '--model', DIR, '--image', image,
    '--prompt', 'what is the color of the shape ?', '--keep', '0.5', '--pruner', 'norm', '--max-new-tokens', '1'], { encoding: 'utf8', cwd: root, env });
  assert.is(r.status, 0, r.stderr);
  assert.match(r.stderr, `kept ${numKeepFor(0.5, 214)}/214 visual tokens`);
});

test('grip eval on LLaVA-NeXT skips the kept-token pictures with one line and writes the rest', () => {
  const out = join(work, 'eval');
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(root, 'lib', 'cli.ts'), 'eval', '--model', DIR, '--pruners', 'norm', '--ratios', '0.25',
    '--questions', '2', '--out', out], { encoding: 'utf8', cwd: root, env });
  assert.is(r.status, 0, r.stderr);
  const notes = r.stderr.split('\n').filter((line) => line.startsWith('kept-'));
  const model = JSON.parse(readFileSync(join(out, 'eval.json'), 'utf8')) as { model: string };
  assert.is(model.model, DIR);
  assert.is(notes.length, 1, r.stderr);
  const cols = Number(/1 x (\d+) layout/.exec(notes[0]!)?.[1]);
  assert.is(notes[0], `kept-*.png skipped: ${keptPicturesUnsupported({ rows: 1, cols }, cols)}`);
  assert.ok(cols > 214, `the largest layout (${cols}) is larger than a 70x20 image's 214 tokens, so grip run's line tells the two apart`);
  assert.ok(existsSync(join(out, 'eval.json')) && existsSync(join(out, 'pareto.svg')), 'eval.json and pareto.svg written');
  assert.not.ok(existsSync(join(out, 'kept-1.png')), 'no kept-1.png');
});

test('answerLogProb on LLaVA-NeXT: all tokens kept gives the reference\'s log-softmax of its greedy token, at both points', async () => {
  const model = await loadVLM(DIR, { backend: 'cpu' });
  try {
    const source = { inputIds: REF.input_ids, pixelValues: tensor(Float32Array.from(REF.pixel_values.data), REF.pixel_values.shape), imageSize: REF.image_size };
    const unpruned = REF.cases[0];
    const logits: number[] = unpruned.last_logits;
    const max = Math.max(...logits);
    const logZ = max + Math.log(logits.reduce((s: number, v: number) => s + Math.exp(v - max), 0));
    const first: number = unpruned.generated_ids[0];
    const expected = logits[first]! - logZ;
    for (const point of ['pre-llm', { layer: 2 }] as const) {
      const r = await model.answerLogProb({ ...source, point, answer: [first], keepSets: [null, REF.keep] });
      assert.ok(Math.abs(r.logProb[0]! - expected) < 1e-4, `${JSON.stringify(point)}: ${r.logProb[0]} vs ${expected}`);
      assert.ok(r.logProb[1]! !== r.logProb[0]!, 'pruning changes the answer\'s log-probability');
    }
    await expectError(() => model.answerLogProb({ ...source, answer: [first], keepSets: [[214]] }), 'ERR_GRIP_RANGE',
      'expected ascending distinct indices in [0, 214) for row 0 from pruner "keepSets" but received 214 at [0]');
  } finally {
    model.dispose();
  }
});

/** A copy of the fixture with some files replaced. */
function variant(name: string, files: Record<string, string | null>, weights = join(DIR, 'model.safetensors')): string {
  const dir = join(work, name);
  spawnSync('mkdir', ['-p', dir]);
  for (const f of ['config.json', 'preprocessor_config.json', 'tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(DIR, f), join(dir, f));
  copyFileSync(weights, join(dir, 'model.safetensors'));
  for (const [f, text] of Object.entries(files)) if (text !== null) writeFileSync(join(dir, f), text);
  return dir;
}

test('malformed LLaVA-NeXT checkpoints are refused, naming the field', async () => {
  const noNewline = variant('no-newline', {}, join(root, 'test', 'fixtures', 'tiny-llava', 'model.safetensors'));
  await expectError(() => loadVLM(noNewline, { backend: 'cpu' }), 'ERR_GRIP_FORMAT',
    `expected tensor "image_newline" (or "model.image_newline") in ${noNewline} but received none`);
  const empty = variant('empty-pinpoints', { 'config.json': JSON.stringify({ ...CONFIG, image_grid_pinpoints: [] }) });
  await expectError(() => loadVLM(empty, { backend: 'cpu' }), 'ERR_GRIP_RANGE',
    `expected a non-empty list of [height, width] pairs of positive multiples of vision_config.image_size (32) for image_grid_pinpoints in ${join(empty, 'config.json')} but received []`);
  const offTile = variant('off-tile', { 'config.json': JSON.stringify({ ...CONFIG, image_grid_pinpoints: [[32, 64], [32, 40]] }) });
  await expectError(() => loadVLM(offTile, { backend: 'cpu' }), 'ERR_GRIP_RANGE',
    `expected a non-empty list of [height, width] pairs of positive multiples of vision_config.image_size (32) for image_grid_pinpoints in ${join(offTile, 'config.json')} but received [[32, 64], [32, 40]]`);
  const disagree = variant('disagree', { 'preprocessor_config.json': JSON.stringify({ ...PROCESSOR, image_grid_pinpoints: [[32, 64]] }) });
  await expectError(() => loadVLM(disagree, { backend: 'cpu' }), 'ERR_GRIP_FORMAT',
    `expected the image_grid_pinpoints of ${join(disagree, 'config.json')} ([[32, 64], [64, 32], [64, 64], [32, 96], [96, 32]]) for image_grid_pinpoints in ${join(disagree, 'preprocessor_config.json')} but received [[32, 64]]`);
});

test.run();
