// export.ts — writes the shapes VQA data set the PyTorch trainer reads
// (images as raw uint8, examples as JSON lines tokenised by our runtime) and
// the model files that depend only on the vocabulary. See README.md here for the format.
//
//   node --import tsx tools/testbed/export.ts --out tools/testbed/data \
//     --train 60000 --validation 1000 --test 1000 [--questions-per-scene 4]
import { mkdir, open, rename, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import {
  ANSWERS, COLORS, IMAGE_SIZE, PATCH_SIZE, PROMPT_TEMPLATE, QUESTION_KINDS, SHAPES, SPLITS,
  makeExamples, patchGridSize, patchesOfObject, renderSceneRGB, type Example, type QuestionKind, type Scene, type Split,
} from '../../lib/data/shapes/index.ts';
import { TextTokenizer, buildPrompt, encodePrompt } from '../../lib/model/tokenizer.ts';
import { BOS_ID, EOS_ID, IMAGE_TOKEN_ID, PAD_ID, UNK_ID, modelTextFiles, tokensById } from './tokenizer.ts';

export const DEFAULT_MODEL_DIR = 'models/shapes-llava-tiny';
/** Bumped when a file's layout changes; the trainer checks it. */
export const FORMAT = 'grip-shapes-vqa/1';

export interface ExportOptions {
  /** Output folder: <out>/<split>/{images.u8, examples.jsonl, scenes.jsonl} and <out>/meta.json. */
  out: string;
  /** Where tokenizer.json, tokenizer_config.json and preprocessor_config.json go. */
  modelDir?: string;
  /** Examples per split (questionsPerScene of them share a scene). */
  counts: Record<Split, number>;
  questionsPerScene?: number;
  /** Scenes rendered at once (sharp runs each on one thread). */
  concurrency?: number;
  /** Progress lines; default: none. */
  progress?: (line: string, final: boolean) => void;
}

/** One line of examples.jsonl. */
export interface ExampleRecord {
  id: string;
  /** Row of images.u8 (and line of scenes.jsonl). */
  scene: number;
  kind: QuestionKind;
  question: string;
  answer: string;
  /** BOS, "user", ":", <image> (4), the question's tokens, "assistant", ":". */
  input_ids: number[];
  answer_id: number;
  /** The objects the answer rests on (indices into the scene's objects) and the patches they cover (row-major over 12x12). */
  evidence: number[];
  evidence_patches: number[];
}

/** Writes a file atomically: a temp file beside it, renamed over it. */
async function writeAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const temp = `${path}.${process.pid}.tmp`;
  await writeFile(temp, data);
  await rename(temp, path);
}

/** Renders scenes `concurrency` at a time and hands their pixels over in order. */
async function renderInOrder(scenes: Scene[], concurrency: number, onScene: (index: number, rgb: Uint8Array) => Promise<void>): Promise<void> {
  const batch = Math.max(concurrency, 64);
  for (let start = 0; start < scenes.length; start += batch) {
    const chunk = scenes.slice(start, start + batch);
    const pixels: Uint8Array[] = new Array(chunk.length);
    let next = 0;
    await Promise.all(Array.from({ length: Math.min(concurrency, chunk.length) }, async () => {
      while (next < chunk.length) {
        const i = next++;
        pixels[i] = await renderSceneRGB(chunk[i]!);
      }
    }));
    for (let i = 0; i < chunk.length; i++) await onScene(start + i, pixels[i]!);
  }
}

const seconds = (ms: number) => (ms < 60_000 ? `${(ms / 1000).toFixed(0)}s` : `${Math.floor(ms / 60_000)}m${String(Math.round((ms % 60_000) / 1000)).padStart(2, '0')}s`);

/** Majority answer of each question text in train, scored on another split (the accuracy a model that ignores the image can reach). */
function blindAccuracy(train: Example[], split: Example[]): Record<string, number> {
  const byQuestion = new Map<string, Map<string, number>>();
  const byKind = new Map<string, Map<string, number>>();
  for (const e of train) {
    for (const [map, key] of [[byQuestion, e.question], [byKind, e.kind]] as const) {
      const tally = map.get(key) ?? new Map<string, number>();
      tally.set(e.answer, (tally.get(e.answer) ?? 0) + 1);
      map.set(key, tally);
    }
  }
  const majority = (tally: Map<string, number> | undefined) => (tally ? [...tally].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))[0]![0] : undefined);
  const hits: Record<string, [number, number]> = {};
  for (const e of split) {
    const guess = majority(byQuestion.get(e.question)) ?? majority(byKind.get(e.kind));
    const tally = (hits[e.kind] ??= [0, 0]);
    tally[0] += guess === e.answer ? 1 : 0;
    tally[1]++;
  }
  return Object.fromEntries(QUESTION_KINDS.filter((k) => hits[k]).map((k) => [k, Math.round((hits[k]![0] / hits[k]![1]) * 1e4) / 1e4]));
}

/** Writes the model text files and every split; returns meta.json's content. */
export async function exportTestbed(options: ExportOptions): Promise<Record<string, unknown>> {
  const modelDir = options.modelDir ?? DEFAULT_MODEL_DIR;
  const questionsPerScene = options.questionsPerScene ?? 4;
  const concurrency = options.concurrency ?? 2;
  const progress = options.progress ?? (() => undefined);

  await mkdir(modelDir, { recursive: true });
  for (const [name, json] of Object.entries(modelTextFiles())) await writeAtomic(join(modelDir, name), `${JSON.stringify(json, null, 2)}\n`);
  const tokenizer = await TextTokenizer.load(modelDir);
  const vocab = tokensById();

  const counts: Record<string, unknown> = {};
  const answers: Record<string, unknown> = {};
  const examplesBySplit = {} as Record<Split, Example[]>;
  let maxInputLength = 0;
  for (const split of SPLITS) {
    const started = performance.now();
    const examples = makeExamples(split, options.counts[split], { questionsPerScene });
    examplesBySplit[split] = examples;
    const scenes: Scene[] = [];
    for (const e of examples) if (e.sceneIndex === scenes.length) scenes.push(e.scene);
    const generatedMs = performance.now() - started;

    const dir = join(options.out, split);
    await mkdir(dir, { recursive: true });
    const imagesPath = join(dir, 'images.u8');
    const imagesTemp = `${imagesPath}.${process.pid}.tmp`;
    const file = await open(imagesTemp, 'w');
    let lastReport = performance.now(); // the first report after a second, when the rate means something
    try {
      await renderInOrder(scenes, concurrency, async (index, rgb) => {
        await file.write(rgb, 0, rgb.length, index * rgb.length);
        const now = performance.now();
        const done = index + 1;
        if (now - lastReport > 1000 || done === scenes.length) {
          lastReport = now;
          const rate = done / ((now - started - generatedMs) / 1000);
          progress(`${split}: ${done}/${scenes.length} scenes, ${rate.toFixed(0)} scenes/s, ETA ${seconds(((scenes.length - done) / rate) * 1000)}`, false);
        }
      });
    } finally {
      await file.close();
    }
    await rename(imagesTemp, imagesPath);

    const records = examples.map((e): ExampleRecord => {
      const inputIds = Array.from(encodePrompt(tokenizer, buildPrompt(tokenizer, e.question, { template: 'llava-1.5' }), IMAGE_TOKEN_ID));
      if (inputIds.includes(UNK_ID)) throw new Error(`expected only known words for question "${e.question}" but the tokenizer gave <unk>`);
      const answerId = tokenizer.tokenId(e.answer);
      if (answerId === undefined) throw new Error(`expected a token for answer "${e.answer}" but the vocabulary has none`);
      maxInputLength = Math.max(maxInputLength, inputIds.length);
      const evidencePatches = new Set(e.evidence.flatMap((i) => patchesOfObject(e.scene, e.scene.objects[i]!)));
      return {
        id: e.id, scene: e.sceneIndex, kind: e.kind, question: e.question, answer: e.answer,
        input_ids: inputIds, answer_id: answerId, evidence: e.evidence, evidence_patches: [...evidencePatches].sort((a, b) => a - b),
      };
    });
    await writeAtomic(join(dir, 'examples.jsonl'), records.map((r) => `${JSON.stringify(r)}\n`).join(''));
    await writeAtomic(join(dir, 'scenes.jsonl'), scenes.map((s, index) => `${JSON.stringify({ index, ...s })}\n`).join(''));

    const byKind = Object.fromEntries(QUESTION_KINDS.map((k) => [k, 0]));
    const answerTally = Object.fromEntries(QUESTION_KINDS.map((k) => [k, Object.fromEntries(ANSWERS[k].map((a) => [a, 0]))])) as Record<string, Record<string, number>>;
    for (const e of examples) {
      byKind[e.kind]!++;
      answerTally[e.kind]![e.answer] = (answerTally[e.kind]![e.answer] ?? 0) + 1;
    }
    counts[split] = { scenes: scenes.length, examples: examples.length, by_kind: byKind };
    answers[split] = answerTally;
    progress(`${split}: ${scenes.length} scenes, ${examples.length} examples in ${seconds(performance.now() - started)} (questions ${seconds(generatedMs)})`, true);
  }

  const meta = {
    format: FORMAT,
    image_size: IMAGE_SIZE,
    patch: PATCH_SIZE,
    grid: patchGridSize(PATCH_SIZE),
    num_patches: patchGridSize(PATCH_SIZE) ** 2,
    channels: 3,
    image_layout: `uint8 [num_scenes, ${IMAGE_SIZE}, ${IMAGE_SIZE}, 3], row-major, RGB`,
    pixel_values: '(x / 255 - image_mean) / image_std per channel, float32, then [3, H, W]',
    image_mean: [0.48145466, 0.4578275, 0.40821073],
    image_std: [0.26862954, 0.26130258, 0.27577711],
    vocab,
    vocab_size: vocab.length,
    image_token_id: IMAGE_TOKEN_ID,
    eos: EOS_ID,
    bos: BOS_ID,
    pad: PAD_ID,
    unk: UNK_ID,
    prompt_template: PROMPT_TEMPLATE,
    max_input_length: maxInputLength,
    questions_per_scene: questionsPerScene,
    answers_by_kind: Object.fromEntries(QUESTION_KINDS.map((k) => [k, ANSWERS[k]])),
    answer_ids_by_kind: Object.fromEntries(QUESTION_KINDS.map((k) => [k, ANSWERS[k].map((a) => tokenizer.tokenId(a)!)])),
    colors: COLORS,
    shapes: SHAPES,
    counts,
    answers,
    blind_accuracy: Object.fromEntries((['validation', 'test'] as const).map((s) => [s, blindAccuracy(examplesBySplit.train, examplesBySplit[s])])),
  };
  await mkdir(options.out, { recursive: true });
  await writeAtomic(join(options.out, 'meta.json'), `${JSON.stringify(meta, null, 2)}\n`);
  return meta;
}

// ---- command line -----------------------------------------------------------------------

const USAGE = 'usage: node --import tsx tools/testbed/export.ts --out DIR --train N --validation N --test N [--questions-per-scene 4] [--model-dir models/shapes-llava-tiny] [--concurrency 2]';

function count(value: string | undefined, name: string, fallback?: number): number {
  if (value === undefined && fallback !== undefined) return fallback;
  const n = Number(value);
  if (value === undefined || !Number.isInteger(n) || n < 0) throw new Error(`expected a non-negative integer for --${name} but received ${value ?? 'nothing'}\n${USAGE}`);
  return n;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      out: { type: 'string' },
      train: { type: 'string' },
      validation: { type: 'string' },
      test: { type: 'string' },
      'questions-per-scene': { type: 'string' },
      'model-dir': { type: 'string' },
      concurrency: { type: 'string' },
    },
  });
  if (values.out === undefined) throw new Error(`expected --out DIR\n${USAGE}`);
  const questionsPerScene = count(values['questions-per-scene'], 'questions-per-scene', 4);
  const concurrency = Math.max(1, count(values.concurrency, 'concurrency', 2));
  sharp.concurrency(1); // one libvips thread per image; `concurrency` images at once
  const started = performance.now();
  const tty = process.stderr.isTTY;
  const meta = await exportTestbed({
    out: values.out,
    modelDir: values['model-dir'] ?? DEFAULT_MODEL_DIR,
    counts: { train: count(values.train, 'train'), validation: count(values.validation, 'validation'), test: count(values.test, 'test') },
    questionsPerScene,
    concurrency,
    // On a terminal one line rewritten in place; in a log one line per report.
    progress: (line, final) => process.stderr.write(tty ? `\r${line}\x1b[K${final ? '\n' : ''}` : `${line}\n`),
  });
  process.stderr.write(`wrote ${resolve(values.out)} and ${resolve(values['model-dir'] ?? DEFAULT_MODEL_DIR)} in ${seconds(performance.now() - started)}\n`);
  process.stderr.write(`blind accuracy (train majority per question): ${JSON.stringify(meta.blind_accuracy)}\n`);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  main().catch((error: unknown) => {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  });
}
