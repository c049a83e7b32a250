// defaults.test.ts — the one table of training defaults is the shipped
// pruner's recipe: every flag of the recipe command in docs/recipe.md equals its
// default, and the settings recorded in the shipped grip.json (point,
// scorer shape, query, redundancy, budgets, steps, teacher, reward, seed)
// equal the table, so `grip train --out DIR` alone retrains that pruner.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { TRAIN_DEFAULTS as d } from '../../lib/train/defaults.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

test('the recipe command of the shipped pruner (docs/recipe.md) is the defaults, flag by flag', () => {
  const readme = readFileSync(join(root, 'docs', 'recipe.md'), 'utf8');
  const command = /npm run grip -- train --out models\/shapes-llava-tiny\/grip([^`]*?)\n```/.exec(readme);
  assert.ok(command, 'the recipe command of models/shapes-llava-tiny/grip is in docs/recipe.md');
  const flags = new Map<string, string>();
  const words = command![1]!.replace(/\\\n/g, ' ').trim().split(/\s+/);
  for (let i = 0; i < words.length; i += 2) flags.set(words[i]!, words[i + 1]!);
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
  const meta = JSON.parse(readFileSync(join(root, 'models', 'shapes-llava-tiny', 'grip', 'grip.json'), 'utf8'));
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

test.run();
