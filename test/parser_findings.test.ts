// parser_findings.test.ts — regressions of the parser fuzzer's findings (test/fuzz/parsers.fuzz.ts).
import { readFileSync, rmSync } from 'node:fs';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { GripError } from '../lib/errors.ts';
import { jsonText } from '../lib/json.ts';
import { parseGripSettings } from '../lib/prune/grip.ts';
import { TextTokenizer } from '../lib/model/tokenizer.ts';
import { fuzzParsers } from './fuzz/parsers.fuzz.ts';

const test = suite('parser findings');

test('jsonText of lists nested 5000 deep is "[...]" past depth 3 (a RangeError: stack overflow before)', () => {
  const deep = JSON.parse(`${'['.repeat(5000)}1${']'.repeat(5000)}`);
  assert.is(jsonText(deep), '[[[[...]]]]');
  assert.is(jsonText([1, [2, [3]]]), '[1, [2, [3]]]');
});

test('a token id of 2^31 is ERR_GRIP_FORMAT at once (took 282 s in @huggingface/tokenizers before)', () => {
  const json = JSON.parse(readFileSync('test/fixtures/tiny-llava/tokenizer.json', 'utf8'));
  json.model.vocab.black = 2147483648;
  const started = performance.now();
  assert.throws(() => TextTokenizer.fromJSON(json, {}, 'tokenizer.json'), (e: GripError) => e instanceof GripError && e.code === 'ERR_GRIP_FORMAT'
    && e.message === 'expected a token id in [0, 16777215] for model.vocab["black"] in tokenizer.json but received 2147483648');
  assert.ok(performance.now() - started < 1000);
  json.model.vocab.black = 21;
  json.added_tokens[0].id = -1;
  assert.throws(() => TextTokenizer.fromJSON(json, {}, 'tokenizer.json'), (e: GripError) => e.message === 'expected a token id in [0, 16777215] for added_tokens[0].id in tokenizer.json but received -1');
});

test('a tokenizer.json whose token is a nested list: decode is ERR_GRIP_FORMAT (a TypeError from the library before; seed 1, tokenizer input 134)', async () => {
  const { report, findings } = await fuzzParsers({ seed: 1, inputs: 1, only: 'tokenizer', firstInput: 134, kept: (dir) => rmSync(dir, { recursive: true, force: true }) });
  assert.equal(findings, []);
  assert.equal(report.tokenizer!.errors, { ERR_GRIP_FORMAT: 1 });
});

for (const [input, what] of [[259, 'a post-processor template string replaced by text'], [1535, 'a token nested 50 deep (a pre-tokenizer option of the wrong type)']] as const) {
  test(`a tokenizer.json the library accepts but cannot encode with is ERR_GRIP_FORMAT: ${what} (a TypeError before; seed 11, tokenizer input ${input})`, async () => {
    const { report, findings } = await fuzzParsers({ seed: 11, inputs: 1, only: 'tokenizer', firstInput: input, kept: (dir) => rmSync(dir, { recursive: true, force: true }) });
    assert.equal(findings, []);
    assert.equal(report.tokenizer!.errors, { ERR_GRIP_FORMAT: 1 });
  });
}

test('a grip.json whose budgetRange holds a list nested 5000 deep is ERR_GRIP_FORMAT (a RangeError: the range check coerced it to a string; seed 12, grip inputs 6743, 7405)', async () => {
  const json = JSON.parse(readFileSync('models/shapes-llava-tiny/grip/grip.json', 'utf8'));
  json.budgetRange = [JSON.parse(`${'['.repeat(5000)}0.1${']'.repeat(5000)}`), 0.5];
  assert.throws(() => parseGripSettings(json, 'grip.json'), (e: GripError) => e instanceof GripError && e.code === 'ERR_GRIP_FORMAT'
    && e.message === 'expected budgetRange [low, high] with 0 < low <= high <= 1 for grip.json but received [[[[...]]], 0.5]');
  for (const input of [6743, 7405]) {
    const { report, findings } = await fuzzParsers({ seed: 12, inputs: 1, only: 'grip', firstInput: input, kept: (dir) => rmSync(dir, { recursive: true, force: true }) });
    assert.equal(findings, []);
    assert.equal(report.grip!.errors, { ERR_GRIP_FORMAT: 1 });
  }
});

test.run();
