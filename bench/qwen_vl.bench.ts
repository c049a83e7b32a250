// qwen_vl.bench.ts — Qwen2.5-VL-7B's cost on this runtime for a 1344x1008 image (grid
// 1x72x96: 6912 patches, 1728 visual tokens): (1) the vision tower (a few of its 32
// blocks, windowed and full attention, then the merger) and (2) the decoder prefill (a few
// of its 28 layers, M-RoPE on) of the unpruned sequence against pre-LLM keep ratios 0.5 /
// 0.25 / 0.11, in the same run; and the vision tower's share of the whole prefill at full
// depth (per-layer times scaled to 32 + 28 layers). Random bf16 weights.
// Usage: node --import tsx bench/qwen_vl.bench.ts [--quick] [--layers N]
import { cpus } from 'node:os';
import { info, setBackend, tensor } from '../lib/index.ts';
import { kernels } from '../lib/model/kernels.ts';
import { KVCache, runDecoder, type MRope } from '../lib/model/llama.ts';
import { parseQwenVLConfig } from '../lib/model/qwen_vl/config.ts';
import { qwenVLPositionIds } from '../lib/model/qwen_vl/positions.ts';
import { runQwenVision, type QwenVisionWeights } from '../lib/model/qwen_vl/vision.ts';
import type { TextWeights } from '../lib/model/weights.ts';
import { writeResults } from './harness.ts';

setBackend('cpu');
const quick = process.argv.includes('--quick');
const layersArg = process.argv.indexOf('--layers');
const numLayers = layersArg > 0 ? Number(process.argv[layersArg + 1]) : 2;
let seed = 1;
const random = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648) * 2 - 1;
const floats = (n: number, scale = 1) => Float32Array.from({ length: n }, () => random() * scale);
const i = info();
const cpu = `${cpus()[0]?.model ?? 'unknown CPU'}, ${i.threads} threads`;
console.log(`grip-vlm ${i.version} · backend cpu · simd ${i.simd} · ${cpu} · node ${process.version}`);

// Qwen2.5-VL-7B-Instruct's config.json, cut to `numLayers` vision blocks (the last one full
// attention, as blocks 7/15/23/31 are) and decoder layers; a small vocabulary (the LM head
// runs on one row and is not timed).
const config = parseQwenVLConfig({
  architectures: ['Qwen2_5_VLForConditionalGeneration'], model_type: 'qwen2_5_vl', hidden_size: 3584, intermediate_size: 18944,
  num_attention_heads: 28, num_hidden_layers: numLayers, num_key_value_heads: 4, rms_norm_eps: 1e-6, rope_theta: 1000000,
  vocab_size: 1024, max_position_embeddings: 128000, tie_word_embeddings: false, image_token_id: 1000, vision_start_token_id: 1001, vision_end_token_id: 1002,
  rope_scaling: { type: 'mrope', mrope_section: [16, 24, 24] },
  vision_config: { depth: numLayers, hidden_act: 'silu', hidden_size: 1280, intermediate_size: 3420, num_heads: 16, in_chans: 3, out_hidden_size: 3584,
    patch_size: 14, spatial_merge_size: 2, window_size: 112, fullatt_block_indexes: [numLayers - 1], temporal_patch_size: 2 },
}, 'Qwen2.5-VL-7B (cut)');
const vc = config.vision, tc = config.text;
const grid: [number, number, number] = [1, 72, 96];
const patches = grid[0] * grid[1] * grid[2], N = patches / 4;
const textBefore = 15, textAfter = 12; // system prompt + "<|im_start|>user\n<|vision_start|>" / "<|vision_end|>" + a question + the assistant turn

const bf16 = (rows: number, cols: number) => tensor(floats(rows * cols, 1 / Math.sqrt(cols)), [rows, cols], 'bf16');
const vec = (n: number, v = 0) => tensor(new Float32Array(n).fill(v), [n]);
const lin = (rows: number, cols: number, bias = true) => ({ weight: bf16(rows, cols), bias: bias ? vec(rows) : null });
const E = vc.hiddenSize, F = vc.intermediateSize;
const vision: QwenVisionWeights = {
  patch: bf16(E, 3 * 2 * 14 * 14),
  blocks: Array.from({ length: vc.depth }, () => ({
    norm1: { weight: vec(E, 1), bias: null }, norm2: { weight: vec(E, 1), bias: null },
    q: lin(E, E), k: lin(E, E), v: lin(E, E), proj: lin(E, E),
    mlp: { gate: lin(F, E), up: lin(F, E), down: lin(E, F) },
  })),
  merger: { norm: { weight: vec(E, 1), bias: null }, fc1: lin(4 * E, 4 * E), fc2: lin(tc.hiddenSize, 4 * E) },
};
const D = tc.hiddenSize, kvDim = tc.numKvHeads * tc.headDim;
const text: TextWeights = {
  embed: tensor(new Uint16Array(1), [1, 1], 'bf16'), lmHead: tensor(new Uint16Array(1), [1, 1], 'bf16'), norm: vec(D, 1),
  layers: Array.from({ length: tc.numLayers }, () => ({
    inputNorm: vec(D, 1), postNorm: vec(D, 1),
    q: lin(D, D), k: lin(kvDim, D), v: lin(kvDim, D), o: lin(D, D, false),
    gate: lin(tc.intermediateSize, D, false), up: lin(tc.intermediateSize, D, false), down: lin(D, tc.intermediateSize, false),
  })),
};
const run = { backend: 'cpu' as const, k: kernels('async') };
const reps = quick ? 1 : 2;
const best = async (fn: () => Promise<unknown>) => {
  let ms = Infinity;
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    await fn();
    ms = Math.min(ms, performance.now() - t0);
  }
  return ms;
};

// (1) the vision tower
const pixels = floats(patches * 3 * 2 * 14 * 14);
const visionMs = await best(() => runQwenVision(vision, config, pixels, grid, run));

// (2) prefill of T_before ++ kept visual ++ T_after, kept tokens at their original 3D ids
const ids = [...new Array(textBefore - 1).fill(7), config.visionStartTokenId, ...new Array(N).fill(config.imageTokenId), ...new Array(textAfter).fill(7)];
const full = qwenVLPositionIds(ids, [grid], config, 2);
const mrope: MRope = { section: config.mropeSection, ids: [full.ids], delta: [full.ropeDelta] };
async function prefillMs(keepRatio: number): Promise<{ tokens: number; ms: number }> {
  const kept = Math.ceil(keepRatio * N);
  const step = N / kept;
  const rows = [...Array.from({ length: textBefore }, (_, j) => j), ...Array.from({ length: kept }, (_, j) => textBefore + Math.floor(j * step)), ...Array.from({ length: textAfter }, (_, j) => textBefore + N + j)];
  const x = tensor(floats(rows.length * D), [1, rows.length, D]);
  const positions = tensor(Int32Array.from(rows), [1, rows.length]);
  const ms = await best(async () => {
    const cache = new KVCache(1, rows.length, tc, 'cpu');
    cache.mrope = mrope;
    await runDecoder(text, tc, x, positions, Int32Array.of(rows.length), cache, { from: 0, to: tc.numLayers }, run);
  });
  return { tokens: rows.length, ms };
}

const results: unknown[] = [];
const visionPerLayer = visionMs / vc.depth;
console.log(`\n### Qwen2.5-VL-7B shapes, 1344x1008 image (${patches} patches, ${N} visual tokens); ${numLayers} vision blocks + ${numLayers} decoder layers, bf16; ${cpu}\n`);
console.log(`vision tower: ${visionMs.toFixed(0)} ms for ${vc.depth} blocks + merger (${visionPerLayer.toFixed(0)} ms per block, merger included)\n`);
console.log('| keep ratio | prefill tokens | prefill per layer | baseline: unpruned per layer | speed-up | ideal (token ratio) | vision share at 32 + 28 layers |');
console.log('|---|---|---|---|---|---|---|');
const base = await prefillMs(1);
for (const keepRatio of [1, 0.5, 0.25, 0.11]) {
  const r = keepRatio === 1 ? base : await prefillMs(keepRatio);
  const perLayer = r.ms / tc.numLayers, basePerLayer = base.ms / tc.numLayers;
  const share = (visionPerLayer * 32) / (visionPerLayer * 32 + perLayer * 28);
  console.log(`| ${keepRatio} | ${r.tokens} | ${perLayer.toFixed(0)} ms | ${basePerLayer.toFixed(0)} ms | ${(basePerLayer / perLayer).toFixed(2)}x | ${(base.tokens / r.tokens).toFixed(2)}x | ${(share * 100).toFixed(0)}% |`);
  results.push({ table: 'qwen2.5-vl-7b prefill', keepRatio, tokens: r.tokens, msPerLayer: perLayer, baselineMsPerLayer: basePerLayer, ratio: basePerLayer / perLayer, visionMsPerBlock: visionPerLayer, visionShareFullDepth: share });
}
writeResults('qwen_vl', results);
