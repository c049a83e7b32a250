// qwen_vl_vision.test.ts — the Qwen2-VL and Qwen2.5-VL vision towers and mergers on the op
// layer against the float64 numpy reference (tools/qwen_vl_ref): the reference image's
// patch rows -> visual tokens, 1e-4 relative; the window groups and rotary positions by hand.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { kernels } from '../../lib/model/kernels.ts';
import { parseQwenVLConfig } from '../../lib/model/qwen_vl/config.ts';
import { attentionGroups, loadQwenVision, rotaryHeadOrder, rotaryPositions, runQwenVision } from '../../lib/model/qwen_vl/vision.ts';
import { Checkpoint } from '../../lib/model/safetensors.ts';
import { expectError } from '../helpers.ts';

const test = suite('qwen_vl_vision');
const dirOf = (name: string) => fileURLToPath(new URL(`../fixtures/${name}/`, import.meta.url));
const floats = (b64: string) => new Float32Array(Uint8Array.from(Buffer.from(b64, 'base64')).buffer);

for (const name of ['tiny-qwen2-vl', 'tiny-qwen2_5-vl']) {
  test(`${name}: visual tokens equal the reference (1e-4 relative to the largest)`, async () => {
    const dir = dirOf(name);
    const ref = JSON.parse(readFileSync(dir + 'reference.json', 'utf8'));
    const config = parseQwenVLConfig(JSON.parse(readFileSync(dir + 'config.json', 'utf8')), 'config.json');
    const checkpoint = await Checkpoint.open(dir);
    const weights = await loadQwenVision(checkpoint, config, dir, { device: 'cpu' });
    await checkpoint.close();
    const out = await runQwenVision(weights, config, floats(ref.pixel_values_f32le_base64), ref.grid_thw, { backend: 'cpu', k: kernels('sync') });
    const want = ref.visual_tokens as { shape: number[]; data: number[] };
    assert.equal(out.shape, want.shape);
    const got = out.toHost().host as Float32Array;
    let maxDiff = 0, maxAbs = 0, at = -1;
    want.data.forEach((v, i) => {
      maxAbs = Math.max(maxAbs, Math.abs(v));
      const d = Math.abs(got[i]! - v);
      if (d > maxDiff) { maxDiff = d; at = i; }
    });
    assert.ok(maxDiff <= 1e-4 * maxAbs, `max |difference| ${maxDiff} at token ${Math.floor(at / want.shape[1]!)} > 1e-4 x ${maxAbs}`);
  });
}

test('window groups of an 8x10 patch grid with 2x2 windows of merged cells: 6 windows, the ragged ones at the right', () => {
  const config = parseQwenVLConfig(JSON.parse(readFileSync(dirOf('tiny-qwen2_5-vl') + 'config.json', 'utf8')), 'config.json');
  const groups = attentionGroups([1, 8, 10], config.vision, true);
  // merged grid 4x5, windows of 2x2 cells: 2 rows x 3 columns of windows, the last column 1 cell wide
  assert.equal(groups.map((g) => g.length), [16, 16, 8, 16, 16, 8]);
  assert.equal(groups[2], [16, 17, 18, 19, 36, 37, 38, 39]);
  assert.equal(attentionGroups([1, 8, 10], config.vision, false)[0]!.length, 80);
  // the reference's get_window_index visits the cells in the same windows
  const ref = JSON.parse(readFileSync(dirOf('tiny-qwen2_5-vl') + 'reference.json', 'utf8'));
  assert.equal(groups.flatMap((g) => g.filter((p) => p % 4 === 0).map((p) => p / 4)), ref.checks.window_index);
});

test('rotary: each head split into row pairs then column pairs; positions are (row, column) of each patch', () => {
  assert.equal(Array.from(rotaryHeadOrder(8)), [0, 1, 4, 5, 2, 3, 6, 7]);
  const config = parseQwenVLConfig(JSON.parse(readFileSync(dirOf('tiny-qwen2-vl') + 'config.json', 'utf8')), 'config.json');
  const pos = rotaryPositions([1, 4, 4], config.vision);
  const H = config.vision.numHeads;
  // patch 5 is merged cell 1 (row 0, column 1), its top-right patch: row 0, column 3
  assert.equal([pos[5 * H * 2], pos[5 * H * 2 + 1]], [0, 3]);
  // patch 10 is cell 2 (row 1, column 0), bottom-left: row 3, column 0
  assert.equal([pos[10 * H * 2], pos[10 * H * 2 + 1]], [3, 0]);
});

test('a missing vision tensor is a GripError naming it', async () => {
  const dir = dirOf('tiny-qwen2-vl');
  const config = parseQwenVLConfig(JSON.parse(readFileSync(dir + 'config.json', 'utf8')), 'config.json');
  const deeper = { ...config, vision: { ...config.vision, depth: 4 } };
  const checkpoint = await Checkpoint.open(dir);
  try {
    await expectError(() => loadQwenVision(checkpoint, deeper, 'dir', { device: 'cpu' }), 'ERR_GRIP_FORMAT', 'expected tensor "visual.blocks.3.attn.qkv.weight" in dir but received none');
  } finally {
    await checkpoint.close();
  }
});

test.run();
