// text_tokens.test.ts — PruneContext.text, what a pruner that declares
// `needs.text` (CDPruner) is handed: pre-LLM the embeddings of the text after
// the image (checked against the embedding table read straight from the
// checkpoint's bytes), at layer K those tokens' hidden states (as many, of
// the model's width); nothing when the pruner does not ask.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CDPrunerPruner, tensor, type PruneContext, type Pruner, type PrunePoint } from '../../lib/index.ts';
import { makeExamples, renderScene } from '../../lib/data/shapes/index.ts';
import { loadVLM, type VLM } from '../../lib/model/vlm.ts';

const dir = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'tiny-llava');
interface Packed { shape: number[]; data: number[] }
const ref = JSON.parse(readFileSync(join(dir, 'reference.json'), 'utf8')) as { images: Record<string, Packed>; cases: { name: string; image: string; input_ids: number[] }[] };
const base = ref.cases.find((c) => c.name === 'a_unpruned')!;
const pixels = () => tensor(Float32Array.from(ref.images[base.image]!.data), ref.images[base.image]!.shape);
const IMAGE_TOKEN = 4;

/** The bf16 embedding table, from the safetensors bytes. */
function embeddingTable(): { rows: number; width: number; values: Float32Array } {
  const bytes = readFileSync(join(dir, 'model.safetensors'));
  const n = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const t = header['language_model.model.embed_tokens.weight']!;
  assert.is(t.dtype, 'BF16');
  const raw = bytes.subarray(8 + n + t.data_offsets[0], 8 + n + t.data_offsets[1]);
  const values = new Float32Array(raw.length / 2);
  const u32 = new Uint32Array(values.buffer);
  for (let i = 0; i < values.length; i++) u32[i] = raw.readUInt16LE(2 * i) << 16;
  return { rows: t.shape[0]!, width: t.shape[1]!, values };
}

let model: VLM;
test.before(async () => { model = await loadVLM(dir, { backend: 'cpu' }); });

function spy(point: PrunePoint, needsText: boolean, seen: PruneContext[]): Pruner {
  return { name: 'spy', point, ...(needsText ? { needs: { text: true } } : {}), async select(ctx) { seen.push(ctx); return [Int32Array.from({ length: ctx.numKeep[0]! }, (_, i) => i)]; } };
}

test('pre-LLM: the embeddings of the text after the image; at layer 2: as many rows of the hidden width', async () => {
  const after = base.input_ids.slice(base.input_ids.indexOf(IMAGE_TOKEN) + 1);
  const table = embeddingTable();
  const seen: PruneContext[] = [];
  await model.logits({ pixelValues: pixels(), inputIds: base.input_ids, keepRatio: 0.25, pruner: spy('pre-llm', true, seen) });
  const text = seen[0]!.text!;
  assert.equal(text.states.shape, [1, after.length, table.width]);
  assert.equal(Array.from(text.count), [after.length]);
  const got = text.states.host as Float32Array;
  after.forEach((id, j) => assert.equal(Array.from(got.subarray(j * table.width, (j + 1) * table.width)), Array.from(table.values.subarray(id * table.width, (id + 1) * table.width)), `token ${j} (id ${id})`));
  await model.logits({ pixelValues: pixels(), inputIds: base.input_ids, keepRatio: 0.25, pruner: spy({ layer: 2 }, true, seen) });
  assert.equal(seen[1]!.text!.states.shape, [1, after.length, table.width]);
  assert.not.equal(Array.from(seen[1]!.text!.states.host as Float32Array), Array.from(got), 'hidden states, not embeddings');
  await model.logits({ pixelValues: pixels(), inputIds: base.input_ids, keepRatio: 0.25, pruner: spy('pre-llm', false, seen) });
  assert.is(seen[2]!.text, undefined);
});

test('cdpruner asks for the text tokens and keeps what it keeps on the context it was handed (the testbed model)', async () => {
  const testbed = await loadVLM(join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'models', 'shapes-llava-tiny'), { backend: 'cpu' });
  const cdp = new CDPrunerPruner();
  assert.equal(cdp.needs, { text: true });
  let differs = 0;
  for (const ex of makeExamples('validation', 5)) {
    const image = await renderScene(ex.scene);
    for (const keepRatio of [0.11, 0.25]) {
      const seen: PruneContext[] = [];
      const recorder: Pruner = { name: cdp.name, point: cdp.point, needs: cdp.needs, async select(ctx) { seen.push(ctx); return cdp.select(ctx); } };
      const out = await testbed.generate({ image, prompt: ex.question, keepRatio, pruner: recorder, maxNewTokens: 1 });
      assert.equal(Array.from(out.kept.indices), Array.from((await cdp.select(seen[0]!))[0]!));
      // The pooled query as the one text token gives another relevance, and on some questions another keep-set.
      const { text: _text, ...pooled } = seen[0]!;
      if (Array.from((await cdp.select(pooled))[0]!).join() !== Array.from(out.kept.indices).join()) differs++;
    }
  }
  assert.ok(differs > 0, 'the text tokens change some keep-set');
  testbed.dispose();
});

test.run();
