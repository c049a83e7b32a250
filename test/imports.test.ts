// imports.test.ts — the layering of lib/ holds: no two files import each
// other in a circle (type-only imports count: a circle of types is still a
// knot for the reader), and the pruners reach into the runtime (lib/model/)
// for nothing but the safetensors format of their files.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

const lib = join(dirname(fileURLToPath(import.meta.url)), '..', 'lib');

/** Every .ts file under dir. */
function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? sources(path) : path.endsWith('.ts') ? [path] : [];
  });
}

/** file -> the lib files it imports (static, dynamic and re-exports). */
function importGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of sources(lib)) {
    const text = readFileSync(file, 'utf8');
    const specifiers = [
      ...text.matchAll(/^\s*(?:import|export)\b[^'"]*?\bfrom\s+'(\.[^']+)'/gm),
      ...text.matchAll(/\bimport\(\s*'(\.[^']+)'\s*\)/g),
    ].map((m) => m[1]!);
    graph.set(relative(lib, file), specifiers.map((s) => relative(lib, resolve(dirname(file), s.replace(/\.js$/, '.ts')))));
  }
  return graph;
}

/** The strongly connected components with more than one file (Tarjan). */
function circles(graph: Map<string, string[]>): string[][] {
  let counter = 0;
  const index = new Map<string, number>(), low = new Map<string, number>(), stack: string[] = [], onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (v: string) => {
    index.set(v, counter);
    low.set(v, counter++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1) found.push(component.sort());
    }
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return found;
}

test('the import graph of lib/ is read (a sanity check of the parser)', () => {
  const graph = importGraph();
  assert.ok(graph.size > 50, `${graph.size} files`);
  assert.ok(graph.get('validate.ts')!.includes('tensor.ts'), 'validate.ts imports tensor.ts');
  assert.ok(graph.get('model/vlm.ts')!.includes('moves.ts'), 'model/vlm.ts imports moves.ts');
});

test('no files of lib/ import each other in a circle', () => {
  assert.equal(circles(importGraph()), []);
});

test('the circle finder finds a circle (it can fail)', () => {
  assert.equal(circles(new Map([['a.ts', ['b.ts']], ['b.ts', ['c.ts']], ['c.ts', ['a.ts']], ['d.ts', ['a.ts']]])), [['a.ts', 'b.ts', 'c.ts']]);
});

test('prune/ reaches into model/ only for the safetensors format', () => {
  const reaches = [...importGraph()].flatMap(([file, deps]) =>
    file.startsWith('prune/') ? deps.filter((d) => d.startsWith('model/') && d !== 'model/safetensors.ts').map((d) => `${file} -> ${d}`) : []);
  assert.equal(reaches, []);
});

test.run();
