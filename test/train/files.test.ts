// files.test.ts — grip.json and a run's state.json are read by the one JSON
// reader (lib/json.ts) and checked field by field: each fault is a GripError
// with its code and an exact message naming the field and the file.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { GripError } from '../../lib/errors.ts';
import { loadVLM } from '../../lib/model/vlm.ts';
import { GripPruner } from '../../lib/prune/grip.ts';
import { trainGrip } from '../../lib/train/run.ts';
import { caught } from '../helpers.ts';

const fixture = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'tiny-llava');
const work = mkdtempSync(join(tmpdir(), 'grip-files-'));
test.after(() => rmSync(work, { recursive: true, force: true }));

// A scorer for a model with hidden 48, 64 image tokens and 4 layers (the tiny fixture's sizes).
const host = { dir: 'tiny-llava', numImageTokens: 64, config: { text: { hiddenSize: 48, numLayers: 4 } } };
let saved = 0;

/** A saved pruner whose grip.json is `edit` of the one it wrote (or `text` verbatim); returns its directory. */
async function prunerWith(edit: ((json: Record<string, unknown>) => void) | string): Promise<string> {
  const dir = join(work, `pruner-${++saved}`);
  await GripPruner.init(host, { hidden: 8, rank: 4 }).save(dir);
  const path = join(dir, 'grip.json');
  if (typeof edit === 'string') writeFileSync(path, edit);
  else {
    const json = JSON.parse(readFileSync(path, 'utf8'));
    edit(json);
    writeFileSync(path, JSON.stringify(json));
  }
  return dir;
}

const gripFaults: { fault: string; edit: ((json: Record<string, any>) => void) | string; code?: string; message: (path: string) => string }[] = [
  { fault: 'text that is not JSON', edit: '{ "format": ', message: (p) => `expected a JSON object for ${p} but received invalid JSON starting "{ \\"format\\": "` },
  { fault: 'a JSON array', edit: '[1, 2]', message: (p) => `expected a JSON object for ${p} but received an array` },
  { fault: 'another format', edit: (j) => { j.format = 'grip-vlm/pruner@2'; }, message: (p) => `expected format "grip-vlm/pruner@1" for ${p} but received "grip-vlm/pruner@2"` },
  { fault: 'no model', edit: (j) => { delete j.model; }, message: (p) => `expected model an object for ${p} but received nothing` },
  { fault: 'a model name that is not a string', edit: (j) => { j.model.name = 7; }, message: (p) => `expected model.name a non-empty string for ${p} but received 7` },
  { fault: 'a hidden size as text', edit: (j) => { j.model.hiddenSize = '48'; }, message: (p) => `expected model.hiddenSize an integer >= 1 for ${p} but received "48"` },
  { fault: 'no image tokens', edit: (j) => { j.model.numImageTokens = 0; }, message: (p) => `expected model.numImageTokens an integer >= 1 for ${p} but received 0` },
  { fault: 'a fractional layer count', edit: (j) => { j.model.numLayers = 1.5; }, message: (p) => `expected model.numLayers an integer >= 1 for ${p} but received 1.5` },
  { fault: 'a point past the last layer', edit: (j) => { j.point = { layer: 9 }; }, message: (p) => `expected point "pre-llm" or {"layer": K} with K in [1, 3] for ${p} but received {"layer":9}` },
  { fault: 'a point that is neither', edit: (j) => { j.point = 'post-llm'; }, message: (p) => `expected point "pre-llm" or {"layer": K} with K in [1, 3] for ${p} but received "post-llm"` },
  { fault: 'a dim other than the model\'s', edit: (j) => { j.dim = 64; }, message: (p) => `expected dim equal to model.hiddenSize (48) for ${p} but received 64` },
  { fault: 'a zero scorer width', edit: (j) => { j.hidden = 0; }, message: (p) => `expected hidden an integer in [1, 4096] for ${p} but received 0` },
  { fault: 'a rank as text', edit: (j) => { j.rank = '4'; }, message: (p) => `expected rank an integer in [1, 4096] for ${p} but received "4"` },
  { fault: 'a reversed budget range', edit: (j) => { j.budgetRange = [0.5, 0.1]; }, message: (p) => `expected budgetRange [low, high] with 0 < low <= high <= 1 for ${p} but received [0.5, 0.1]` },
  { fault: 'an unknown query pooling', edit: (j) => { j.queryPooling = 'max'; }, message: (p) => `expected queryPooling "mean-text-after-image" or "last-token" for ${p} but received "max"` },
  { fault: 'a negative redundancy', edit: (j) => { j.redundancy = -1; }, message: (p) => `expected redundancy a finite number >= 0 for ${p} but received -1` },
  { fault: 'no training record', edit: (j) => { delete j.training; }, message: (p) => `expected training an object for ${p} but received nothing` },
];

for (const f of gripFaults) {
  test(`grip.json with ${f.fault} is refused, naming the field`, async () => {
    const dir = await prunerWith(f.edit);
    const error = await caught(() => GripPruner.load(dir));
    assert.instance(error, GripError);
    assert.is(error.code, f.code ?? 'ERR_GRIP_FORMAT');
    assert.is(error.message, f.message(join(dir, 'grip.json')));
  });
}

test('a directory without grip.json is an IO error naming the file', async () => {
  const dir = join(work, 'empty');
  const error = await caught(() => GripPruner.load(dir));
  assert.is(error.code, 'ERR_GRIP_IO');
  assert.is(error.message, `expected a readable grip.json for ${join(dir, 'grip.json')} but received ENOENT: no such file or directory`);
});

test('a grip.json the checks pass loads with its fields unchanged (unknown ones kept)', async () => {
  const dir = await prunerWith((j) => { j.note = 'kept'; });
  const back = await GripPruner.load(dir);
  assert.is((back.settings as unknown as Record<string, unknown>).note, 'kept');
  assert.equal(back.settings.model, { name: 'tiny-llava', hiddenSize: 48, numImageTokens: 64, numLayers: 4 });
});

const stateFaults: { fault: string; text: string; message: (path: string) => string }[] = [
  { fault: 'text that is not JSON', text: 'phase: done', message: (p) => `expected a JSON object for ${p} but received invalid JSON starting "phase: done"` },
  { fault: 'an unknown phase', text: '{"phase":"cooling","warmupStep":0,"grpoStep":0,"optimizerStep":0}', message: (p) => `expected phase "warmup", "grpo" or "done" for ${p} but received "cooling"` },
  { fault: 'a negative warm-up step', text: '{"phase":"grpo","warmupStep":-1,"grpoStep":0,"optimizerStep":0}', message: (p) => `expected warmupStep an integer >= 0 for ${p} but received -1` },
  { fault: 'a fractional GRPO step', text: '{"phase":"grpo","warmupStep":2,"grpoStep":2.5,"optimizerStep":4}', message: (p) => `expected grpoStep an integer >= 0 for ${p} but received 2.5` },
  { fault: 'no optimizer step', text: '{"phase":"grpo","warmupStep":2,"grpoStep":2}', message: (p) => `expected optimizerStep an integer >= 0 for ${p} but received nothing` },
  { fault: 'a checkpoint outside checkpoints/', text: '{"phase":"grpo","warmupStep":2,"grpoStep":2,"optimizerStep":2,"checkpoint":"../grpo-2","logLines":4}', message: (p) => `expected checkpoint a checkpoint name "warmup-N" or "grpo-N" for ${p} but received "../grpo-2"` },
  { fault: 'a checkpoint without its log length', text: '{"phase":"grpo","warmupStep":2,"grpoStep":2,"optimizerStep":2,"checkpoint":"grpo-2"}', message: (p) => `expected logLines an integer >= 0 for ${p} but received nothing` },
];

for (const f of stateFaults) {
  test(`a resumed run whose state.json has ${f.fault} is refused, naming the field`, async () => {
    const model = await loadVLM(fixture, { backend: 'cpu' });
    const out = join(work, `run-${f.fault.replace(/\W+/g, '-')}`);
    await mkdir(out, { recursive: true });
    writeFileSync(join(out, 'state.json'), f.text);
    const error = await caught(() => trainGrip(model, [], { out, resume: true, progress: () => {} }));
    assert.instance(error, GripError);
    assert.is(error.code, 'ERR_GRIP_FORMAT');
    assert.is(error.message, f.message(join(out, 'state.json')));
  });
}

test.run();
