// defaults.test.ts — the one table of defaults is the shipped pruner's
// recipe: every flag of the recipe command in docs/recipe.md equals its
// default, the settings recorded in the shipped grip.json (point, scorer
// shape, query, redundancy, budgets, steps, teacher, reward, seed) equal the
// table, and the pruner, the warm-up, GRPO and a run (what `grip train --out
// DIR` runs with no other flag) resolve every option left out to it — so
// `grip train --out DIR` alone retrains that pruner. Nothing here trains.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadVLM } from '../../lib/model/vlm.ts';
import { GripPruner, type GripSettings } from '../../lib/prune/grip.ts';
import { parseBudgets } from '../../lib/train/data.ts';
import { TRAIN_DEFAULTS as d } from '../../lib/train/defaults.ts';
import { GRPOTrainer } from '../../lib/train/grpo.ts';
import { resolveTrainOptions, type TrainRunOptions } from '../../lib/train/run.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const shipped = JSON.parse(readFileSync(join(root, 'models', 'shapes-llava-tiny', 'grip', 'grip.json'), 'utf8')) as GripSettings;

/** The flags of the recipe command of models/shapes-llava-tiny/grip in docs/recipe.md. */
function recipeFlags(): Map<string, string> {
  const recipe = readFileSync(join(root, 'docs', 'recipe.md'), 'utf8');
  const command = /npm run grip -- train --out models\/shapes-llava-tiny\/grip([^`]*?)\n```/.exec(recipe);
  assert.ok(command, 'the recipe command of models/shapes-llava-tiny/grip is in docs/recipe.md');
  const flags = new Map<string, string>();
  const words = command![1]!.replace(/\\\n/g, ' ').trim().split(/\s+/);
  for (let i = 0; i < words.length; i += 2) flags.set(words[i]!, words[i + 1]!);
  return flags;
}

test('the recipe command of the shipped pruner (docs/recipe.md) is the defaults, flag by flag', () => {
  const flags = recipeFlags();
  const defaults: Record<string, string> = {
    '--data': `shapes:${d.trainQuestions}`, '--point': 'pre-llm' === d.point ? 'pre-llm' : String((d.point as { layer: number }).layer),
    '--teacher': d.teacher, '--query': d.queryPooling, '--hidden': String(d.hidden), '--rank': String(d.rank),
    '--warmup-steps': String(d.warmupSteps), '--steps': String(d.steps), '--group': String(d.group),
    '--prompts-per-step': String(d.promptsPerStep), '--budgets': 'range' in d.budgets ? d.budgets.range.join(':') : '',
    '--reward': d.reward, '--lr': String(d.lr), '--beta': String(d.beta), '--seed': String(d.seed),
    '--threads': String(d.threads), '--redundancy': String(d.redundancy),
  };
  assert.equal([...flags.keys()].sort(), Object.keys(defaults).sort());
  for (const [flag, value] of flags) assert.is(Number(defaults[flag]) === Number(value) || defaults[flag] === value, true, `${flag} ${value} vs default ${defaults[flag]}`);
});

test('the shipped grip.json records the defaults', () => {
  const meta = shipped as GripSettings & { training: Record<string, unknown> };
  assert.equal(meta.point, d.point);
  assert.is(meta.hidden, d.hidden);
  assert.is(meta.rank, d.rank);
  assert.is(meta.queryPooling, d.queryPooling);
  assert.is(meta.redundancy, d.redundancy);
  assert.equal(meta.budgetRange, 'range' in d.budgets ? [...d.budgets.range] : null);
  assert.equal(meta.training.budgets, d.budgets);
  assert.is(meta.training.warmupSteps, d.warmupSteps);
  assert.is(meta.training.grpoSteps, d.steps);
  assert.is(meta.training.teacher, d.teacher);
  assert.is(meta.training.reward, d.reward);
  assert.is(meta.training.seed, d.seed);
  assert.is(meta.training.initSeed, d.seed);
});

test('a run with no options (grip train --out DIR) resolves to the recipe command of the shipped pruner, option by option', () => {
  const flags = recipeFlags();
  const flag = (name: string) => {
    assert.ok(flags.has(name), `${name} is in the recipe command`);
    return flags.get(name)!;
  };
  // The recipe command's flags as trainGrip options (lib/cli.ts maps each flag to the option of its name).
  const recipe: Omit<TrainRunOptions, 'out'> = {
    point: flag('--point') === 'pre-llm' ? 'pre-llm' : { layer: Number(flag('--point')) },
    teacher: flag('--teacher') as TrainRunOptions['teacher'], queryPooling: flag('--query') as TrainRunOptions['queryPooling'],
    hidden: Number(flag('--hidden')), rank: Number(flag('--rank')), warmupSteps: Number(flag('--warmup-steps')),
    steps: Number(flag('--steps')), group: Number(flag('--group')), promptsPerStep: Number(flag('--prompts-per-step')),
    budgets: parseBudgets(flag('--budgets')), reward: flag('--reward') as TrainRunOptions['reward'],
    lr: Number(flag('--lr')), beta: Number(flag('--beta')), seed: Number(flag('--seed')), redundancy: Number(flag('--redundancy')),
  };
  assert.equal(resolveTrainOptions({}), resolveTrainOptions(recipe));
  const resolved = resolveTrainOptions({});
  // and the recorded settings of the shipped pruner
  assert.equal(resolved.point, shipped.point);
  assert.equal([resolved.hidden, resolved.rank, resolved.queryPooling, resolved.redundancy], [shipped.hidden, shipped.rank, shipped.queryPooling, shipped.redundancy]);
  assert.equal(resolved.budgets, shipped.training.budgets);
  assert.equal([resolved.warmupSteps, resolved.steps, resolved.teacher, resolved.reward, resolved.seed],
    [shipped.training.warmupSteps, shipped.training.grpoSteps, shipped.training.teacher, shipped.training.reward, shipped.training.seed]);
  // an option given wins over its default
  assert.is(resolveTrainOptions({ lr: 3e-4 }).lr, 3e-4);
});

test('GripPruner.init with no options makes the shipped pruner\'s scorer (point, shape, budgets, query, redundancy)', () => {
  const m = shipped.model;
  const host = { dir: `models/${m.name}`, numImageTokens: m.numImageTokens, config: { text: { hiddenSize: m.hiddenSize, numLayers: m.numLayers } } };
  const { training: _fresh, ...settings } = GripPruner.init(host).settings;
  const { training: _trained, ...want } = shipped;
  assert.equal(settings, want);
  assert.is(GripPruner.init(host).settings.training.initSeed, shipped.training.initSeed);
});

test('GRPO resolves every option left out to the table', async () => {
  const model = await loadVLM(join(root, 'test', 'fixtures', 'tiny-llava'), { backend: 'cpu' });
  const policy = GripPruner.init(model, { hidden: 8, rank: 4 });
  const example = { prompt: 'what is the color of the shape?', answer: 'red', image: Buffer.alloc(0) };
  const { options } = new GRPOTrainer(model, policy, policy.clone(), [example], { steps: 1 });
  assert.equal(options, {
    steps: 1, group: d.group, promptsPerStep: d.promptsPerStep, budgets: { range: policy.settings.budgetRange }, reward: d.reward,
    clip: d.clip, innerEpochs: d.innerEpochs, beta: d.beta, lr: d.lr, weightDecay: d.weightDecay, seed: d.seed,
  });
});

test.run();
