// shapes.test.ts — the shapes testbed: seeded determinism, disjoint splits,
// every answer re-derived here from the scene's objects by a separate reading
// of the question text, balance and POPE-style hard negatives, the vocabulary
// against the real tokenizer, rendered pixels against the scene, the patch
// helpers against the pixels, and the export the PyTorch trainer reads
// (pixels through our processor = (x/255 - mean)/std in float32 of images.u8).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { GripError } from '../../lib/errors.ts';
import {
  COLOR_RGB, QUESTION_KINDS, VOCABULARY, cellOfPatch, checkScene, generateScene, makeExamples, patchOfPixel, patchesOfObject,
  renderScene, renderSceneRGB, type Example, type Scene, type SceneObject,
} from '../../lib/data/shapes/index.ts';
import { parseProcessorConfig, preprocessImage } from '../../lib/model/processor.ts';
import { TextTokenizer, buildPrompt, encodePrompt } from '../../lib/model/tokenizer.ts';
import { exportTestbed, type ExampleRecord } from '../../tools/testbed/export.ts';
import { modelTextFiles } from '../../tools/testbed/tokenizer.ts';

const test = suite('shapes');
const sha256 = (bytes: Uint8Array | string) => createHash('sha256').update(bytes).digest('hex');
const SPLITS = ['train', 'validation', 'test'] as const;
const N = 2000;

let root = '';
const examples = {} as Record<(typeof SPLITS)[number], Example[]>;
test.before(async () => {
  root = await mkdtemp(join(tmpdir(), 'grip-shapes-'));
  for (const split of SPLITS) examples[split] = makeExamples(split, N, { questionsPerScene: 4 });
});
test.after(async () => {
  await rm(root, { recursive: true, force: true });
});

// ---- an independent reading of the questions ----------------------------------------------

const CELLS: Record<string, [number, number]> = {
  'top left': [0, 0], top: [0, 1], 'top right': [0, 2], left: [1, 0], center: [1, 1], right: [1, 2],
  'bottom left': [2, 0], bottom: [2, 1], 'bottom right': [2, 2],
};
const STEPS: Record<string, [number, number]> = { 'left of': [0, -1], 'right of': [0, 1], above: [-1, 0], below: [1, 0] };
const NUMBERS = ['zero', 'one', 'two', 'three', 'four', 'five'];

/** The answer to a question about a scene, or a reason the question is not valid for it. */
function expectedAnswer(scene: Scene, question: string): string {
  const at = (row: number, col: number) => scene.objects.find((o) => o.row === row && o.col === col);
  let m: RegExpExecArray | null;
  if ((m = /^what color is the object in the (.+)\?$/.exec(question))) {
    const object = at(...CELLS[m[1]!]!);
    return object ? object.color : 'invalid: empty cell';
  }
  if ((m = /^what shape is the (\w+) object\?$/.exec(question))) {
    const matches = scene.objects.filter((o) => o.color === m![1]);
    return matches.length === 1 ? matches[0]!.shape : `invalid: ${matches.length} ${m[1]} objects`;
  }
  if ((m = /^how many (\w+) objects are there\?$/.exec(question))) return NUMBERS[scene.objects.filter((o) => o.color === m![1]).length]!;
  if ((m = /^how many (\w+)s are there\?$/.exec(question))) return NUMBERS[scene.objects.filter((o) => o.shape === m![1]).length]!;
  if ((m = /^is there a (\w+) (\w+)\?$/.exec(question))) return scene.objects.some((o) => o.color === m![1] && o.shape === m![2]) ? 'yes' : 'no';
  if ((m = /^what shape is (left of|right of|above|below) the (\w+) (\w+)\?$/.exec(question))) {
    const refs = scene.objects.filter((o) => o.color === m![2] && o.shape === m![3]);
    if (refs.length !== 1) return `invalid: ${refs.length} referred objects`;
    const [dRow, dCol] = STEPS[m[1]!]!;
    const along: SceneObject[] = [];
    for (let step = 1; step < 3; step++) {
      const o = at(refs[0]!.row + step * dRow, refs[0]!.col + step * dCol);
      if (o) along.push(o);
    }
    if (!at(refs[0]!.row + dRow, refs[0]!.col + dCol)) return 'invalid: adjacent cell empty';
    if (along.some((o) => o.shape !== along[0]!.shape)) return 'invalid: ambiguous';
    return along[0]!.shape;
  }
  return 'invalid: unknown question form';
}

// ---- determinism and splits -----------------------------------------------------------

test('the same seed gives the same scene and the same PNG bytes', async () => {
  assert.equal(generateScene(12345), generateScene(12345));
  assert.not.equal(generateScene(12345), generateScene(12346));
  const scene = generateScene(777);
  const [a, b] = await Promise.all([renderScene(scene), renderScene(structuredClone(scene))]);
  assert.is(sha256(a), sha256(b), 'PNG bytes of one scene rendered twice');
  assert.equal(makeExamples('validation', 40, { questionsPerScene: 4 }), makeExamples('validation', 40, { questionsPerScene: 4 }));
});

test('a shorter list of examples is a prefix of a longer one', () => {
  assert.equal(makeExamples('train', 10, { questionsPerScene: 4 }), examples.train.slice(0, 10));
});

test('the generator is pinned: the first train examples have not changed', () => {
  // Changes only when the generator changes on purpose (then every exported data set changes too).
  const text = JSON.stringify(examples.train.slice(0, 20));
  assert.is(sha256(text).slice(0, 16), '174deecdba2e24da', `examples: ${text.slice(0, 300)}...`);
});

test('the PNG holds exactly the raw RGB pixels', async () => {
  for (const seed of [1, 2, 3]) {
    const scene = generateScene(seed);
    const { data, info } = await sharp(await renderScene(scene)).raw().toBuffer({ resolveWithObject: true });
    assert.equal([info.width, info.height, info.channels], [96, 96, 3]);
    assert.ok(Buffer.compare(data, Buffer.from(await renderSceneRGB(scene))) === 0, `PNG and raw pixels of scene ${seed} differ`);
  }
});

test('train, validation and test share no scene seed and no scene', () => {
  const seen = new Map<string, string>();
  for (const split of SPLITS) {
    for (const key of new Set(examples[split].flatMap((e) => [`seed ${e.sceneSeed}`, `scene ${JSON.stringify(e.scene.objects)} ${JSON.stringify(e.scene.background)}`]))) {
      const other = seen.get(key);
      assert.ok(other === undefined || other === split, `${key.slice(0, 60)} in both ${other} and ${split}`);
      seen.set(key, split);
    }
  }
  for (const e of examples.test) assert.equal(generateScene(e.sceneSeed), e.scene, `scene of ${e.id} from its seed`);
});

// ---- questions -----------------------------------------------------------------------

test('every answer is right for its scene (recomputed from the objects)', () => {
  for (const split of SPLITS) {
    for (const e of examples[split]) assert.is(e.answer, expectedAnswer(e.scene, e.question), `${e.id}: "${e.question}" about ${JSON.stringify(e.scene.objects)}`);
  }
});

test('questions about one scene are distinct and its evidence objects exist', () => {
  const byScene = new Map<string, Set<string>>();
  for (const e of examples.train) {
    const asked = byScene.get(`${e.sceneIndex}`) ?? new Set<string>();
    assert.not.ok(asked.has(e.question), `${e.id} repeats "${e.question}"`);
    asked.add(e.question);
    byScene.set(`${e.sceneIndex}`, asked);
    for (const i of e.evidence) assert.ok(e.scene.objects[i] !== undefined, `${e.id} evidence ${i}`);
    if (e.kind !== 'count' && e.kind !== 'exists') assert.ok(e.evidence.length > 0, `${e.id} has no evidence`);
  }
});

test('kinds and answers are balanced', () => {
  for (const questionsPerScene of [1, 4]) {
    const list = questionsPerScene === 4 ? examples.train : makeExamples('train', N, { questionsPerScene });
    const share = (test: (e: Example) => boolean, of: Example[]) => of.filter(test).length / of.length;
    for (const kind of QUESTION_KINDS) {
      const s = share((e) => e.kind === kind, list);
      assert.ok(s >= 0.15 && s <= 0.25, `${kind} is ${(100 * s).toFixed(1)}% of the examples (q=${questionsPerScene})`);
    }
    const exists = list.filter((e) => e.kind === 'exists');
    const yes = share((e) => e.answer === 'yes', exists);
    assert.ok(yes >= 0.45 && yes <= 0.55, `yes is ${(100 * yes).toFixed(1)}% of exists answers`);
    const counts = list.filter((e) => e.kind === 'count');
    for (const n of NUMBERS.slice(0, 5)) {
      const s = share((e) => e.answer === n, counts);
      assert.ok(s >= 0.13 && s <= 0.27, `count answer ${n} is ${(100 * s).toFixed(1)}%`);
    }
    for (const [kind, answers] of [['color_at', Object.keys(COLOR_RGB)], ['shape_of_color', ['circle', 'square', 'triangle', 'star']], ['relation', ['circle', 'square', 'triangle', 'star']]] as const) {
      const ofKind = list.filter((e) => e.kind === kind);
      for (const answer of answers) {
        const s = share((e) => e.answer === answer, ofKind), uniform = 1 / answers.length;
        assert.ok(Math.abs(s - uniform) < 0.4 * uniform, `${kind} answer ${answer} is ${(100 * s).toFixed(1)}% (uniform ${(100 * uniform).toFixed(0)}%)`);
      }
    }
  }
});

test('most negatives of exists are hard: the colour or the shape is in the scene', () => {
  const negatives = examples.train.filter((e) => e.kind === 'exists' && e.answer === 'no');
  const hard = negatives.filter((e) => {
    const [, color, shape] = /^is there a (\w+) (\w+)\?$/.exec(e.question)!;
    return e.scene.objects.some((o) => o.color === color || o.shape === shape);
  });
  assert.ok(negatives.length > 100, `${negatives.length} negatives`);
  assert.ok(hard.length / negatives.length >= 0.75, `${hard.length} of ${negatives.length} negatives are hard`);
  const both = hard.filter((e) => {
    const [, color, shape] = /^is there a (\w+) (\w+)\?$/.exec(e.question)!;
    return e.scene.objects.some((o) => o.color === color) && e.scene.objects.some((o) => o.shape === shape);
  });
  assert.ok(both.length > 0, 'some negatives have both the colour and the shape present, on different objects');
});

test('the vocabulary covers every question: our tokenizer never gives <unk>', () => {
  const files = modelTextFiles();
  const tokenizer = TextTokenizer.fromJSON(files['tokenizer.json'], files['tokenizer_config.json'], 'shapes tokenizer.json');
  const unk = tokenizer.tokenId('<unk>');
  assert.is(unk, 3);
  const user = tokenizer.tokenId('user'), colon = tokenizer.tokenId(':'), assistant = tokenizer.tokenId('assistant');
  for (const e of examples.train) {
    for (const word of e.question.replace('?', ' ?').split(' ')) assert.ok(VOCABULARY.includes(word), `"${word}" of "${e.question}" in VOCABULARY`);
    const ids = Array.from(encodePrompt(tokenizer, buildPrompt(tokenizer, e.question, { template: 'llava-1.5' }), 4));
    assert.not.ok(ids.includes(unk!), `<unk> in ${JSON.stringify(ids)} for "${e.question}"`);
    assert.equal(ids.slice(0, 4), [1, user, colon, 4], `the head of ${JSON.stringify(ids)}`);
    assert.equal(ids.slice(-2), [assistant, colon], `the tail of ${JSON.stringify(ids)}`);
    assert.is(tokenizer.decode(ids.slice(4, -2)), e.question);
    assert.ok(tokenizer.tokenId(e.answer)! > 7, `answer "${e.answer}" has its own token`);
  }
  assert.equal([...VOCABULARY], [...VOCABULARY].sort(), 'VOCABULARY is sorted');
});

// ---- pixels and patches --------------------------------------------------------------

const pixel = (rgb: Uint8Array, x: number, y: number) => Array.from(rgb.subarray(3 * (y * 96 + x), 3 * (y * 96 + x) + 3));

test('an object is its colour at its centre and the ground is light grey away from objects', async () => {
  const colors = Object.values(COLOR_RGB);
  for (const [i, a] of colors.entries()) {
    for (const b of colors.slice(i + 1)) assert.ok(Math.hypot(a[0] - b[0], a[1] - b[1], a[2] - b[2]) > 100, `colours ${a} and ${b} are far apart`);
    assert.ok(Math.max(...a) - Math.min(...a) >= 130, `colour ${a} is saturated`);
  }
  for (let seed = 100; seed < 130; seed++) {
    const scene = generateScene(seed);
    const rgb = await renderSceneRGB(scene);
    for (const o of scene.objects) {
      assert.equal(pixel(rgb, Math.floor(o.centerX), Math.floor(o.centerY)), [...COLOR_RGB[o.color]], `centre of ${JSON.stringify(o)}`);
    }
    for (let row = 0; row < 3; row++) {
      for (let col = 0; col < 3; col++) {
        // Cell corners are never covered (half an object + jitter < 16 px); empty cells hold only ground.
        const empty = !scene.objects.some((o) => o.row === row && o.col === col);
        const points = empty ? [[col * 32 + 16, row * 32 + 16], [col * 32 + 5, row * 32 + 27]] : [];
        for (const [x, y] of [[col * 32, row * 32], [col * 32 + 31, row * 32 + 31], ...points] as const) {
          const [r, g, b] = pixel(rgb, x!, y!);
          assert.ok(r === g && g === b && r! >= 185 && r! <= 235, `ground at (${x}, ${y}) of scene ${seed} (${scene.background.kind}) is ${[r, g, b]}`);
          if (scene.background.kind === 'plain') assert.is(r, scene.background.gray);
        }
      }
    }
  }
});

test('patchesOfObject: the centre patch, inside the cell, and every pixel of the object colour', async () => {
  for (let seed = 200; seed < 300; seed++) {
    const scene = generateScene(seed);
    const rgb = await renderSceneRGB(scene);
    for (const o of scene.objects) {
      const patches = patchesOfObject(scene, o);
      const what = `${o.size} ${o.shape} at (${o.centerX}, ${o.centerY}) in scene ${seed}`;
      assert.ok(patches.includes(Math.floor(o.centerY / 8) * 12 + Math.floor(o.centerX / 8)), `the centre patch of ${what}`);
      for (const p of patches) assert.equal(cellOfPatch(p), { row: o.row, col: o.col }, `patch ${p} of ${what} is in its cell`);
      const [lo, hi] = o.size === 'small' ? [2, 9] : [4, 16];
      assert.ok(patches.length >= lo && patches.length <= hi, `${patches.length} patches for ${what}`);
      // Each listed patch holds a pixel mostly covered by the object (its centre is inside, so at least about
      // half its colour: the ground is grey, every colour spreads its channels by 130 or more)...
      for (const p of patches) {
        let strongest = 0;
        for (let y = Math.floor(p / 12) * 8; y < Math.floor(p / 12) * 8 + 8; y++) {
          for (let x = (p % 12) * 8; x < (p % 12) * 8 + 8; x++) strongest = Math.max(strongest, Math.max(...pixel(rgb, x, y)) - Math.min(...pixel(rgb, x, y)));
        }
        assert.ok(strongest >= 50, `patch ${p} of ${what} holds no pixel of the object (largest channel spread ${strongest})`);
      }
      // ...and every fully coloured pixel of the object lies in a listed patch.
      for (let y = o.row * 32; y < o.row * 32 + 32; y++) {
        for (let x = o.col * 32; x < o.col * 32 + 32; x++) {
          if (pixel(rgb, x, y).join() === COLOR_RGB[o.color].join()) assert.ok(patches.includes(patchOfPixel(x, y)), `pixel (${x}, ${y}) of ${what}`);
        }
      }
    }
  }
  const scene = generateScene(1);
  assert.throws(() => patchesOfObject(scene, structuredClone(scene.objects[0]!)), (e: unknown) => e instanceof GripError && e.code === 'ERR_GRIP_RANGE');
});

test('a scene is checked before it is drawn', async () => {
  const scene = generateScene(5);
  const bad = structuredClone(scene);
  bad.objects[0]!.centerX = bad.objects[0]!.col * 32 + 30;
  try {
    await renderScene(bad);
    assert.unreachable('an object across its cell border was drawn');
  } catch (error) {
    assert.instance(error, GripError);
    assert.match((error as Error).message, /^expected a centre that keeps the object inside its cell \[\d+, \d+\] for scene\.objects\[0\]\.centerX but received/);
  }
  assert.throws(() => checkScene({ ...scene, objects: [...scene.objects, { ...scene.objects[0]! }] }, 'scene'), /at most one object per cell/);
  assert.throws(() => makeExamples('dev' as 'test', 1), /expected one of 'train', 'validation', 'test' for split but received/);
  assert.throws(() => makeExamples('train', 1, { questionsPerScene: 0 }), /expected an integer in \[1, 8\] for options.questionsPerScene but received number 0/);
});

// ---- the export the trainer reads ------------------------------------------------------

test('pixel values of a rendered PNG through our processor equal (x/255 - mean)/std in float32 of the raw bytes', async () => {
  const config = parseProcessorConfig(modelTextFiles()['preprocessor_config.json'], 'preprocessor_config.json');
  const f = Math.fround;
  const mean = [0.48145466, 0.4578275, 0.40821073].map(f), std = [0.26862954, 0.26130258, 0.27577711].map(f);
  // What torch computes: x.float() / 255, - mean, / std, each op rounded to float32.
  const reference = (rgb: Uint8Array) => {
    const out = new Float32Array(3 * 96 * 96);
    for (let c = 0; c < 3; c++) for (let p = 0; p < 96 * 96; p++) out[c * 96 * 96 + p] = f(f(f(rgb[3 * p + c]! / 255) - mean[c]!) / std[c]!);
    return out;
  };
  const compare = (got: Float32Array, want: Float32Array, what: string) => {
    let mismatches = 0, first = -1;
    for (let i = 0; i < want.length; i++) if (got[i] !== want[i]) { mismatches++; if (first < 0) first = i; }
    assert.is(mismatches, 0, `${what}: ${mismatches} values differ, first at ${first}: ${got[first]} vs ${want[first]}`);
  };
  for (const seed of [11, 12]) {
    const scene = generateScene(seed);
    const pixels = await preprocessImage(await renderScene(scene), config);
    assert.equal(pixels.shape, [3, 96, 96]);
    compare(pixels.host as Float32Array, reference(await renderSceneRGB(scene)), `scene ${seed}`);
  }
  // Every byte value, as raw pixels (no resize at 96x96).
  const all = Uint8Array.from({ length: 96 * 96 * 3 }, (_, i) => (i * 7) % 256);
  compare((await preprocessImage({ data: all, width: 96, height: 96, channels: 3 }, config)).host as Float32Array, reference(all), 'all byte values');
});

test('the export writes images.u8, examples.jsonl and meta.json as the trainer reads them', async () => {
  const out = join(root, 'data'), modelDir = join(root, 'model');
  const meta = await exportTestbed({ out, modelDir, counts: { train: 24, validation: 8, test: 6 }, questionsPerScene: 4 }) as {
    vocab: string[]; counts: Record<string, { scenes: number; examples: number }>; image_token_id: number;
  };
  assert.equal(JSON.parse(await readFile(join(out, 'meta.json'), 'utf8')), meta);
  assert.equal(meta.counts.train, { scenes: 6, examples: 24, by_kind: meta.counts.train!['by_kind' as 'scenes'] });
  assert.equal(meta.counts.test!.scenes, 2);
  const tokenizer = await TextTokenizer.load(modelDir);
  assert.equal(meta.vocab, Array.from({ length: tokenizer.vocabSize }, (_, id) => tokenizer.idToToken(id)));

  // Same structure as the tiny-llava fixture's files: the same keys at the top and in the tokenizer's parts.
  for (const name of ['tokenizer.json', 'tokenizer_config.json', 'preprocessor_config.json']) {
    const ours = JSON.parse(await readFile(join(modelDir, name), 'utf8')), fixture = JSON.parse(await readFile(join('test/fixtures/tiny-llava', name), 'utf8'));
    const extra = name === 'tokenizer_config.json' ? ['clean_up_tokenization_spaces'] : [];
    assert.equal(Object.keys(ours), [...Object.keys(fixture), ...extra], `keys of ${name}`);
    if (name === 'tokenizer.json') {
      for (const part of ['added_tokens', 'normalizer', 'pre_tokenizer', 'post_processor', 'decoder']) assert.equal(ours[part], fixture[part], `${part} of ${name}`);
      assert.equal(Object.keys(ours.model), Object.keys(fixture.model));
    }
  }

  for (const split of SPLITS) {
    const images = await readFile(join(out, split, 'images.u8'));
    const records = (await readFile(join(out, split, 'examples.jsonl'), 'utf8')).trimEnd().split('\n').map((line) => JSON.parse(line) as ExampleRecord);
    const expected = makeExamples(split, records.length, { questionsPerScene: 4 });
    assert.is(images.length, meta.counts[split]!.scenes * 96 * 96 * 3);
    for (const [i, r] of records.entries()) {
      const e = expected[i]!;
      assert.equal([r.id, r.scene, r.kind, r.question, r.answer], [e.id, e.sceneIndex, e.kind, e.question, e.answer]);
      assert.equal(r.input_ids, Array.from(encodePrompt(tokenizer, buildPrompt(tokenizer, e.question, { template: 'llava-1.5' }), 4)));
      assert.is(r.input_ids.filter((id) => id === meta.image_token_id).length, 1);
      assert.is(meta.vocab[r.answer_id], e.answer);
      const row = images.subarray(r.scene * 27648, (r.scene + 1) * 27648);
      assert.ok(Buffer.compare(row, Buffer.from(await renderSceneRGB(e.scene))) === 0, `images.u8 row ${r.scene} is the scene of ${r.id}`);
      assert.equal(r.evidence_patches, [...new Set(e.evidence.flatMap((k) => patchesOfObject(e.scene, e.scene.objects[k]!)))].sort((a, b) => a - b));
    }
  }
});

test.run();
