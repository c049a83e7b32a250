// cli_eval.test.ts — `grip eval` end to end on the embedded model: eval.md
// carries the 95% intervals and the paired comparison of GRIP with the best
// heuristic, eval.json the same figures recomputed here from its outcomes.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mcnemarExact, wilson } from '../../lib/eval/stats.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const work = mkdtempSync(join(tmpdir(), 'grip-eval-'));
const env = { ...process.env };
delete env.FORCE_COLOR;
test.after(() => rmSync(work, { recursive: true, force: true }));

interface Row { pruner: string; keepRatio: number; n: number; correct: number; accuracy: number; interval: [number, number]; outcomes: number[] }
interface Comparison { keepRatio: number; subject: string; baseline: string; difference: number; onlySubject: number; onlyBaseline: number; pValue: number }

test('grip eval writes intervals and GRIP against the best heuristic per ratio', () => {
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(root, 'lib', 'cli.ts'), 'eval', '--pruners', 'grip,norm,cdpruner:theta=0.25', '--ratios', '0.11,0.25,1',
    '--split', 'validation', '--questions', '12', '--out', work], { encoding: 'utf8', cwd: root, env });
  assert.is(r.status, 0, r.stderr);
  const md = readFileSync(join(work, 'eval.md'), 'utf8');
  const json = JSON.parse(readFileSync(join(work, 'eval.json'), 'utf8')) as { rows: Row[]; comparisons: Comparison[] };
  assert.equal(json.rows.map((row) => row.pruner), ['unpruned', 'grip', 'grip', 'norm', 'norm', 'cdpruner:theta=0.25', 'cdpruner:theta=0.25']);
  for (const row of json.rows) {
    assert.is(row.outcomes.length, 12);
    assert.is(row.outcomes.reduce((a, b) => a + b, 0), row.correct);
    assert.equal(row.interval, wilson(row.correct, row.n));
    const cell = `${(100 * row.interval[0]).toFixed(1)}–${(100 * row.interval[1]).toFixed(1)}%`;
    assert.ok(md.includes(`| ${row.pruner} | ${row.keepRatio} |`) && md.includes(cell), `${row.pruner} ${row.keepRatio}: ${cell}`);
  }
  assert.equal(json.comparisons.map((c) => c.keepRatio), [0.11, 0.25]);
  for (const c of json.comparisons) {
    const grip = json.rows.find((row) => row.pruner === 'grip' && row.keepRatio === c.keepRatio)!;
    const rivals = json.rows.filter((row) => row.pruner !== 'grip' && row.pruner !== 'unpruned' && row.keepRatio === c.keepRatio);
    const best = rivals.reduce((a, b) => (b.accuracy > a.accuracy ? b : a));
    assert.is(c.baseline, best.pruner);
    const b = grip.outcomes.filter((o, i) => o === 1 && best.outcomes[i] === 0).length;
    const cc = grip.outcomes.filter((o, i) => o === 0 && best.outcomes[i] === 1).length;
    assert.equal([c.onlySubject, c.onlyBaseline, c.pValue], [b, cc, mcnemarExact(b, cc)]);
  }
  assert.ok(md.includes('| keep ratio | subject | accuracy | best baseline |'), md);
});

test.run();
