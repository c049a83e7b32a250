// pictures.test.ts — the kept-token panels: a kept patch keeps its pixels, a
// dropped one is dimmed, and layouts that are not one square grid are refused
// with the note grip eval prints.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { keptPanel, keptPicturesUnsupported } from '../../lib/eval/pictures.ts';

test('a square grid of patches over the whole crop can be drawn (LLaVA-1.5: 24 x 24 = 576)', () => {
  assert.is(keptPicturesUnsupported({ rows: 24, cols: 24 }, 576), undefined);
  assert.is(keptPicturesUnsupported({ rows: 8, cols: 8 }, 64), undefined);
});

test('a 1 x N layout (LLaVA-NeXT: base image, tiles, newline tokens) or a grid that misses tokens is not drawn, with a note naming it', () => {
  assert.is(keptPicturesUnsupported({ rows: 1, cols: 214 }, 214),
    'the pictures draw one square grid of patches, and this model\'s visual tokens form a 1 x 214 layout (several crops, as LLaVA-NeXT\'s base image and tiles)');
  assert.ok(keptPicturesUnsupported({ rows: 4, cols: 8 }, 32) !== undefined, 'non-square grid');
  assert.ok(keptPicturesUnsupported({ rows: 4, cols: 4 }, 17) !== undefined, 'a token outside the grid');
});

test('keptPanel keeps the pixels of kept patches and dims the others', () => {
  // A 4x4 image of value 100 under a 2x2 grid of 2-pixel patches; patch 3 (bottom right) kept; scale 1.
  const rgb = new Uint8Array(4 * 4 * 3).fill(100);
  const panel = keptPanel({ rgb, size: 4, grid: 2, kept: [3] }, 1);
  assert.equal([panel.width, panel.height], [4, 4]);
  const at = (x: number, y: number) => panel.data[(y * 4 + x) * 3]!;
  assert.is(at(3, 3), 100, 'kept patch, off the grid lines');
  assert.is(at(1, 1), Math.round(100 * 0.2 + 20), 'dropped patch dimmed');
  assert.is(at(2, 3), 200, 'grid line');
});

test.run();
