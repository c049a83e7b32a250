// families.test.ts — loadVLM picks the family by config.json's
// `architectures`; anything it cannot read goes to LLaVA, whose loader says
// what is wrong (the malformed-checkpoint corpus checks those messages).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FAMILIES, familyOf } from '../../lib/model/families.ts';

const test = suite('families');
let root = '';
test.before(async () => { root = await mkdtemp(join(tmpdir(), 'grip-families-')); });
test.after(async () => { await rm(root, { recursive: true, force: true }); });

test('every family has a name and architectures, and no architecture is claimed twice', () => {
  const claimed = FAMILIES.flatMap((f) => f.architectures);
  assert.ok(FAMILIES.every((f) => f.name.length > 0 && f.architectures.length > 0));
  assert.is(new Set(claimed).size, claimed.length);
});

test('the architecture picks the family; unreadable or unknown configs go to llava', async () => {
  await writeFile(join(root, 'config.json'), JSON.stringify({ architectures: ['LlavaForConditionalGeneration'] }));
  assert.is((await familyOf(root)).name, 'llava');
  await writeFile(join(root, 'config.json'), '{ not json');
  assert.is((await familyOf(root)).name, 'llava');
  assert.is((await familyOf(join(root, 'missing'))).name, 'llava');
});

test.run();
