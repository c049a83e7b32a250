// run.test.ts — a training run stops cleanly on abort with its last step
// saved, and --resume continues from there to the same number of steps.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadVLM } from '../../lib/model/vlm.ts';
import { GripPruner } from '../../lib/prune/grip.ts';
import { shapesTrainingSet, trainGrip, type TrainRunOptions } from '../../lib/train/run.ts';

const fixture = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'tiny-llava');
const work = mkdtempSync(join(tmpdir(), 'grip-run-'));
test.after(() => rmSync(work, { recursive: true, force: true }));

test('an aborted run saves its last step, and resume finishes it', async () => {
  const model = await loadVLM(fixture, { backend: 'cpu' });
  const examples = await shapesTrainingSet(12);
  const out = join(work, 'run');
  const controller = new AbortController();
  let grpoLines = 0;
  const options: TrainRunOptions = {
    out, budgets: { range: [0.1, 0.5] }, warmupSteps: 3, warmupBatch: 2, steps: 6, group: 4, promptsPerStep: 1,
    hidden: 8, rank: 4, checkpointEvery: 100, seed: 5,
    progress: (line) => {
      if (line.startsWith('GRPO') && !line.includes('done') && ++grpoLines === 2) controller.abort(new Error('stop here'));
    },
  };
  const error = await trainGrip(model, examples, { ...options, signal: controller.signal }).catch((e: Error) => e);
  assert.instance(error, Error);
  assert.is((error as Error).message, 'stop here');
  const state = JSON.parse(readFileSync(join(out, 'state.json'), 'utf8'));
  assert.is(state.phase, 'grpo');
  assert.is(state.warmupStep, 3);
  assert.ok(state.grpoStep >= 2 && state.grpoStep < 6, `saved at GRPO step ${state.grpoStep}`);
  assert.ok(existsSync(join(out, 'warmup', 'grip.json')));
  const saved = await GripPruner.load(out);
  assert.is(saved.settings.training.grpoSteps, state.grpoStep);

  const lines: string[] = [];
  await trainGrip(model, examples, { ...options, resume: true, progress: (line) => lines.push(line) });
  assert.match(lines[0]!, /^resuming .*: grpo, warm-up step 3, GRPO step \d/);
  const done = JSON.parse(readFileSync(join(out, 'state.json'), 'utf8'));
  assert.equal([done.phase, done.grpoStep], ['done', 6]);
  const log = readFileSync(join(out, 'train.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  const steps = log.filter((l) => l.phase === 'grpo').map((l) => l.step);
  assert.equal([...new Set(steps)], [1, 2, 3, 4, 5, 6], 'every GRPO step logged, in order');
});

test('the warm-up teacher option reaches the warm-up and is recorded', async () => {
  const model = await loadVLM(fixture, { backend: 'cpu' });
  const examples = await shapesTrainingSet(6);
  const warmed = async (teacher: 'text-tokens' | 'last-token') => {
    const out = join(work, `teacher-${teacher}`);
    await trainGrip(model, examples, {
      out, budgets: { range: [0.1, 0.5] }, warmupSteps: 2, warmupBatch: 2, steps: 1, group: 2, promptsPerStep: 1,
      hidden: 8, rank: 4, seed: 3, teacher, progress: () => {},
    });
    return GripPruner.load(join(out, 'warmup'));
  };
  const a = await warmed('text-tokens');
  const b = await warmed('last-token');
  assert.is(a.settings.training.teacher, 'text-tokens');
  assert.is(b.settings.training.teacher, 'last-token');
  // the same seed and data: only the teacher differs, so the warmed-up parameters must too
  const pa = a.params.w1.host, pb = b.params.w1.host;
  assert.ok(pa.some((v, i) => v !== pb[i]), 'different teachers gave identical warm-up parameters');
});

test('the warm-up loss and teacher temperature options reach the warm-up and are recorded', async () => {
  const model = await loadVLM(fixture, { backend: 'cpu' });
  const examples = await shapesTrainingSet(6);
  const warmed = async (name: string, extra: Partial<TrainRunOptions>) => {
    const out = join(work, `warmup-${name}`);
    await trainGrip(model, examples, {
      out, budgets: { range: [0.1, 0.5] }, warmupSteps: 2, warmupBatch: 2, steps: 1, group: 2, promptsPerStep: 1,
      hidden: 8, rank: 4, seed: 3, progress: () => {}, ...extra,
    });
    return GripPruner.load(join(out, 'warmup'));
  };
  const plain = await warmed('plain', {});
  const pairwise = await warmed('pairwise', { warmupLoss: 'pairwise' });
  const sharp = await warmed('sharp', { teacherTemperature: 0.5 });
  assert.is(plain.settings.training.warmupLoss, undefined);
  assert.is(pairwise.settings.training.warmupLoss, 'pairwise');
  assert.is(sharp.settings.training.teacherTemperature, 0.5);
  // the same seed and data: only the option differs, so the warmed-up parameters must too
  const differs = (a: GripPruner, b: GripPruner) => a.params.w1.host.some((v, i) => v !== b.params.w1.host[i]);
  assert.ok(differs(plain, pairwise), '--warmup-loss pairwise gave the listwise warm-up');
  assert.ok(differs(plain, sharp), '--teacher-temperature 0.5 gave the T = 1 warm-up');
});

// Settings a run keeps: each reaches the pruner and its warm-up policy, and a resume asking for another is refused.
const kept: { name: string; set: Partial<TrainRunOptions>; read: (p: GripPruner) => unknown; want: unknown; other: Partial<TrainRunOptions>; message: string }[] = [
  {
    name: 'query pooling', set: { queryPooling: 'last-token' }, read: (p) => p.settings.queryPooling, want: 'last-token', other: { queryPooling: 'mean-text-after-image' },
    message: 'expected the query pooling of the run being resumed ("last-token") for options.queryPooling but received "mean-text-after-image"',
  },
  {
    name: 'redundancy', set: { redundancy: 2.5 }, read: (p) => p.redundancy, want: 2.5, other: { redundancy: 0 },
    message: 'expected the redundancy of the run being resumed (2.5) for options.redundancy but received 0',
  },
];
for (const c of kept) {
  test(`the ${c.name} option reaches the trained scorer and its warm-up policy, and a resume with another is refused`, async () => {
    const model = await loadVLM(fixture, { backend: 'cpu' });
    const examples = await shapesTrainingSet(6);
    const options: TrainRunOptions = {
      out: join(work, c.name.replace(/ /g, '-')), point: { layer: 2 }, budgets: { range: [0.1, 0.5] }, warmupSteps: 2, warmupBatch: 2, steps: 1, group: 2, promptsPerStep: 1,
      hidden: 8, rank: 4, seed: 3, progress: () => {}, ...c.set,
    };
    await trainGrip(model, examples, options);
    assert.is(c.read(await GripPruner.load(options.out)), c.want);
    assert.is(c.read(await GripPruner.load(join(options.out, 'warmup'))), c.want);
    const error = await trainGrip(model, examples, { ...options, steps: 2, resume: true, ...c.other }).catch((e: Error) => e);
    assert.instance(error, Error);
    assert.is((error as Error).message, c.message);
  });
}

test.run();
