#!/usr/bin/env node
// cli.ts — the `grip` command. `grip run` answers a question about an image
// with a LLaVA checkpoint, optionally pruning the visual tokens.
import { parseArgs } from 'node:util';
import { GripError } from './errors.js';
import { runDemo } from './demo.js';
import { loadVLM } from './model/llava.js';
import { makePruner, PRUNER_NAMES } from './prune/registry.js';

const USAGE = `usage: grip <command> [options]

commands:
  run     answer a question about an image
          --model DIR        LLaVA checkpoint directory (Hugging Face layout)
          --image FILE       the image (PNG, JPEG, WebP, ...)
          --prompt TEXT      the question
          --keep RATIO       keep ratio of visual tokens in (0, 1] (default 1)
          --pruner NAME      ${PRUNER_NAMES.join(' | ')} (default: none; fastv when --keep < 1)
          --layer K          prune at decoder layer K (fastv default 2; random default pre-LLM)
          --max-new-tokens N (default 32)
          --backend B        auto | cpu | cuda (default auto)
          --threads N        CPU threads (default: all cores)
          --json             print the result as JSON
  demo    answer questions at keep ratios 1, 0.5, 0.25, 0.11 on the embedded model
          (or --model DIR), with accuracy on test questions of the shapes testbed,
          prefill time, and pictures of the kept patches
          --image FILE --prompt TEXT   your own image and question instead
          --out DIR          where the pictures go (default ./grip-demo)
          --questions N      test questions for the accuracy table (default 300)
  help    this text
`;

async function run(argv: string[], signal: AbortSignal): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      model: { type: 'string' }, image: { type: 'string' }, prompt: { type: 'string' },
      keep: { type: 'string' }, pruner: { type: 'string' }, layer: { type: 'string' },
      'max-new-tokens': { type: 'string' }, backend: { type: 'string' }, threads: { type: 'string' },
      json: { type: 'boolean' },
    },
    strict: true,
  });
  for (const required of ['model', 'image', 'prompt'] as const) {
    if (values[required] === undefined) throw new GripError('ERR_GRIP_RANGE', `expected --${required} for grip run but received nothing`);
  }
  const number = (name: string, text: string | undefined): number | undefined => {
    if (text === undefined) return undefined;
    const value = Number(text);
    if (text.trim() === '' || !Number.isFinite(value)) throw new GripError('ERR_GRIP_RANGE', `expected a number for --${name} but received "${text}"`);
    return value;
  };
  const keepRatio = number('keep', values.keep) ?? 1;
  const layer = number('layer', values.layer);
  const prunerName = values.pruner ?? (keepRatio < 1 ? 'fastv' : undefined);
  const threads = number('threads', values.threads);
  const model = await loadVLM(values.model!, {
    backend: (values.backend ?? 'auto') as 'auto',
    ...(threads !== undefined ? { threads } : {}),
    signal,
  });
  const pruner = prunerName === undefined ? undefined : makePruner(prunerName, layer === undefined ? {} : { layer });
  const maxNewTokens = number('max-new-tokens', values['max-new-tokens']) ?? 32;
  const result = await model.generate({ image: values.image!, prompt: values.prompt!, pruner, keepRatio, maxNewTokens, signal });
  if (values.json) {
    console.log(JSON.stringify({ ...result, tokenIds: Array.from(result.tokenIds), kept: { ...result.kept, indices: Array.from(result.kept.indices) } }, null, 2));
    return;
  }
  const t = result.timings;
  console.log(result.text);
  console.error(
    `[grip] backend ${model.backend}, pruner ${pruner?.name ?? 'none'}, kept ${result.kept.indices.length}/${model.numImageTokens} visual tokens, prefill ${result.prefillTokens} tokens\n` +
      `[grip] preprocess ${t.preprocessMs.toFixed(1)} ms, vision ${t.visionMs.toFixed(1)} ms, prune ${t.pruneMs.toFixed(1)} ms, prefill ${t.prefillMs.toFixed(1)} ms, decode ${t.decodeMs.toFixed(1)} ms (${result.tokenIds.length} tokens)`,
  );
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

async function main(): Promise<number> {
  const [command, ...rest] = process.argv.slice(2);
  const controller = new AbortController();
  process.once('SIGINT', () => controller.abort(new GripError('ERR_GRIP_RANGE', 'expected the run to finish but received Ctrl-C')));
  try {
    if (command === 'run') await run(rest, controller.signal);
    else if (command === 'demo') await demo(rest, controller.signal);
    else if (command === undefined || command === 'help' || command === '--help' || command === '-h') process.stdout.write(USAGE);
    else throw new GripError('ERR_GRIP_RANGE', `expected a command (run, demo, help) for grip but received "${command}"`);
    return 0;
  } catch (error) {
    if (error instanceof GripError) console.error(`grip: ${error.message} (${error.code})`);
    else if (error instanceof TypeError && 'code' in error && String(error.code).startsWith('ERR_PARSE_ARGS')) console.error(`grip: ${error.message}\n\n${USAGE}`);
    else console.error(error);
    return 1;
  }
}

process.exitCode = await main();
