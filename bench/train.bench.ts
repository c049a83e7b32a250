// train.bench.ts — where a GRIP training step spends its time on the
// embedded model (or --model DIR): warm-up steps and GRPO steps, split into
// sampling (scores, Gumbel-top-k, reference log-probs), forwards (prepare
// and the batched answerLogProb rewards), backward (Plackett-Luce and scorer
// gradients) and the optimiser, against the unpruned answer forward of the
// same prompts in the same run (what one rewarded sample would cost alone).
// Usage: node --import tsx bench/train.bench.ts [--model DIR] [--steps N] [--point pre-llm|K] [--redundancy L (default 10)]
// The default point, layer 2 with the last-token teacher and query (H = 128, R = 32), is the shipped pruner's recipe.
import { join } from 'node:path';
import { info } from '../lib/index.ts';
import { embeddedModelDir } from '../lib/demo.ts';
import { loadVLM } from '../lib/model/vlm.ts';
import { GripPruner } from '../lib/prune/grip.ts';
import { GRPOTrainer } from '../lib/train/grpo.ts';
import { shapesTrainingSet } from '../lib/train/run.ts';
import { warmup } from '../lib/train/warmup.ts';

const arg = (name: string) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : undefined;
};
const modelDir = arg('--model') ?? embeddedModelDir();
const steps = Number(arg('--steps') ?? 20);
const pointArg = arg('--point') ?? '2';
const point = pointArg === 'pre-llm' ? 'pre-llm' : { layer: Number(pointArg) };
const teacher = pointArg === 'pre-llm' ? 'text-tokens' : 'last-token';
const i = info();
console.log(`grip-vlm ${i.version} · ${i.simd} · ${i.threads} threads · model ${join(modelDir)} · point ${pointArg} · teacher ${teacher}`);
const model = await loadVLM(modelDir, { backend: 'cpu' });
const examples = await shapesTrainingSet(64);

// Baseline: one unpruned answer forward per prompt (image encoding included).
let t = performance.now();
for (const ex of examples.slice(0, 16)) await model.answerLogProb({ image: ex.image!, prompt: ex.prompt, answer: ex.answer, keepSets: [null] });
const unprunedMs = (performance.now() - t) / 16;

const pruner = GripPruner.init(model, { point, hidden: 128, rank: 32, seed: 0, queryPooling: pointArg === 'pre-llm' ? 'mean-text-after-image' : 'last-token' });
t = performance.now();
const warm = { forward: 0, backward: 0, optimizer: 0 };
for await (const s of warmup(model, pruner, examples, { steps, batch: 8, seed: 0, teacher })) {
  warm.forward += s.ms.forward;
  warm.backward += s.ms.backward;
  warm.optimizer += s.ms.optimizer;
}
const warmStepMs = (performance.now() - t) / steps;

// GRPO with independent scores (native Gumbel-top-k and Plackett-Luce) and with the redundancy penalty of the shipped pruner (the sequential policy on the host).
const redundancy = Number(arg('--redundancy') ?? 10);
const grpo = async (policy: GripPruner) => {
  const trainer = new GRPOTrainer(model, policy, policy.clone(), examples, { steps, group: 8, promptsPerStep: 4, seed: 0 });
  const split = { sampling: 0, forwards: 0, backward: 0, optimizer: 0 };
  const t0 = performance.now();
  for await (const s of trainer.run()) for (const key of Object.keys(split) as (keyof typeof split)[]) split[key] += s.ms[key];
  return { split, stepMs: (performance.now() - t0) / steps };
};
const penalised = pruner.clone();
penalised.settings.redundancy = redundancy;
const independent = await grpo(pruner);
const sequential = await grpo(penalised);

console.log(`\n### One training step (${steps} steps each; warm-up 8 prompts/step, GRPO 4 prompts x G=8 keep-sets/step)\n`);
console.log('| phase | step time | sampling | forwards | backward | optimiser | other | baseline: unpruned answer forward per prompt | rewarded samples per unpruned-forward time |');
console.log('|---|---|---|---|---|---|---|---|---|');
const f = (ms: number) => `${(ms / steps).toFixed(1)} ms`;
console.log(`| warm-up | ${warmStepMs.toFixed(1)} ms | — | ${f(warm.forward)} | ${f(warm.backward)} | ${f(warm.optimizer)} | ${(warmStepMs - (warm.forward + warm.backward + warm.optimizer) / steps).toFixed(1)} ms | ${unprunedMs.toFixed(1)} ms | — |`);
for (const [name, { split, stepMs }] of [['GRPO, top-k policy (λ = 0)', independent], [`GRPO, redundancy λ = ${redundancy}`, sequential]] as const) {
  const known = (split.sampling + split.forwards + split.backward + split.optimizer) / steps;
  console.log(`| ${name} | ${stepMs.toFixed(1)} ms | ${f(split.sampling)} | ${f(split.forwards)} | ${f(split.backward)} | ${f(split.optimizer)} | ${(stepMs - known).toFixed(1)} ms | ${unprunedMs.toFixed(1)} ms | ${((32 * unprunedMs) / stepMs).toFixed(2)}x |`);
}
