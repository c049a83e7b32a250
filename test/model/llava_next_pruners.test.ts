// llava_next_pruners.test.ts — every pruner on LLaVA-NeXT's sequences (the
// tiny checkpoint, 214 visual tokens from a 1x3 tile grid): the right count
// kept, ascending indices, each kept token at its original position, at the
// pre-LLM point and at layer 2; and ragged batches (images of different token
// counts) giving each row what it gets alone.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { tensor } from '../../lib/index.ts';
import { loadVLM, type VLM } from '../../lib/model/vlm.ts';
import { GripPruner } from '../../lib/prune/grip.ts';
import { makePruner } from '../../lib/prune/registry.ts';
import { numKeepFor, type Pruner } from '../../lib/prune/pruner.ts';
import { keepCountTests, prunersAt } from './pruner_cases.ts';
import { uniformGridIndices } from '../../lib/prune/heuristics/uniform.ts';
import { layoutOf } from '../../lib/model/llava_next/index.ts';
import { anyresGeometry } from '../../lib/model/llava_next/processor.ts';
import { expectError } from '../helpers.ts';

const test = suite('llava_next_pruners');
const DIR = fileURLToPath(new URL('../fixtures/tiny-llava-next/', import.meta.url));
const REF = JSON.parse(readFileSync(DIR + 'reference.json', 'utf8')).model;
const PIXELS = JSON.parse(readFileSync(DIR + 'pixels.json', 'utf8'));
const wide = { inputIds: REF.input_ids as number[], pixelValues: tensor(Float32Array.from(REF.pixel_values.data), REF.pixel_values.shape), imageSize: REF.image_size as [number, number] };
const squareCase = PIXELS.cases.find((c: { name: string }) => c.name === 'square');
const square = { inputIds: REF.input_ids as number[], pixelValues: tensor(Float32Array.from(squareCase.pixel_values.data), squareCase.pixel_values.shape), imageSize: squareCase.image_size as [number, number] };
const N = REF.num_image_tokens as number; // 214
const NB = (REF.input_ids as number[]).indexOf(4); // text tokens before the image
const NA = REF.input_ids.length - NB - 1;

let model: VLM;
test.before(async () => { model = await loadVLM(DIR, { backend: 'cpu' }); });
test.after(() => model.dispose());

const pruners = (layer: number | undefined) => prunersAt(() => model, layer);
keepCountTests(test, { model: () => model, request: wide, N, NB, NA });

test('a ragged batch (214 and 136 visual tokens) gives each row what it gets alone, for every point', async () => {
  // a fresh pruner for the batch and one for the rows alone: random draws in call order
  const makers: Array<() => Pruner> = [() => makePruner('random', { seed: 5 }), () => makePruner('fastv'), () => GripPruner.init(model, { seed: 3 }), () => makePruner('divprune', { layer: 1 })];
  for (const make of makers) {
    const rows = [{ ...wide, keepRatio: 0.5 }, { ...square, keepRatio: 0.25 }].map((r) => ({ ...r, maxNewTokens: 3, stopAtEos: false }));
    const pruner = make(), alonePruner = make();
    const batch = await model.generateBatch(rows.map((r) => ({ ...r, pruner })));
    for (let b = 0; b < 2; b++) {
      const alone = await model.generate({ ...rows[b]!, pruner: alonePruner });
      assert.equal(Array.from(batch[b]!.kept.indices), Array.from(alone.kept.indices), `${pruner.name} row ${b} kept`);
      assert.equal(Array.from(batch[b]!.tokenIds), Array.from(alone.tokenIds), `${pruner.name} row ${b} tokens`);
      assert.is(batch[b]!.prefillTokens, alone.prefillTokens);
    }
    assert.is(batch[0]!.kept.indices.length, numKeepFor(0.5, 214));
    assert.is(batch[1]!.kept.indices.length, numKeepFor(0.25, 136));
  }
});

test('an unpruned ragged batch equals the single requests', async () => {
  const requests = [wide, square].map((r) => ({ ...r, maxNewTokens: 3, stopAtEos: false }));
  const batch = await model.generateBatch(requests);
  for (let b = 0; b < 2; b++) assert.equal(Array.from(batch[b]!.tokenIds), Array.from((await model.generate(requests[b]!)).tokenIds));
  assert.equal(batch.map((r) => r.kept.indices.length), [214, 136]);
});

// ---- image_newline and the per-tile budget ------------------------------------------------

const GEOMETRY = JSON.parse(readFileSync(DIR + 'reference.json', 'utf8'));

test('layoutOf: the regions (base image, each tile\'s unpadded part) and the newlines partition the tokens, each region a row-major rectangle', () => {
  for (const table of [GEOMETRY.geometry_tiny, GEOMETRY.geometry_llava_v1_6]) {
    for (const c of table.cases) {
      const layout = layoutOf(anyresGeometry(c.image_size, table.pinpoints, table.crop, table.patch));
      const side = table.crop / table.patch;
      const seen = new Uint8Array(layout.numImageTokens);
      for (const i of layout.newlines!) { assert.is(c.token_tile[i], -1); seen[i]! += 1; }
      assert.is(layout.regions![0]!.tokens.length, side * side, `${c.name}: base image first`);
      for (const { grid, tokens } of layout.regions!) {
        assert.is(grid.rows * grid.cols, tokens.length);
        const tile = c.token_tile[tokens[0]!];
        tokens.forEach((i, n) => {
          seen[i]! += 1;
          assert.is(c.token_tile[i], tile);
          // row-major: patch (row, col) steps by 1 column, then to the next row at the same first column
          const first = c.token_patch[tokens[0]!], p = c.token_patch[i];
          assert.is(p, first + Math.floor(n / grid.cols) * side + (n % grid.cols), `${c.name} tile ${tile} token ${n}`);
        });
      }
      assert.ok(seen.every((v) => v === 1), `${c.name}: every token exactly once`);
    }
  }
});

test("imageNewline 'keep': every newline kept, the pruner picks the rest of ceil(0.25 N) among the patches", async () => {
  const layout = layoutOf(anyresGeometry(REF.image_size, [[32, 64], [64, 32], [64, 64], [32, 96], [96, 32]], 32, 4));
  const newlines = Array.from(layout.newlines!);
  assert.is(newlines.length, 6);
  for (const pruner of [makePruner('random', { seed: 2 }), makePruner('fastv'), makePruner('cdpruner')]) {
    const out = await model.logits({ ...wide, pruner, keepRatio: 0.25, imageNewline: 'keep', positions: 'all' });
    const kept = Array.from(out.kept);
    assert.is(kept.length, numKeepFor(0.25, N), pruner.name);
    assert.ok(newlines.every((i) => kept.includes(i)), `${pruner.name}: newlines ${newlines} in ${kept}`);
    assert.equal(Array.from(out.positionIds).slice(NB, NB + kept.length), kept.map((v) => NB + v));
  }
  // 'prune' (the default) lets a pruner drop them: uniform on the 1 x 214 sequence keeps 1 of the 6 here
  const pruned = await model.logits({ ...wide, pruner: makePruner('uniform'), keepRatio: 0.25 });
  assert.ok(newlines.some((i) => !Array.from(pruned.kept).includes(i)));
});

test("budget 'tile': uniform keeps ceil(0.25 n) on each crop's own 2D grid, the newlines a crop of their own", async () => {
  const layout = layoutOf(anyresGeometry(REF.image_size, [[32, 64], [64, 32], [64, 64], [32, 96], [96, 32]], 32, 4));
  for (const imageNewline of ['prune', 'keep'] as const) {
    const r = await model.generate({ ...wide, pruner: makePruner('uniform'), keepRatio: 0.25, budget: 'tile', imageNewline, maxNewTokens: 1 });
    const expected: number[] = imageNewline === 'keep' ? Array.from(layout.newlines!) : [];
    const crops = imageNewline === 'keep' ? layout.regions! : [...layout.regions!, { grid: { rows: 1, cols: 6 }, tokens: layout.newlines! }];
    for (const { grid, tokens } of crops) {
      for (const i of uniformGridIndices(grid.rows, grid.cols, numKeepFor(0.25, tokens.length))) expected.push(tokens[i]!);
    }
    assert.equal(Array.from(r.kept.indices), expected.sort((a, b) => a - b), imageNewline);
  }
});

test('every pruner runs with the per-tile budget at both points, keeping the sum of the crops\' budgets', async () => {
  const layout = layoutOf(anyresGeometry(REF.image_size, [[32, 64], [64, 32], [64, 64], [32, 96], [96, 32]], 32, 4));
  const total = [...layout.regions!.map((r) => r.tokens.length), layout.newlines!.length].reduce((sum, n) => sum + numKeepFor(0.25, n), 0);
  for (const layer of [undefined, 2]) {
    for (const [name, make] of pruners(layer)) {
      const out = await model.logits({ ...wide, pruner: make(), keepRatio: 0.25, budget: 'tile' });
      assert.is(out.kept.length, total, `${name} at ${layer ?? 'pre-llm'}`);
    }
  }
});

test('pyramiddrop prunes one LLaVA-NeXT image in stages, at original positions; refuses a per-tile budget', async () => {
  const out = await model.logits({ ...wide, pruner: makePruner('pyramiddrop'), keepRatio: 0.25, positions: 'all' });
  const kept = Array.from(out.kept);
  assert.ok(kept.length >= 1 && kept.length < N && kept.every((v, i) => v >= 0 && v < N && (i === 0 || v > kept[i - 1]!)), kept.join(','));
  assert.equal(Array.from(out.positionIds), [...Array.from({ length: NB }, (_, i) => i), ...kept.map((v) => NB + v), ...Array.from({ length: NA }, (_, j) => NB + N + j)]);
  await expectError(() => model.logits({ ...wide, pruner: makePruner('pyramiddrop'), keepRatio: 0.25, budget: 'tile' }), 'ERR_GRIP_UNSUPPORTED',
    'expected rows of one layout that hand the pruner all their tokens for a staged pruner but received different layouts, kept newlines or a per-tile budget (pruner "pyramiddrop")');
});

test('the options are checked by name', async () => {
  await expectError(() => model.logits({ ...wide, imageNewline: 'drop' as 'keep' }), 'ERR_GRIP_RANGE', `expected one of 'prune', 'keep' for request.imageNewline but received the string "drop"`);
  await expectError(() => model.logits({ ...wide, budget: 'crop' as 'tile' }), 'ERR_GRIP_RANGE', `expected one of 'image', 'tile' for request.budget but received the string "crop"`);
});

test.run();
