// qwen_vl_model.test.ts — loadVLM on the tiny Qwen2-VL and Qwen2.5-VL checkpoints
// (test/fixtures/tiny-qwen2-vl, tiny-qwen2_5-vl) against the independent numpy reference
// (tools/qwen_vl_ref): last logits to 1e-4 relative and identical greedy tokens, unpruned,
// pre-LLM (k10) and at layer 2 (k6) with both cache policies, from the image itself (the
// processor, the chat template and the tokenizer included); the refusals (cls, renumber).
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { loadVLM, type VLM } from '../../lib/model/vlm.ts';
import { FixedPruner, type PrunePoint } from '../../lib/prune/pruner.ts';
import { expectError, relErr } from '../helpers.ts';

const test = suite('qwen_vl_model');
interface Case { name: string; prune: null | { point: 'pre_llm' | 'in_llm'; layer?: number; keep: number[]; cache?: 'keep' | 'compact' }; last_logits: number[]; generated_ids: number[] }
const dirOf = (name: string) => fileURLToPath(new URL(`../fixtures/${name}/`, import.meta.url));


function pruneOptions(c: Case) {
  if (!c.prune) return {};
  const point: PrunePoint = c.prune.point === 'pre_llm' ? 'pre-llm' : { layer: c.prune.layer! };
  return { pruner: new FixedPruner(point, [c.prune.keep]), cachePolicy: c.prune.cache ?? 'keep' };
}

for (const name of ['tiny-qwen2-vl', 'tiny-qwen2_5-vl']) {
  const ref = JSON.parse(readFileSync(dirOf(name) + 'reference.json', 'utf8'));
  const [h, w] = ref.image_size as [number, number];
  const image = { data: Uint8Array.from(Buffer.from(ref.image_u8_base64, 'base64')), width: w, height: h, channels: 3 as const };
  const source = { image, prompt: ref.prompt as string };
  let model: VLM;

  test(`${name}: loadVLM picks the Qwen family; the image's merged grid is the layout`, async () => {
    model = await loadVLM(dirOf(name), { backend: 'cpu' });
    assert.is(model.config.modelType, name === 'tiny-qwen2-vl' ? 'qwen2_vl' : 'qwen2_5_vl');
    const r = await model.generate({ ...source, maxNewTokens: 1, stopAtEos: false });
    assert.is(r.kept.indices.length, ref.num_image_tokens);
    assert.is(r.prefillTokens, ref.seq_len);
  });

  for (const c of ref.cases as Case[]) {
    if (c.name.startsWith('e_')) continue; // the all-kept cases equal a_unpruned in the reference itself
    test(`${name} ${c.name}: last logits to 1e-4 relative and the same ${c.generated_ids.length} greedy tokens`, async () => {
      const out = await model.logits({ ...source, ...pruneOptions(c) });
      const err = relErr(out.logits.host as Float32Array, c.last_logits);
      assert.ok(err < 1e-4, `last logits: relative error ${err}`);
      const r = await model.generate({ ...source, ...pruneOptions(c), maxNewTokens: c.generated_ids.length, stopAtEos: false });
      assert.equal(Array.from(r.tokenIds), c.generated_ids);
    });
  }

  test(`${name}: the CLS pruner and renumbered positions are refused`, async () => {
    const cls = { name: 'cls-probe', point: 'pre-llm' as const, needs: { attention: 'cls' as const }, select: async () => [Int32Array.of(0)] };
    await expectError(() => model.generate({ ...source, pruner: cls, keepRatio: 0.5, maxNewTokens: 1 }), 'ERR_GRIP_UNSUPPORTED',
      'expected a pruner that needs no CLS attention (Qwen2-VL\'s vision tower has no CLS token) for pruner.needs.attention but received \'cls\'');
    await expectError(() => model.generate({ ...source, pruner: new FixedPruner('pre-llm', [[0, 1]]), renumberPositions: true, maxNewTokens: 1 }), 'ERR_GRIP_UNSUPPORTED',
      'expected renumberPositions false (M-RoPE keeps each kept token\'s original 3D position ids) for the request but received true');
    model.dispose();
  });
}

test.run();
