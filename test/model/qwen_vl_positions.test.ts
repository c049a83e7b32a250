// qwen_vl_positions.test.ts — the prompt side of Qwen2-VL / Qwen2.5-VL against the numpy
// reference (tools/qwen_vl_ref): the chat template (tokenizer_config.json, @huggingface/jinja)
// and the byte-level BPE tokenizer (@huggingface/tokenizers) give the reference's text and
// ids; get_rope_index's 3D position ids and rope delta; pruned rows keep their original ids.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { parseQwenVLConfig } from '../../lib/model/qwen_vl/config.ts';
import { keptPositionIds, qwenVLPositionIds } from '../../lib/model/qwen_vl/positions.ts';
import { TextTokenizer } from '../../lib/model/tokenizer.ts';
import { expectError } from '../helpers.ts';

const test = suite('qwen_vl_positions');
interface Reference {
  prompt: string; text: string; input_ids: number[]; image_token_id: number; image_token_pos: number;
  grid_thw: [number, number, number]; num_image_tokens: number; position_ids: number[][]; rope_delta: number;
  decode_position_start: number; keep_sets: { k10: number[]; k6: number[] };
}
const FIXTURES = ['tiny-qwen2-vl', 'tiny-qwen2_5-vl'];
const dirOf = (name: string) => fileURLToPath(new URL(`../fixtures/${name}/`, import.meta.url));
const load = (name: string) => ({
  ref: JSON.parse(readFileSync(dirOf(name) + 'reference.json', 'utf8')) as Reference,
  config: parseQwenVLConfig(JSON.parse(readFileSync(dirOf(name) + 'config.json', 'utf8')), 'config.json'),
});

for (const name of FIXTURES) {
  const { ref, config } = load(name);

  test(`${name}: the chat template and the BPE tokenizer give the reference's text and ids`, async () => {
    const tokenizer = await TextTokenizer.load(dirOf(name));
    const text = tokenizer.applyChatTemplate([{ role: 'user', content: [{ type: 'image' }, { type: 'text', text: ref.prompt }] }], { addGenerationPrompt: true });
    assert.is(text, ref.text);
    const ids = Array.from(tokenizer.encode(text));
    // the reference expands the one <|image_pad|> to the image's visual tokens
    const expanded = [...ids.slice(0, ref.image_token_pos), ...new Array(ref.num_image_tokens - 1).fill(ref.image_token_id), ...ids.slice(ref.image_token_pos)];
    assert.equal(expanded, ref.input_ids);
    assert.is(tokenizer.decode(ids), text);
  });

  test(`${name}: get_rope_index — 3D ids of text, image grid and the text after it; rope delta`, () => {
    const p = qwenVLPositionIds(ref.input_ids, [ref.grid_thw], config, config.vision.spatialMergeSize);
    const S = ref.input_ids.length;
    assert.equal([0, 1, 2].map((a) => Array.from(p.ids.subarray(a * S, (a + 1) * S))), ref.position_ids);
    assert.is(p.ropeDelta, ref.rope_delta);
    assert.is(S + p.ropeDelta, ref.decode_position_start);
  });

  test(`${name}: a pre-LLM keep-set keeps each visual token's original (t, row, column) ids`, () => {
    const p = qwenVLPositionIds(ref.input_ids, [ref.grid_thw], config, config.vision.spatialMergeSize);
    const S = ref.input_ids.length, start = ref.image_token_pos, N = ref.num_image_tokens;
    const kept = [...Array(start).keys(), ...ref.keep_sets.k10.map((k) => start + k), ...Array.from({ length: S - start - N }, (_, j) => start + N + j)];
    const ids = keptPositionIds(p, kept);
    const n = kept.length, cols = ref.grid_thw[2] / 2;
    ref.keep_sets.k10.forEach((k, j) => {
      const at = start + j;
      assert.equal([ids[at], ids[n + at], ids[2 * n + at]], [start, start + Math.floor(k / cols), start + (k % cols)], `kept visual token ${k}`);
    });
    // the text after the image keeps its ids too: the first one is the image's max + 1
    assert.equal([ids[start + 10], ids[n + start + 10], ids[2 * n + start + 10]], [ref.position_ids[0]![start + N], ref.position_ids[1]![start + N], ref.position_ids[2]![start + N]]);
  });
}

test('qwenVLPositionIds refuses a prompt whose image runs do not match the grids', async () => {
  const { ref, config } = load('tiny-qwen2-vl');
  await expectError(() => qwenVLPositionIds(ref.input_ids, [], config, 2), 'ERR_GRIP_SHAPE',
    'expected 0 <|vision_start|><|image_pad|> runs (one per image grid) for inputIds but received 1');
  const short = ref.input_ids.filter((_, i) => i !== ref.image_token_pos);
  await expectError(() => qwenVLPositionIds(short, [ref.grid_thw], config, 2), 'ERR_GRIP_SHAPE',
    `expected 20 image tokens (grid 1x8x10) after <|vision_start|> at ${ref.image_token_pos - 1} for inputIds but received 19`);
  await expectError(() => keptPositionIds(qwenVLPositionIds(ref.input_ids, [ref.grid_thw], config, 2), [3, 2]), 'ERR_GRIP_RANGE',
    'expected ascending sequence indices in [0, 50] for kept but received 2 at 1');
});

test.run();
