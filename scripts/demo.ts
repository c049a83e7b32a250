// demo.ts — `npm run demo`: the pruning pipeline at LLaVA-1.5-7B shapes on
// random weights (576 visual tokens of width 4096, a 32-head KV cache of 600
// positions). It scores the visual tokens for a question at several keep
// ratios with one budget-aware scorer, keeps the top k, gathers them,
// compacts the KV cache, and samples GRPO-style keep-sets. The embedded VLM
// and a trained pruner are not in the package yet; until they are, this
// shows the ops and their cost on this machine.
import { info, ops, tensor, type ScorerParams } from '../lib/index.ts';

const [N, D, H, R] = [576, 4096, 256, 64];
const [Hkv, T, Dh, textTokens] = [32, 600, 128, 24];

let seed = 7;
const random = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648) * 2 - 1;
const floats = (n: number, scale = 1) => Float32Array.from({ length: n }, () => random() * scale);
const ms = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e6;

const params: ScorerParams = {
  lnWeight: tensor(floats(D, 0.1).map((v) => 1 + v), [D]), lnBias: tensor(floats(D, 0.1), [D]),
  w1: tensor(floats(D * H, 1 / Math.sqrt(D)), [D, H]), b1: tensor(floats(H, 0.1), [H]),
  filmW: tensor(floats(16 * 2 * H, 0.2), [16, 2 * H]), filmB: tensor(floats(2 * H, 0.1), [2 * H]),
  w2: tensor(floats(H, 1 / Math.sqrt(H)), [H]), b2: tensor([0], [1]),
  wq: tensor(floats(D * R, 1 / Math.sqrt(D)), [D, R]), wk: tensor(floats(D * R, 1 / Math.sqrt(D)), [D, R]),
};
const visual = tensor(floats(N * D), [1, N, D], 'bf16');
const question = tensor(floats(D), [1, D]);
const cache = tensor(floats(Hkv * T * Dh), [1, Hkv, T, Dh], 'f16');

const i = info();
console.log(`grip-vlm ${i.version}: backend ${i.backend}, ${i.simd}, ${i.threads} threads (CUDA compiled: ${i.cuda.compiled}, devices: ${i.cuda.devices})`);
console.log(`${N} visual tokens x ${D} (bf16), scorer H=${H} R=${R}, KV cache ${Hkv} heads x ${T} positions x ${Dh}\n`);
console.log('keep ratio | kept | score ms | top-k ms | gather ms | KV compact ms | first kept positions');
for (const keepRatio of [1, 0.5, 0.25, 0.11]) {
  const k = Math.ceil(keepRatio * N);
  let t = process.hrtime.bigint();
  const scores = await ops.scoreTokens(visual, question, keepRatio, params);
  const scoreMs = ms(t);
  t = process.hrtime.bigint();
  const { indices } = await ops.topk(scores, k);
  const topkMs = ms(t);
  t = process.hrtime.bigint();
  await ops.gatherRows(visual, indices);
  const gatherMs = ms(t);
  // In-LLM pruning: the text prefix stays, the visual positions shrink to the kept ones.
  const keep = Int32Array.from([...Array(textTokens).keys(), ...Array.from(indices.host as Int32Array, (p) => p + textTokens)]);
  t = process.hrtime.bigint();
  await ops.compactKV(cache, tensor(keep, [1, keep.length]));
  const compactMs = ms(t);
  const first = Array.from((indices.host as Int32Array).subarray(0, 8)).join(' ');
  console.log(`${keepRatio.toFixed(2).padStart(10)} | ${String(k).padStart(4)} | ${scoreMs.toFixed(2).padStart(8)} | ${topkMs.toFixed(3).padStart(8)} | ${gatherMs.toFixed(3).padStart(9)} | ${compactMs.toFixed(3).padStart(13)} | ${first} ...`);
}

// GRPO samples G keep-sets per prompt and needs each one's log-probability.
const logits = await ops.scoreTokens(visual, question, 0.25, params);
const { indices: sets, logProb } = await ops.gumbelTopk(logits, Math.ceil(0.25 * N), { samples: 8, seed: 42 });
const check = await ops.plackettLuceLogProb(logits, sets);
const grad = await ops.plackettLuceBackward(logits, sets, tensor(new Float32Array(8).fill(1 / 8), [1, 8]));
console.log(`\n8 sampled keep-sets of ${sets.shape[2]} tokens (seed 42): log-probs ${Array.from(logProb.host as Float32Array, (v) => v.toFixed(1)).join(' ')}`);
console.log(`recomputed by plackettLuceLogProb: ${Array.from(check.host as Float32Array, (v) => v.toFixed(1)).join(' ')}`);
const g = grad.host as Float32Array;
console.log(`gradient of their mean w.r.t. the ${N} logits: sum ${g.reduce((a, b) => a + b, 0).toExponential(2)} (a softmax-family gradient sums to 0), max |g| ${Math.max(...Array.from(g, Math.abs)).toFixed(3)}`);

