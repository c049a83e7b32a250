// crash.test.ts — crash-safe training: `grip train` SIGKILLed at a random
// moment, inside a checkpoint write and in the middle of a log line, then
// resumed, leaves no corrupt file and ends byte-identical to an uninterrupted
// run with the same seed; a stop in the middle of a step saves the last
// completed one. The 20-kill form: node --import tsx test/train/kill.ts.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadVLM } from '../../lib/model/vlm.ts';
import { mulberry32 } from '../../lib/random.ts';
import { shapesTrainingSet, trainGrip, type TrainRunOptions } from '../../lib/train/run.ts';
import { differences, killedRun, launch, SHORT_RUN, type Kill } from './kill.ts';

const fixture = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'tiny-llava');
const work = mkdtempSync(join(tmpdir(), 'grip-crash-'));
test.after(() => rmSync(work, { recursive: true, force: true }));

test('grip train killed at a random moment, inside a checkpoint write and mid log line, then resumed, matches an uninterrupted run byte for byte', async () => {
  const reference = join(work, 'reference');
  await launch(reference, SHORT_RUN, false, null);
  const random = mulberry32(22);
  const kills: Kill[] = [
    { afterLines: 2 + Math.floor(random() * 2), delayMs: Math.floor(random() * 60) }, // in the warm-up
    { hook: 'log:3' }, // half a line appended, then killed
    { hook: 'state-temp:3' }, // a checkpoint's files and state.json's temp file written, not yet renamed
  ];
  const report = await killedRun(join(work, 'killed'), SHORT_RUN, kills, reference);
  const ends = report.launches.map((l) => l.ended);
  assert.equal(ends, ['SIGKILL', 'SIGKILL', 'SIGKILL', '0'], `each kill landed before the run ended: ${JSON.stringify(report.launches)}`);
  assert.ok(report.launches[1]!.tornLog, 'the kill in the middle of an append left a torn last line');
  assert.equal(report.corrupt, [], 'no file is corrupt after a kill');
  assert.equal(report.differences, [], 'the resumed run ends with the files of the uninterrupted one');
});

test('a kill between the two published pruner files of the last checkpoint is repaired by the resume', async () => {
  const out = join(work, 'publish');
  // SHORT_RUN commits 12 checkpoints, each publishing two files: the 23rd publish is the last checkpoint's pruner.safetensors.
  const killed = await launch(out, SHORT_RUN, false, { hook: 'publish:23' });
  assert.is(killed.ended, 'SIGKILL');
  const published = JSON.parse(readFileSync(join(out, 'grip.json'), 'utf8'));
  assert.is(published.training.grpoSteps, 5, 'out/grip.json is still the step before the one its pruner.safetensors holds');
  assert.is(JSON.parse(readFileSync(join(out, 'state.json'), 'utf8')).checkpoint, 'grpo-6');
  assert.is((await launch(out, SHORT_RUN, true, null)).ended, '0');
  assert.equal(differences(join(work, 'reference'), out), [], 'the resume publishes the committed checkpoint whole');
});

test('a stop in the middle of a step saves the last completed step, and the resumed run matches an uninterrupted one', async () => {
  const model = await loadVLM(fixture, { backend: 'cpu' });
  const examples = await shapesTrainingSet(8);
  const options: Omit<TrainRunOptions, 'out'> = {
    budgets: { range: [0.1, 0.5] }, warmupSteps: 4, warmupBatch: 2, steps: 5, group: 2, promptsPerStep: 2,
    hidden: 8, rank: 4, checkpointEvery: 100, seed: 9, progress: () => {},
  };
  const plain = join(work, 'plain');
  await trainGrip(model, examples, { ...options, out: plain });

  for (const [phase, at] of [['warm-up', 2], ['GRPO', 2]] as const) {
    const out = join(work, `stopped-${phase}`);
    const controller = new AbortController();
    let seen = 0;
    const progress = (line: string) => {
      // Aborted once the next step has begun (the first native call it awaits), not between steps.
      if (line.startsWith(phase) && !line.includes('done') && ++seen === at) setImmediate(() => controller.abort(new Error('stop mid-step')));
    };
    const error = await trainGrip(model, examples, { ...options, out, signal: controller.signal, progress }).catch((e: Error) => e);
    assert.is((error as Error).message, 'stop mid-step');
    const state = JSON.parse(readFileSync(join(out, 'state.json'), 'utf8'));
    const logged = readFileSync(join(out, 'train.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    const done = phase === 'warm-up' ? state.warmupStep : state.grpoStep;
    assert.is(done, logged.filter((l) => l.phase === (phase === 'warm-up' ? 'warmup' : 'grpo')).length, `the ${phase} step saved is the last one completed and logged`);
    assert.is(state.logLines, logged.length);
    await trainGrip(model, examples, { ...options, out, resume: true });
    assert.equal(differences(plain, out), [], `a run stopped in its ${phase} resumes to the uninterrupted run's files`);
  }
});

test.run();
