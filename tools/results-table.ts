// results-table.ts — the README's results tables from one or more `grip eval`
// runs on the same questions (eval.json files): accuracy with its 95% Wilson
// interval per pruner and keep ratio, and GRIP against the best of every
// heuristic in any of the runs at each ratio (exact McNemar, paired on the
// questions). Rows of a pruner that appear in several runs must agree.
// Usage: node --import tsx tools/results-table.ts RUN/eval.json[:NAME,NAME...] [RUN2/eval.json ...] [--ratios 0.05,0.11,0.25,0.33,0.5]
//          (FILE:NAMES takes only those pruners, and unpruned, from that run)
//          [--plot docs/pareto]   (writes the merged rows' Pareto plot as docs/pareto.svg and .png)
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type { EvalRow } from '../lib/eval/evaluate.ts';
import { comparisonTable, paretoSvg, svgToPng } from '../lib/eval/report.ts';
import { pairedComparisons } from '../lib/eval/stats.ts';
import { PRUNER_NAMES, heuristicBase } from '../lib/prune/registry.ts';

const { values, positionals } = parseArgs({ options: { ratios: { type: 'string' }, plot: { type: 'string' } }, allowPositionals: true, strict: true });
if (positionals.length === 0) throw new Error('expected one or more eval.json files');
const runs = positionals.map((arg) => {
  const [file, names] = arg.endsWith('.json') ? [arg, undefined] : [arg.slice(0, arg.lastIndexOf(':')), arg.slice(arg.lastIndexOf(':') + 1).split(',')];
  const run = JSON.parse(readFileSync(file, 'utf8')) as { split: string; questions: number; rows: EvalRow[] };
  return names ? { ...run, rows: run.rows.filter((r) => r.pruner === 'unpruned' || names.includes(r.pruner)) } : run;
});
const rows: EvalRow[] = [];
for (const run of runs) {
  if (run.split !== runs[0]!.split || run.questions !== runs[0]!.questions) throw new Error('expected runs on the same split and questions');
  for (const row of run.rows) {
    const seen = rows.find((r) => r.pruner === row.pruner && r.keepRatio === row.keepRatio);
    if (!seen) rows.push(row);
    else if (seen.outcomes.join('') !== row.outcomes.join('')) throw new Error(`${row.pruner} at ${row.keepRatio} differs between runs`);
  }
}
const ratios = (values.ratios ?? '0.05,0.11,0.25,0.33,0.5').split(',').map(Number);
const pruners = [...new Set(rows.map((r) => r.pruner).filter((p) => p !== 'unpruned'))];
const base = rows.find((r) => r.pruner === 'unpruned')!;
const pct = (v: number) => (100 * v).toFixed(1);
const cell = (r: EvalRow | undefined) => (r ? `${pct(r.accuracy)} (${pct(r.interval[0])}–${pct(r.interval[1])})` : '');
console.log(`${runs[0]!.split} split, ${runs[0]!.questions} questions; unpruned ${cell(base)}; accuracy % (95% Wilson interval) at keep ratio:\n`);
console.log(`| pruner | ${ratios.map((r) => `ρ ${r} (${rows.find((x) => x.keepRatio === r)?.kept} tokens)`).join(' | ')} |`);
console.log(`|---|${ratios.map(() => '---|').join('')}`);
for (const p of pruners) console.log(`| ${p} | ${ratios.map((r) => cell(rows.find((x) => x.pruner === p && x.keepRatio === r))).join(' | ')} |`);
const baselines = pruners.filter((p) => (PRUNER_NAMES as readonly string[]).includes(heuristicBase(p)));
console.log(`\nGRIP against the best heuristic at each ratio (${baselines.join(', ')}), paired on the same questions:\n`);
console.log(comparisonTable(pairedComparisons(rows, 'grip', baselines).filter((c) => ratios.includes(c.keepRatio))));
if (values.plot) {
  const svg = paretoSvg(rows, `shapes-llava-tiny · ${runs[0]!.split} split, ${runs[0]!.questions} questions`);
  writeFileSync(`${values.plot}.svg`, svg);
  writeFileSync(`${values.plot}.png`, await svgToPng(svg));
}
