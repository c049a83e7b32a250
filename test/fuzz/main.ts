// main.ts — `npm run fuzz -- --calls N [--seed S] [--only OP] [--call I]` (ops) or
// `npm run fuzz -- --parsers --inputs N [--seed S] [--parser NAME] [--input I] [--limit-ms MS]`.
// Prints a report per op or per parser and every finding with the seed and call
// (input) that replay it; exits 1 on a finding.
import { ftruncateSync, openSync, writeSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { fuzzOps } from './ops.fuzz.ts';
import { PARSER_NAMES, fuzzParsers } from './parsers.fuzz.ts';

const { values } = parseArgs({
  options: {
    calls: { type: 'string', default: '10000' }, seed: { type: 'string', default: '1' }, only: { type: 'string' }, call: { type: 'string' },
    parsers: { type: 'boolean', default: false }, inputs: { type: 'string', default: '1000' }, parser: { type: 'string' }, input: { type: 'string' },
    'limit-ms': { type: 'string', default: '2000' }, trace: { type: 'string' }, json: { type: 'boolean', default: false },
  },
});
const seed = Number(values.seed);
const started = performance.now();
// --trace FILE: the call about to run, written synchronously, so a crash of the process still names it.
const traceFd = values.trace ? openSync(values.trace, 'w') : null;
const trace = traceFd === null ? undefined : (line: string) => { ftruncateSync(traceFd, 0); writeSync(traceFd, `${line}\n`, 0); };

let findings: { problem: string }[];
let report: unknown;
if (values.parsers) {
  const single = values.input !== undefined;
  if (single && values.parser === undefined) {
    console.error(`--input I replays input I of one parser: add --parser NAME (one of ${PARSER_NAMES.join(', ')})`);
    process.exit(2);
  }
  ({ report, findings } = await fuzzParsers({
    seed, inputs: single ? 1 : Number(values.inputs), only: values.parser, firstInput: single ? Number(values.input) : undefined,
    limitMs: Number(values['limit-ms']), trace: trace ?? (single ? (line) => console.log(`input ${line}`) : undefined),
    kept: (dir) => console.log(`files of the input kept in ${dir}`),
  }));
} else {
  const single = values.call !== undefined;
  ({ report, findings } = await fuzzOps({ seed, calls: single ? 1 : Number(values.calls), only: values.only, firstCall: single ? Number(values.call) : 0, trace }));
}
const seconds = (performance.now() - started) / 1000;
if (values.json) console.log(JSON.stringify({ report, findings, seconds }));
else {
  for (const [name, r] of Object.entries(report as Record<string, object>)) console.log(`${name.padEnd(22)} ${JSON.stringify(r)}`);
  for (const f of findings) console.log(`FINDING ${JSON.stringify(f)}`);
  console.log(`${findings.length} findings in ${seconds.toFixed(1)} s (seed ${seed})`);
}
process.exit(findings.length > 0 ? 1 : 0);
