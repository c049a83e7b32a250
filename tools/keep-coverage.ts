// keep-coverage.ts — how a pruner's keep-set covers the objects of the
// shapes testbed's scenes: objects touched (a kept patch holds a pixel of
// the object), scenes with every object touched, kept patches on objects,
// and patches on the most-kept object, averaged over questions.
// Usage: node --import tsx tools/keep-coverage.ts [--split validation|test] [--questions N] [--keep RATIO]
//          [--pruners grip,warmup,fastv,NAME=DIR,...]   (as grip eval's: grip, warmup: the embedded pruner and its warm-up; NAME=DIR: the GRIP pruner in DIR)
import { parseArgs } from 'node:util';
import { join } from 'node:path';
import { makeExamples, renderScene } from '../lib/data/shapes/index.ts';
import { patchesOfObject } from '../lib/data/shapes/scene.ts';
import { embeddedModelDir } from '../lib/demo.ts';
import { loadVLM } from '../lib/model/vlm.ts';
import { prunersFromList } from '../lib/prune/registry.ts';

const { values } = parseArgs({ options: { split: { type: 'string' }, questions: { type: 'string' }, keep: { type: 'string' }, pruners: { type: 'string' } }, strict: true });
const split = values.split ?? 'validation';
if (split !== 'validation' && split !== 'test') throw new Error(`expected validation or test for --split but received "${split}"`);
const questions = Number(values.questions ?? 500), keepRatio = Number(values.keep ?? 0.05);
const model = await loadVLM(embeddedModelDir());
const pruners = await prunersFromList(values.pruners ?? 'grip,fastv', join(model.dir, 'grip'), model);
const examples = await Promise.all(makeExamples(split, questions).map(async (ex) => ({ ...ex, image: await renderScene(ex.scene) })));
console.log(`${questions} ${split} questions, keep ratio ${keepRatio}\n`);
console.log('| pruner | objects touched (of the scene\'s) | scenes with every object touched | kept patches on objects | patches on the most-kept object |');
console.log('|---|---|---|---|---|');
for (const pruner of pruners) {
  let touched = 0, objects = 0, everyObject = 0, onObjects = 0, most = 0;
  for (const ex of examples) {
    const r = await model.generate({ image: ex.image, prompt: ex.question, pruner, keepRatio, maxNewTokens: 1, stopAtEos: false });
    const kept = new Set(r.kept.indices);
    let hitObjects = 0, mostHits = 0;
    for (const object of ex.scene.objects) {
      const hits = patchesOfObject(ex.scene, object).filter((p) => kept.has(p)).length;
      if (hits > 0) hitObjects++;
      onObjects += hits;
      mostHits = Math.max(mostHits, hits);
    }
    touched += hitObjects;
    objects += ex.scene.objects.length;
    everyObject += hitObjects === ex.scene.objects.length ? 1 : 0;
    most += mostHits;
  }
  const n = examples.length;
  console.log(`| ${pruner.name} | ${(touched / n).toFixed(2)} of ${(objects / n).toFixed(2)} | ${((100 * everyObject) / n).toFixed(1)}% | ${(onObjects / n).toFixed(2)} | ${(most / n).toFixed(2)} |`);
}
