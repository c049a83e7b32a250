// int8-accuracy.ts — the embedded testbed model with 8-bit decoder weights
// (loadVLM weights 'int8', q8_0) against the same model in f32, on the same
// test questions: accuracy of each (greedy answers, keep ratio 1), the paired
// difference (McNemar exact p), and the relative error of the last-position
// logits. docs/llamacpp.md "8-bit weights" quotes its output.
//
//   node --import tsx tools/testbed/int8-accuracy.ts [--questions 1000] [--logits 200] [--split test]
import { parseArgs } from 'node:util';
import { loadVLM, type VLM } from '../../lib/index.ts';
import { makeExamples, renderScene } from '../../lib/data/shapes/index.ts';
import { embeddedModelDir } from '../../lib/demo.ts';
import { evaluate } from '../../lib/eval/evaluate.ts';
import { mcnemarExact } from '../../lib/eval/stats.ts';

const { values } = parseArgs({ options: { questions: { type: 'string' }, logits: { type: 'string' }, split: { type: 'string' } } });
const questions = Number(values.questions ?? 1000), logitRows = Number(values.logits ?? 200);
const split = (values.split ?? 'test') as 'test' | 'validation';
const examples = await Promise.all(makeExamples(split, questions).map(async (ex) => ({ image: await renderScene(ex.scene), prompt: ex.question, answer: ex.answer, kind: ex.kind })));
const dir = embeddedModelDir();
const f32 = await loadVLM(dir, { backend: 'cpu', dtype: 'f32' });
const int8 = await loadVLM(dir, { backend: 'cpu', weights: 'int8' });

async function accuracy(model: VLM) {
  const [row] = await evaluate(model, examples, [], [1]);
  return row!;
}
const a = await accuracy(f32), b = await accuracy(int8);
let onlyF32 = 0, onlyInt8 = 0;
a.outcomes.forEach((o, i) => {
  if (o > b.outcomes[i]!) onlyF32++;
  else if (o < b.outcomes[i]!) onlyInt8++;
});

// Logits of the last prompt position: relative L2 error per question, and how often the top token agrees.
let sumRel = 0, maxRel = 0, sameTop = 0, sumNum = 0, sumDen = 0;
const n = Math.min(logitRows, examples.length);
for (let i = 0; i < n; i++) {
  const ex = examples[i]!;
  const want = (await f32.logits({ image: ex.image, prompt: ex.prompt })).logits.host as Float32Array;
  const got = (await int8.logits({ image: ex.image, prompt: ex.prompt })).logits.host as Float32Array;
  let num = 0, den = 0, topW = 0, topG = 0;
  for (let v = 0; v < want.length; v++) {
    num += (got[v]! - want[v]!) ** 2;
    den += want[v]! ** 2;
    if (want[v]! > want[topW]!) topW = v;
    if (got[v]! > got[topG]!) topG = v;
  }
  const rel = Math.sqrt(num / den);
  sumRel += rel;
  maxRel = Math.max(maxRel, rel);
  sumNum += num;
  sumDen += den;
  if (topW === topG) sameTop++;
}
const pct = (x: number) => (100 * x).toFixed(1);
console.log(`${dir.split('/').pop()} · ${split} split, ${questions} questions, keep ratio 1, greedy`);
console.log('| weights | accuracy | correct |');
console.log('|---|---|---|');
console.log(`| f32 | ${pct(a.accuracy)}% | ${a.correct}/${a.n} |`);
console.log(`| int8 (q8_0) | ${pct(b.accuracy)}% | ${b.correct}/${b.n} |`);
console.log(`difference ${(100 * (b.accuracy - a.accuracy)).toFixed(2)} points; right only in f32 ${onlyF32}, only in int8 ${onlyInt8}, McNemar exact p ${mcnemarExact(onlyInt8, onlyF32).toPrecision(3)}`);
console.log(`last-position logits over ${n} questions: relative L2 error mean ${(sumRel / n).toExponential(2)}, max ${maxRel.toExponential(2)}, pooled ${Math.sqrt(sumNum / sumDen).toExponential(2)}; same top token ${sameTop}/${n}`);
