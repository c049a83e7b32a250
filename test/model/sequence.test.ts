// sequence.test.ts — the runtime's sequence assembly as plain index
// arithmetic (lib/model/runtime/sequence.ts), against hand-written layouts:
// positions of unpruned, pre-LLM pruned and renumbered rows, the rows kept at
// layer K, the probe rows, and the attention reduction.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { assembleSequence, attentionToImage, keptPositions, keptRows, probeRowsOf, visualRows } from '../../lib/model/runtime/sequence.ts';

const test = suite('sequence');
const list = (a: ArrayLike<number>) => Array.from(a);

test('unpruned rows sit at 0..len-1, ragged rows padded with 0', () => {
  // row 0: 2 text + 3 visual + 1 text = 6; row 1: 1 + 3 + 0 = 4.
  const s = assembleSequence({ before: [2, 1], after: [1, 0], numVisual: 3, keep: null, renumber: false });
  assert.equal(list(s.length), [6, 4]);
  assert.equal(list(s.fullLen), [6, 4]);
  assert.equal(list(s.visualCount), [3, 3]);
  assert.is(s.width, 6);
  assert.equal(list(s.positions), [0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 0, 0]);
});

test('pre-LLM keep-sets keep their original positions, and the text after the image its own', () => {
  // N = 4, keep {1, 3} of row 0 (2 text before, 2 after) and {0} of row 1 (no text before, 1 after).
  const s = assembleSequence({ before: [2, 0], after: [2, 1], numVisual: 4, keep: [Int32Array.of(1, 3), Int32Array.of(0)], renumber: false });
  assert.equal(list(s.length), [6, 2]);
  assert.equal(list(s.fullLen), [8, 5]);
  assert.equal(list(s.positions.subarray(0, 6)), [0, 1, 3, 5, 6, 7]);
  assert.equal(list(s.positions.subarray(6, 8)), [0, 4]);
});

test('renumbered keep-sets get consecutive positions', () => {
  const s = assembleSequence({ before: [2], after: [2], numVisual: 4, keep: [Int32Array.of(1, 3)], renumber: true });
  assert.equal(list(s.positions), [0, 1, 2, 3, 4, 5]);
});

test('rows kept at layer K: all text and the kept visual tokens, at their positions or renumbered', () => {
  const rows = keptRows([Int32Array.of(0, 2), Int32Array.of(1)], [1, 2], [1 + 3 + 2, 2 + 3 + 0], 3);
  assert.equal(rows.map(list), [[0, 1, 3, 4, 5], [0, 1, 3]]);
  assert.equal(list(keptPositions(rows, false, 5)), [0, 1, 3, 4, 5, 0, 1, 3, 0, 0]);
  assert.equal(list(keptPositions(rows, true, 5)), [0, 1, 2, 3, 4, 0, 1, 2, 0, 0]);
  assert.equal(visualRows([1, 2], 3).map(list), [[1, 2, 3], [2, 3, 4]]);
});

test('probe rows: the last token, or the text after the image (the last token when there is none), and their union', () => {
  assert.equal(probeRowsOf('last-token', [1, 0], 2, [5, 3]), { perRow: [[4], [2]], union: [2, 4] });
  assert.equal(probeRowsOf('text-tokens', [1, 0], 2, [5, 2]), { perRow: [[3, 4], [1]], union: [1, 3, 4] });
});

test('attention to the image: mean over heads and the row\'s own query rows, columns of its visual tokens', () => {
  // B = 1, H = 2, R = 2 query rows, T = 4 columns; visual tokens at columns 1..2.
  const probs = Float32Array.of(
    0.1, 0.2, 0.3, 0.4, /* h0 r0 */ 0.0, 0.5, 0.5, 0.0, /* h0 r1 */
    0.2, 0.2, 0.2, 0.4, /* h1 r0 */ 0.1, 0.1, 0.7, 0.1, /* h1 r1 */
  );
  const out = attentionToImage(probs, [1, 2, 2, 4], { perRow: [[7, 9]], union: [7, 9] }, [1], 2);
  assert.ok(Math.abs(out[0]! - (0.2 + 0.5 + 0.2 + 0.1) / 4) < 1e-7);
  assert.ok(Math.abs(out[1]! - (0.3 + 0.5 + 0.2 + 0.7) / 4) < 1e-7);
  // Only the row's own query row counts when the union is larger.
  const one = attentionToImage(probs, [1, 2, 2, 4], { perRow: [[9]], union: [7, 9] }, [1], 2);
  assert.ok(Math.abs(one[0]! - (0.5 + 0.1) / 2) < 1e-7);
});

test.run();
