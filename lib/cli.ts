#!/usr/bin/env node
// cli.ts — the `grip` command. `grip run` answers a question about an image
// with a LLaVA checkpoint, optionally pruning the visual tokens; `grip serve`
// answers OpenAI-compatible chat completions over HTTP (lib/serve/).
import { parseArgs } from 'node:util';
import { GripError } from './errors.js';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeExamples, renderScene } from './data/shapes/index.js';
import { defaultPruner, embeddedModelDir, pixelsToRgb, runDemo } from './demo.js';
import { keptPicturesUnsupported, keptStrip, type KeptPicture } from './eval/pictures.js';
import { clipProcessorOf, preprocessImage } from './model/processor.js';
import { evaluate } from './eval/evaluate.js';
import { comparisonTable, markdownTable, paretoSvg, svgToPng } from './eval/report.js';
import { pairedComparisons } from './eval/stats.js';
import { ATTENTION_SOURCES, QUERY_POOLINGS, type Pruner, type PrunePoint } from './prune/pruner.js';
import { parseBudgets, type Budgets } from './train/data.js';
import { REWARD_NAMES, TRAIN_DEFAULTS, WARMUP_LOSSES, type RewardName } from './train/defaults.js';
import { shapesTrainingSet, trainGrip } from './train/run.js';
import { loadVLM, type GenerateResult } from './model/vlm.js';
import { GripPruner } from './prune/grip.js';
import { heuristicBase, makePruner, PRUNER_NAMES, prunersFromList } from './prune/registry.js';
import { startServer } from './serve/server.js';

const pointText = (p: PrunePoint) => (p === 'pre-llm' ? 'pre-llm' : String(p.layer));
const budgetsText = (b: Budgets) => ('range' in b ? b.range.join(':') : b.list.join(','));

const USAGE = `usage: grip <command> [options]

commands:
  run     answer a question about an image
          --model DIR        checkpoint directory (Hugging Face layout; default: the embedded model)
          --image FILE       the image (PNG, JPEG, WebP, ...)
          --prompt TEXT      the question
          --keep RATIO       keep ratio of visual tokens in (0, 1] (default 1)
          --pruner NAME      grip | ${PRUNER_NAMES.join(' | ')} (default: none; when --keep < 1
                             the model's own GRIP pruner if it has one, else fastv)
          --grip DIR         the GRIP pruner to use (default: DIR/grip of the model)
          --stream           print the answer token by token as it is generated
          --layer K          prune at decoder layer K (fastv: default 2; the others default to pre-LLM)
          --max-new-tokens N (default 32)
          --backend B        auto | cpu | cuda (default auto)
          --threads N        CPU threads (default: all cores)
          --json             print the result as JSON
  serve   OpenAI-compatible HTTP: POST /v1/chat/completions (image as a data: URL, keep_ratio,
          pruner, stream), GET /v1/models, /health, /metrics (docs/serve.md)
          --model DIR        checkpoint directory (default: the embedded model)
          --host HOST        (default 127.0.0.1)   --port N (default 8080; 0: any free port)
          --max-batch N      rows per batch (default 8)   --max-queue N  waiting requests (default 64)
          --keep RATIO       keep ratio of a request without keep_ratio (default 1)
          --pruner NAME      grip | ${PRUNER_NAMES.join(' | ')} for a request without pruner
                             (default: none at keep 1, else the model's GRIP pruner, else fastv)
          --grip DIR         the GRIP pruner of --pruner grip (default: DIR/grip of the model)
          --max-body BYTES   larger request bodies get 413 (default 16777216)
          --backend B --threads N   as for run
  demo    answer questions at keep ratios 1, 0.5, 0.25, 0.11 on the embedded model
          (or --model DIR), with accuracy on test questions of the shapes testbed,
          prefill time, and pictures of the kept patches
          --image FILE --prompt TEXT   your own image and question instead
          --out DIR          where the pictures go (default ./grip-demo)
          --questions N      test questions for the accuracy table (default 300)
  train   train a GRIP pruner: supervised warm-up, then GRPO (the defaults are the shipped
          pruner's recipe: grip train --out DIR alone retrains it)
          --model DIR        the VLM (default: the embedded model)
          --out DIR          where the pruner, checkpoints and train.jsonl go
          --data shapes[:N]  training questions (the shapes testbed's train split; default N ${TRAIN_DEFAULTS.trainQuestions})
          --point pre-llm|K  prune point (default ${pointText(TRAIN_DEFAULTS.point)})
          --warmup-steps N (default ${TRAIN_DEFAULTS.warmupSteps}) --steps N (default ${TRAIN_DEFAULTS.steps})
          --group G (default ${TRAIN_DEFAULTS.group}) --prompts-per-step P (default ${TRAIN_DEFAULTS.promptsPerStep})
          --budgets LOW:HIGH | R1,R2,...   keep ratios (default ${budgetsText(TRAIN_DEFAULTS.budgets)})
          --reward loglik|match|fidelity (default ${TRAIN_DEFAULTS.reward}) --beta B (default ${TRAIN_DEFAULTS.beta})
          --lr LR (default ${TRAIN_DEFAULTS.lr}) --hidden H (default ${TRAIN_DEFAULTS.hidden}) --rank R (default ${TRAIN_DEFAULTS.rank})
          --teacher text-tokens|last-token|cls   the warm-up's teacher attention (default ${TRAIN_DEFAULTS.teacher})
          --attention-layer K  pre-LLM point: the teacher is the attention of layer K - 1 (default ${TRAIN_DEFAULTS.attentionLayer})
          --query mean-text-after-image|last-token   the scorer's text query (default ${TRAIN_DEFAULTS.queryPooling})
          --warmup-loss listwise|pairwise   the warm-up's loss (default ${TRAIN_DEFAULTS.warmupLoss})
          --teacher-temperature T   teacher ∝ attention^(1/T): < 1 sharpens, > 1 flattens (default ${TRAIN_DEFAULTS.teacherTemperature})
          --redundancy L     each kept token pays L times its largest cosine to those kept
                             before it, in training and at inference (default ${TRAIN_DEFAULTS.redundancy}; 0: top-k)
          --seed S (default ${TRAIN_DEFAULTS.seed}) --checkpoint-every N (default ${TRAIN_DEFAULTS.checkpointEvery}) --resume
          --threads N        CPU threads (default ${TRAIN_DEFAULTS.threads}: the run reproduces byte for byte)
  eval    accuracy and prefill time per pruner and keep ratio, a table and a Pareto plot
          --model DIR --pruners grip,warmup,fastv,... --ratios 0.11,0.25,...
          (NAME=DIR in --pruners evaluates the GRIP pruner in DIR as NAME;
           NAME:key=value a heuristic with settings, e.g. cdpruner:theta=0.25,
           keys layer, seed, contextual, theta; eval.md compares grip with
           the best heuristic at each ratio: 95% intervals, McNemar p)
          --split test|validation --questions N --grip DIR --out DIR
  help    this text
`;

async function run(argv: string[], signal: AbortSignal): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      model: { type: 'string' }, image: { type: 'string' }, prompt: { type: 'string' },
      keep: { type: 'string' }, pruner: { type: 'string' }, layer: { type: 'string' }, grip: { type: 'string' },
      'max-new-tokens': { type: 'string' }, backend: { type: 'string' }, threads: { type: 'string' },
      json: { type: 'boolean' }, stream: { type: 'boolean' },
    },
    strict: true,
  });
  for (const required of ['image', 'prompt'] as const) {
    if (values[required] === undefined) throw new GripError('ERR_GRIP_RANGE', `expected --${required} for grip run but received nothing`);
  }
  if (values.json && values.stream) throw new GripError('ERR_GRIP_RANGE', 'expected --json or --stream for grip run but received both');
  const number = (name: string, text: string | undefined): number | undefined => {
    if (text === undefined) return undefined;
    const value = Number(text);
    if (text.trim() === '' || !Number.isFinite(value)) throw new GripError('ERR_GRIP_RANGE', `expected a number for --${name} but received "${text}"`);
    return value;
  };
  const keepRatio = number('keep', values.keep) ?? 1;
  const layer = number('layer', values.layer);
  const threads = number('threads', values.threads);
  choice('pruner', values.pruner, ['grip', ...PRUNER_NAMES]);
  if (values.grip !== undefined && values.pruner !== undefined && values.pruner !== 'grip') {
    throw new GripError('ERR_GRIP_RANGE', `expected --pruner grip (or no --pruner) with --grip but received --pruner ${values.pruner}`);
  }
  const model = await loadVLM(values.model ?? embeddedModelDir(), {
    backend: (values.backend ?? 'auto') as 'auto',
    ...(threads !== undefined ? { threads } : {}),
    signal,
  });
  let pruner: Pruner | undefined;
  if (values.pruner === 'grip' || values.grip !== undefined) {
    const loaded = await GripPruner.load(values.grip ?? join(model.dir, 'grip'));
    loaded.checkModel(model);
    pruner = loaded;
  } else if (values.pruner !== undefined) {
    pruner = makePruner(values.pruner, layer === undefined ? {} : { layer });
  } else if (keepRatio < 1) {
    pruner = await defaultPruner(model);
  }
  const maxNewTokens = number('max-new-tokens', values['max-new-tokens']) ?? 32;
  const request = { image: values.image!, prompt: values.prompt!, pruner, keepRatio, maxNewTokens, signal };
  let result: GenerateResult | undefined;
  if (values.stream) {
    for await (const event of model.stream(request)) {
      if (event.type === 'token') process.stdout.write(event.text);
      else result = event.result;
    }
    process.stdout.write('\n');
  } else {
    result = await model.generate(request);
  }
  if (values.json) {
    console.log(JSON.stringify({ ...result!, tokenIds: Array.from(result!.tokenIds), kept: { ...result!.kept, indices: Array.from(result!.kept.indices) } }, null, 2));
    return;
  }
  const t = result!.timings;
  if (!values.stream) console.log(result!.text);
  console.error(
    `[grip] backend ${model.backend}, pruner ${pruner?.name ?? 'none'}, kept ${result!.kept.indices.length}/${result!.kept.numImageTokens} visual tokens, prefill ${result!.prefillTokens} tokens\n` +
      `[grip] preprocess ${t.preprocessMs.toFixed(1)} ms, vision ${t.visionMs.toFixed(1)} ms, prune ${t.pruneMs.toFixed(1)} ms, prefill ${t.prefillMs.toFixed(1)} ms, decode ${t.decodeMs.toFixed(1)} ms (${result!.tokenIds.length} tokens)`,
  );
}

async function serve(argv: string[], signal: AbortSignal): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      model: { type: 'string' }, host: { type: 'string' }, port: { type: 'string' }, 'max-batch': { type: 'string' }, 'max-queue': { type: 'string' },
      keep: { type: 'string' }, pruner: { type: 'string' }, grip: { type: 'string' }, 'max-body': { type: 'string' },
      backend: { type: 'string' }, threads: { type: 'string' },
    },
    strict: true,
  });
  const port = option('port', values.port, (v) => Number.isInteger(v) && v >= 0 && v <= 65535, 'a port in [0, 65535]');
  const maxBatch = option('max-batch', values['max-batch'], positiveInteger, 'a positive integer');
  const maxQueue = option('max-queue', values['max-queue'], positiveInteger, 'a positive integer');
  const keepRatio = option('keep', values.keep, (v) => v > 0 && v <= 1, 'a number in (0, 1]');
  const maxBodyBytes = option('max-body', values['max-body'], positiveInteger, 'a positive integer');
  const threads = option('threads', values.threads, positiveInteger, 'a positive integer');
  choice('pruner', values.pruner, ['grip', ...PRUNER_NAMES]);
  const backend = choice('backend', values.backend, ['auto', 'cpu', 'cuda'] as const);
  if (values.grip !== undefined && values.pruner !== undefined && values.pruner !== 'grip') {
    throw new GripError('ERR_GRIP_RANGE', `expected --pruner grip (or no --pruner) with --grip but received --pruner ${values.pruner}`);
  }
  const model = await loadVLM(values.model ?? embeddedModelDir(), { backend: backend ?? 'auto', ...(threads !== undefined ? { threads } : {}), signal });
  const pick = <T>(key: string, value: T | undefined) => (value === undefined ? {} : { [key]: value });
  const server = await startServer({
    model, host: values.host ?? '127.0.0.1', port: port ?? 8080,
    ...pick('maxBatch', maxBatch), ...pick('maxQueue', maxQueue), ...pick('keepRatio', keepRatio), ...pick('maxBodyBytes', maxBodyBytes),
    ...pick('pruner', values.grip !== undefined ? 'grip' : values.pruner), ...pick('gripDir', values.grip),
  });
  console.log(`grip serve: ${server.modelId} on ${model.backend} at ${server.url} (POST /v1/chat/completions; keep ${keepRatio ?? 1}, pruner ${values.grip !== undefined ? 'grip' : values.pruner ?? ((keepRatio ?? 1) < 1 ? 'the model\'s own' : 'none')})`);
  // SIGTERM (or Ctrl-C) drains: in-flight requests are answered, new ones get 503, then the process exits.
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', () => resolve());
    if (signal.aborted) resolve();
    else signal.addEventListener('abort', () => resolve(), { once: true });
  });
  console.log('grip serve: draining');
  await server.close();
  console.log('grip serve: closed');
}

async function demo(argv: string[], signal: AbortSignal): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: { model: { type: 'string' }, image: { type: 'string' }, prompt: { type: 'string' }, out: { type: 'string' }, questions: { type: 'string' } },
    strict: true,
  });
  const questions = values.questions === undefined ? undefined : Number(values.questions);
  if (questions !== undefined && !(Number.isInteger(questions) && questions > 0)) {
    throw new GripError('ERR_GRIP_RANGE', `expected a positive integer for --questions but received "${values.questions}"`);
  }
  await runDemo({
    ...(values.model !== undefined ? { modelDir: values.model } : {}),
    ...(values.image !== undefined ? { image: values.image } : {}),
    ...(values.prompt !== undefined ? { prompt: values.prompt } : {}),
    ...(values.out !== undefined ? { outDir: values.out } : {}),
    ...(questions !== undefined ? { questions } : {}),
    signal,
  });
}

function option(name: string, text: string | undefined, test: (v: number) => boolean, expected: string): number | undefined {
  if (text === undefined) return undefined;
  const value = Number(text);
  if (text.trim() === '' || !test(value)) throw new GripError('ERR_GRIP_RANGE', `expected ${expected} for --${name} but received "${text}"`);
  return value;
}
const positiveInteger = (v: number) => Number.isInteger(v) && v > 0;

/** A flag whose value must be one of `allowed` (undefined when absent). */
function choice<T extends string>(name: string, text: string | undefined, allowed: readonly T[]): T | undefined {
  if (text === undefined) return undefined;
  if (!(allowed as readonly string[]).includes(text)) throw new GripError('ERR_GRIP_RANGE', `expected one of ${allowed.join(', ')} for --${name} but received "${text}"`);
  return text as T;
}

function parsePoint(text: string | undefined): PrunePoint | undefined {
  if (text === undefined) return undefined;
  if (text === 'pre-llm') return 'pre-llm';
  const layer = Number(text);
  if (!Number.isInteger(layer)) throw new GripError('ERR_GRIP_RANGE', `expected pre-llm or a layer number for --point but received "${text}"`);
  return { layer };
}

async function train(argv: string[], signal: AbortSignal): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      model: { type: 'string' }, out: { type: 'string' }, data: { type: 'string' }, point: { type: 'string' },
      'warmup-steps': { type: 'string' }, steps: { type: 'string' }, group: { type: 'string' }, 'prompts-per-step': { type: 'string' },
      budgets: { type: 'string' }, reward: { type: 'string' }, beta: { type: 'string' }, lr: { type: 'string' },
      hidden: { type: 'string' }, rank: { type: 'string' }, seed: { type: 'string' }, 'checkpoint-every': { type: 'string' },
      resume: { type: 'boolean' }, threads: { type: 'string' }, teacher: { type: 'string' }, 'attention-layer': { type: 'string' }, query: { type: 'string' },
      'warmup-loss': { type: 'string' }, 'teacher-temperature': { type: 'string' }, redundancy: { type: 'string' },
    },
    strict: true,
  });
  if (values.out === undefined) throw new GripError('ERR_GRIP_RANGE', 'expected --out for grip train but received nothing');
  const teacher = choice('teacher', values.teacher, ATTENTION_SOURCES);
  const query = choice('query', values.query, QUERY_POOLINGS);
  const warmupLoss = choice('warmup-loss', values['warmup-loss'], WARMUP_LOSSES);
  const teacherTemperature = option('teacher-temperature', values['teacher-temperature'], (v) => v > 0 && Number.isFinite(v), 'a finite number > 0');
  const redundancy = option('redundancy', values.redundancy, (v) => v >= 0 && Number.isFinite(v), 'a finite number >= 0');
  const data = values.data ?? 'shapes';
  const match = /^shapes(?::(\d+))?$/.exec(data);
  if (!match) throw new GripError('ERR_GRIP_UNSUPPORTED', `expected shapes or shapes:N for --data but received "${data}"`);
  const reward = values.reward;
  if (reward !== undefined && !(REWARD_NAMES as readonly string[]).includes(reward)) throw new GripError('ERR_GRIP_RANGE', `expected loglik, match or fidelity for --reward but received "${reward}"`);
  const threads = option('threads', values.threads, positiveInteger, 'a positive integer');
  const model = await loadVLM(values.model ?? embeddedModelDir(), { signal, threads: threads ?? TRAIN_DEFAULTS.threads });
  const examples = await shapesTrainingSet(match[1] ? Number(match[1]) : TRAIN_DEFAULTS.trainQuestions);
  const int = (name: keyof typeof values) => option(name, values[name] as string | undefined, positiveInteger, 'a positive integer');
  const num = (name: keyof typeof values) => option(name, values[name] as string | undefined, (v) => Number.isFinite(v) && v >= 0, 'a number >= 0');
  const pick = <T>(key: string, value: T | undefined) => (value === undefined ? {} : { [key]: value });
  await trainGrip(model, examples, {
    out: values.out, resume: values.resume ?? false, signal,
    ...pick('point', parsePoint(values.point)), ...pick('budgets', values.budgets === undefined ? undefined : parseBudgets(values.budgets)),
    ...pick('warmupSteps', option('warmup-steps', values['warmup-steps'], (v) => Number.isInteger(v) && v >= 0, 'an integer >= 0')),
    ...pick('steps', int('steps')), ...pick('reward', values.reward as RewardName | undefined),
    ...pick('group', int('group')), ...pick('promptsPerStep', int('prompts-per-step')), ...pick('beta', num('beta')),
    ...pick('lr', num('lr')), ...pick('hidden', int('hidden')), ...pick('rank', int('rank')),
    ...pick('seed', option('seed', values.seed, (v) => Number.isInteger(v) && v >= 0, 'an integer >= 0')),
    ...pick('checkpointEvery', int('checkpoint-every')), ...pick('teacher', teacher),
    ...pick('attentionLayer', int('attention-layer')), ...pick('queryPooling', query),
    ...pick('warmupLoss', warmupLoss), ...pick('teacherTemperature', teacherTemperature), ...pick('redundancy', redundancy),
  });
  console.log(`trained pruner: ${values.out} (grip.json, pruner.safetensors; warm-up policy in ${values.out}/warmup, log in ${values.out}/train.jsonl)`);
}

async function evalCommand(argv: string[], signal: AbortSignal): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      model: { type: 'string' }, pruners: { type: 'string' }, ratios: { type: 'string' }, split: { type: 'string' },
      questions: { type: 'string' }, grip: { type: 'string' }, out: { type: 'string' }, threads: { type: 'string' },
    },
    strict: true,
  });
  const threads = option('threads', values.threads, positiveInteger, 'a positive integer');
  const model = await loadVLM(values.model ?? embeddedModelDir(), { signal, ...(threads ? { threads } : {}) });
  const split = values.split ?? 'test';
  if (split !== 'test' && split !== 'validation') throw new GripError('ERR_GRIP_RANGE', `expected test or validation for --split but received "${split}"`);
  const ratios = (values.ratios ?? '0.05,0.11,0.25,0.33,0.5,0.75,1').split(',').map((r) => option('ratios', r, (v) => v > 0 && v <= 1, 'keep ratios in (0, 1]')!);
  const gripDir = values.grip ?? join(model.dir, 'grip');
  const pruners = await prunersFromList(values.pruners ?? 'grip,warmup,fastv,random', gripDir, model);
  const questions = option('questions', values.questions, positiveInteger, 'a positive integer') ?? 500;
  const examples = makeExamples(split, questions);
  const evalExamples = await Promise.all(examples.map(async (ex) => ({ image: await renderScene(ex.scene), prompt: ex.question, answer: ex.answer, kind: ex.kind })));
  const rows = await evaluate(model, evalExamples, pruners, ratios, {
    signal, onProgress: (done, total, row) => console.error(`[${done}/${total}] ${row.pruner} keep ${row.keepRatio}: ${(100 * row.accuracy).toFixed(1)}%`),
  });
  const out = values.out ?? 'grip-eval';
  await mkdir(out, { recursive: true });
  const title = `${model.dir.split('/').pop()} · ${split} split, ${questions} questions`;
  // GRIP against the best heuristic at each ratio, paired on the same questions.
  const baselines = pruners.map((p) => p.name).filter((name) => (PRUNER_NAMES as readonly string[]).includes(heuristicBase(name)));
  const comparisons = pruners.some((p) => p.name === 'grip') ? pairedComparisons(rows, 'grip', baselines) : [];
  const table = markdownTable(rows) + (comparisons.length > 0 ? `\n\nGRIP against the best heuristic at each ratio, on the same ${questions} questions (exact McNemar test):\n\n${comparisonTable(comparisons)}` : '');
  const svg = paretoSvg(rows, title);
  await writeFile(join(out, 'eval.md'), `${table}\n`);
  await writeFile(join(out, 'eval.json'), `${JSON.stringify({ model: model.dir, split, questions, ratios, rows, comparisons }, null, 2)}\n`);
  await writeFile(join(out, 'pareto.svg'), svg);
  await writeFile(join(out, 'pareto.png'), await svgToPng(svg));
  // Which patches each pruner keeps at ρ = 0.25, on the first three questions.
  const noPictures = keptPicturesUnsupported(model.grid, model.numImageTokens);
  if (noPictures) console.error(`kept-*.png skipped: ${noPictures}`);
  for (let e = 0; e < (noPictures ? 0 : Math.min(3, examples.length)); e++) {
    const ex = examples[e]!;
    const processor = clipProcessorOf(model.processor, 'the pictures of kept patches');
    const pixels = await preprocessImage(evalExamples[e]!.image, processor, { signal });
    const rgb = pixelsToRgb(pixels, processor);
    const panels: KeptPicture[] = [];
    for (const pruner of pruners) {
      const r = await model.generate({ image: evalExamples[e]!.image, prompt: ex.question, pruner, keepRatio: 0.25, maxNewTokens: 1, stopAtEos: false, signal });
      panels.push({ rgb, size: pixels.shape[1]!, grid: model.grid.rows, kept: r.kept.indices, label: `${pruner.name}: ${r.text}` });
    }
    await writeFile(join(out, `kept-${e + 1}.png`), await keptStrip(panels));
    console.error(`kept-${e + 1}.png: ${ex.question} [${ex.answer}]`);
  }
  console.log(table);
  console.log(`\nwritten: ${out}/eval.md, eval.json, pareto.svg, pareto.png${noPictures ? '' : ', kept-*.png (patches kept at keep ratio 0.25)'}`);
}

async function main(): Promise<number> {
  const [command, ...rest] = process.argv.slice(2);
  const controller = new AbortController();
  process.once('SIGINT', () => controller.abort(new GripError('ERR_GRIP_RANGE', 'expected the run to finish but received Ctrl-C')));
  try {
    if (command === 'run') await run(rest, controller.signal);
    else if (command === 'serve') await serve(rest, controller.signal);
    else if (command === 'demo') await demo(rest, controller.signal);
    else if (command === 'train') await train(rest, controller.signal);
    else if (command === 'eval') await evalCommand(rest, controller.signal);
    else if (command === undefined || command === 'help' || command === '--help' || command === '-h') process.stdout.write(USAGE);
    else throw new GripError('ERR_GRIP_RANGE', `expected a command (run, serve, demo, train, eval, help) for grip but received "${command}"`);
    return 0;
  } catch (error) {
    if (error instanceof GripError) console.error(`grip: ${error.message} (${error.code})`);
    else if (error instanceof TypeError && 'code' in error && String(error.code).startsWith('ERR_PARSE_ARGS')) console.error(`grip: ${error.message}\n\n${USAGE}`);
    else console.error(error);
    return 1;
  }
}

process.exitCode = await main();
