// fuzz.test.ts — the fuzzers in npm test: op-fuzzer calls and parser inputs, zero findings.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { fuzzOps } from './fuzz/ops.fuzz.ts';
import { fuzzParsers } from './fuzz/parsers.fuzz.ts';

const test = suite('fuzz');
const CALLS = 20000, INPUTS = 5000;

test(`${CALLS} op-fuzzer calls (seed 1): no findings`, async () => {
  const { findings } = await fuzzOps({ seed: 1, calls: CALLS });
  assert.equal(findings, [], JSON.stringify(findings.slice(0, 3)));
});

test(`${INPUTS} parser inputs (seed 1): no findings`, async () => {
  const { findings } = await fuzzParsers({ seed: 1, inputs: INPUTS, limitMs: 5000 });
  assert.equal(findings, [], JSON.stringify(findings.slice(0, 3)));
});

test.run();
