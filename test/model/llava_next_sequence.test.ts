// llava_next_sequence.test.ts — sequence assembly (lib/model/runtime/sequence.ts)
// with one visual-token count per row, as LLaVA-NeXT's ragged batches need:
// positions, kept rows at layer K, probe rows and the attention reduction,
// against hand-written layouts.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { assembleSequence, attentionToImage, keptRows, probeRowsOf, visualRows } from '../../lib/model/runtime/sequence.ts';

const test = suite('llava_next_sequence');
const list = (a: ArrayLike<number>) => Array.from(a);

test('rows of 3 and 5 visual tokens: lengths, full lengths and positions per row', () => {
  // row 0: 1 text + 3 visual + 2 text = 6; row 1: 2 + 5 + 1 = 8
  const s = assembleSequence({ before: [1, 2], after: [2, 1], numVisual: [3, 5], keep: null, renumber: false });
  assert.equal(list(s.numVisual), [3, 5]);
  assert.equal(list(s.visualCount), [3, 5]);
  assert.equal(list(s.length), [6, 8]);
  assert.equal(list(s.fullLen), [6, 8]);
  assert.is(s.width, 8);
  assert.equal(list(s.positions), [0, 1, 2, 3, 4, 5, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7]);
});

test('pre-LLM keep-sets of ragged rows keep their own original positions; the text after each image follows its own N', () => {
  const s = assembleSequence({ before: [1, 2], after: [2, 1], numVisual: [3, 5], keep: [Int32Array.of(2), Int32Array.of(0, 4)], renumber: false });
  assert.equal(list(s.length), [4, 5]);
  assert.equal(list(s.fullLen), [6, 8]);
  assert.equal(list(s.positions), [0, 3, 4, 5, 0, 0, 1, 2, 6, 7]);
});

test('kept rows at layer K, visual rows, probe rows and attention with one N per row', () => {
  assert.equal(keptRows([Int32Array.of(1), Int32Array.of(0, 4)], [1, 2], [6, 8], [3, 5]).map(list), [[0, 2, 4, 5], [0, 1, 2, 6, 7]]);
  assert.equal(visualRows([1, 2], [3, 5]).map(list), [[1, 2, 3], [2, 3, 4, 5, 6]]);
  assert.equal(probeRowsOf('text-tokens', [1, 2], [3, 5], [6, 8]), { perRow: [[4, 5], [7]], union: [4, 5, 7] });
  // B = 2, H = 1, R = 1, T = 4: row 0 has 1 visual token at column 1, row 1 has 3 at columns 0..2
  const probs = Float32Array.of(0.1, 0.6, 0.2, 0.1, 0.3, 0.3, 0.2, 0.2);
  const out = attentionToImage(probs, [2, 1, 1, 4], { perRow: [[0], [0]], union: [0] }, [1, 0], [1, 3]);
  assert.equal(list(out).map((v) => Math.round(v * 1e6) / 1e6), [0.6, 0, 0, 0.3, 0.3, 0.2], 'padded to the widest row with zeros');
});

test.run();
