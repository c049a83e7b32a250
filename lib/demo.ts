// demo.ts — the package's main job on the embedded model: answer visual
// questions at several keep ratios with a pruner, and show what it costs and
// which patches it kept. `grip demo` (and `npm run demo`) runs it on test
// questions of the shapes testbed; `grip demo --image F --prompt P` on yours.
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { makeExamples, renderScene } from './data/shapes/index.js';
import { evaluate, type EvalExample } from './eval/evaluate.js';
import { keptStrip, type KeptPicture } from './eval/pictures.js';
import { loadVLM, type VLM } from './model/vlm.js';
import { clipProcessorOf, preprocessImage, type ProcessorConfig } from './model/processor.js';
import { packageRoot } from './native.js';
import { FastVPruner } from './prune/heuristics/fastv.js';
import { GripPruner } from './prune/grip.js';
import type { Pruner } from './prune/pruner.js';
import type { Tensor } from './tensor.js';

export const DEMO_RATIOS = [1, 0.5, 0.25, 0.11] as const;

/** The embedded testbed model shipped with the package. */
export function embeddedModelDir(): string {
  return join(packageRoot(), 'models', 'shapes-llava-tiny');
}

/** The model's own pruner: the trained GRIP scorer beside it when there is one, else FastV at layer 2. */
export async function defaultPruner(model: VLM): Promise<Pruner> {
  const gripDir = join(model.dir, 'grip');
  if (existsSync(join(gripDir, 'grip.json'))) {
    const pruner = await GripPruner.load(gripDir);
    pruner.checkModel(model);
    return pruner;
  }
  return new FastVPruner({ layer: Math.min(2, model.config.text.numLayers - 1) });
}

/** RGB bytes [H, W, 3] of what the model sees (pixel values un-normalised). */
export function pixelsToRgb(pixels: Tensor, config: ProcessorConfig): Uint8Array {
  const [C, H, W] = pixels.shape as [number, number, number];
  const data = pixels.host as Float32Array;
  const out = new Uint8Array(H * W * 3);
  for (let c = 0; c < Math.min(C, 3); c++) {
    for (let i = 0; i < H * W; i++) {
      const v = (data[c * H * W + i]! * config.imageStd[c]! + config.imageMean[c]!) / config.rescaleFactor;
      out[i * 3 + c] = Math.max(0, Math.min(255, Math.round(v)));
    }
  }
  return out;
}

export interface DemoOptions {
  modelDir?: string;
  /** Your image and question; without them, test questions of the shapes testbed. */
  image?: string;
  prompt?: string;
  outDir?: string;
  /** Test questions for the accuracy column (default 300). */
  questions?: number;
  pruner?: Pruner;
  log?: (line: string) => void;
  signal?: AbortSignal;
}

export async function runDemo(options: DemoOptions = {}): Promise<void> {
  const log = options.log ?? ((line: string) => console.log(line));
  const modelDir = resolve(options.modelDir ?? embeddedModelDir());
  const outDir = resolve(options.outDir ?? 'grip-demo');
  const signal = options.signal;
  const model = await loadVLM(modelDir, signal ? { signal } : {});
  const pruner = options.pruner ?? (await defaultPruner(model));
  const grid = model.grid.rows;
  log(`model ${modelDir} (${model.numImageTokens} visual tokens, ${model.config.text.numLayers} LLM layers, backend ${model.backend}); pruner ${pruner.name} at ${JSON.stringify(pruner.point)}`);
  await mkdir(outDir, { recursive: true });

  if (options.image !== undefined) {
    const prompt = options.prompt ?? 'what is in the image?';
    const processor = clipProcessorOf(model.processor, 'the demo\'s pictures');
    const pixels = await preprocessImage(options.image, processor, signal ? { signal } : {});
    const rgb = pixelsToRgb(pixels, processor);
    log(`\n${prompt}`);
    const panels: KeptPicture[] = [];
    let baseMs = 0;
    for (const keepRatio of DEMO_RATIOS) {
      const r = await model.generate({ image: options.image, prompt, maxNewTokens: 16, ...(keepRatio < 1 ? { pruner, keepRatio } : {}), ...(signal ? { signal } : {}) });
      if (keepRatio === 1) baseMs = r.timings.prefillMs;
      log(`  keep ${keepRatio.toFixed(2)} (${String(r.kept.indices.length).padStart(3)} tokens): ${JSON.stringify(r.text)}  prefill ${r.timings.prefillMs.toFixed(2)} ms (${(baseMs / r.timings.prefillMs).toFixed(2)}x)`);
      panels.push({ rgb, size: pixels.shape[1]!, grid, kept: r.kept.indices, label: `keep ${keepRatio}: ${r.text}` });
    }
    const file = join(outDir, 'your-image.png');
    await writeFile(file, await keptStrip(panels));
    log(`\nkept patches: ${file}`);
    return;
  }

  const count = options.questions ?? 300;
  const examples = makeExamples('test', count);
  const images = await Promise.all(examples.map((ex) => renderScene(ex.scene)));
  const evalExamples: EvalExample[] = examples.map((ex, i) => ({ image: images[i]!, prompt: ex.question, answer: ex.answer, kind: ex.kind }));

  // A few questions, answered at every ratio, with the kept patches drawn.
  log('\nexample answers (reference in brackets):');
  const shown = Math.min(4, count);
  for (let e = 0; e < shown; e++) {
    const at = Math.floor((e * count) / shown);
    const ex = examples[at]!;
    const processor = clipProcessorOf(model.processor, 'the demo\'s pictures');
    const pixels = await preprocessImage(images[at]!, processor, signal ? { signal } : {});
    const rgb = pixelsToRgb(pixels, processor);
    const panels: KeptPicture[] = [];
    const answers: string[] = [];
    for (const keepRatio of DEMO_RATIOS) {
      const r = await model.generate({ image: images[at]!, prompt: ex.question, maxNewTokens: 1, stopAtEos: false, ...(keepRatio < 1 ? { pruner, keepRatio } : {}), ...(signal ? { signal } : {}) });
      // A special token (say </s>) decodes to nothing; show it rather than a blank.
      const answer = r.text || model.tokenizer.decode(r.tokenIds, { skipSpecialTokens: false });
      answers.push(`${keepRatio}: ${answer}`);
      panels.push({ rgb, size: pixels.shape[1]!, grid, kept: r.kept.indices, label: `keep ${keepRatio}: ${answer}` });
    }
    const file = join(outDir, `example-${e + 1}.png`);
    await writeFile(file, await keptStrip(panels));
    log(`  ${ex.question} [${ex.answer}]  ->  ${answers.join('  ')}   (${file})`);
  }

  log(`\naccuracy on ${count} test questions, prefill time per question (batch 1):`);
  log('keep ratio | kept | accuracy | prefill ms | speed-up');
  const rows = await evaluate(model, evalExamples, [pruner], DEMO_RATIOS, signal ? { signal } : {});
  const base = rows[0]!;
  for (const r of rows) {
    log(`${r.keepRatio.toFixed(2).padStart(10)} | ${String(r.kept).padStart(4)} | ${(100 * r.accuracy).toFixed(1).padStart(7)}% | ${r.prefillMs.toFixed(2).padStart(10)} | ${(base.prefillMs / r.prefillMs).toFixed(2)}x`);
  }
  log(`\npictures of the kept patches: ${outDir}`);
}
