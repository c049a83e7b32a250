// loglik.ts — log p(answer | image, prompt) under G keep-sets in one batch:
// the GRPO reward. The image is encoded once (VLM.prepare); pre-LLM, the G
// keep-sets are G rows of one prefill; in-LLM, the unpruned layers < K ran
// once and G copies of their states and caches go on from layer K. The
// answer is then teacher-forced as one chunk after each pruned prompt.
import { check } from '../../validate.js';
import { KVCache, lmHead, runDecoder } from '../llama.js';
import { deviceOf, gatherRagged, int32Tensor, repeatRows, view } from '../../moves.js';
import { attachMRope, opOptions, type Runtime } from './context.js';
import { argmax } from './decode.js';
import { prefillKept, runFromPoint } from './prefill.js';
import type { AnswerLogProbResult, Prefilled, PreparedPrompt } from './types.js';

export interface AnswerLogLikOptions {
  /** Prompt layer K of the prepared point (0: pre-LLM). */
  layer: number;
  /** Checked keep-sets, one per candidate. */
  keepSets: Int32Array[];
  /** Answer token ids (checked, at least one). */
  answerIds: Int32Array;
  cachePolicy: 'keep' | 'compact';
  renumber: boolean;
  returnFirstLogProbs: boolean;
  signal: AbortSignal | undefined;
}

export async function answerLogLikelihood(rt: Runtime, prepared: PreparedPrompt, o: AnswerLogLikOptions): Promise<AnswerLogProbResult> {
  const { keepSets, answerIds, signal } = o;
  const { config, weights } = rt.text;
  const G = keepSets.length, A = answerIds.length, L = config.numLayers, V = config.vocabSize, D = config.hiddenSize;
  const dev = deviceOf(rt.backend);
  const ops = opOptions(rt, signal);
  let state: Prefilled;
  if (o.layer === 0) {
    const rows = Array.from({ length: G }, () => prepared.row);
    state = await prefillKept(rt, { rows, visual: await repeatRows(rt.k, prepared.projected, G, rt.backend), keep: keepSets, renumber: o.renumber, extraCapacity: A, signal });
  } else {
    const one = prepared.stage!;
    if (A > one.answerCapacity) check.fail('ERR_GRIP_RANGE', `at most ${one.answerCapacity} answer tokens (prepare's answerCapacity)`, 'request.answer', `${A} tokens`);
    const cache = new KVCache(G, one.cache.capacity, config, dev, o.layer);
    attachMRope(rt, cache, Array.from({ length: G }, () => prepared.row), o.renumber);
    for (let l = 0; l < o.layer; l++) {
      cache.keys[l] = await repeatRows(rt.k, one.cache.keys[l]!, G, rt.backend);
      cache.values[l] = await repeatRows(rt.k, one.cache.values[l]!, G, rt.backend);
      cache.lengths[l] = new Int32Array(G).fill(one.cache.lengths[l]![0]!);
    }
    const x = await repeatRows(rt.k, one.x, G, rt.backend);
    const seq = { before: new Int32Array(G).fill(prepared.row.before.length), fullLen: new Int32Array(G).fill(one.fullLen), numVisual: new Int32Array(G).fill(prepared.row.pixels.layout.numImageTokens) };
    state = await runFromPoint(rt, { at: { x, cache, seq }, kept: keepSets, fromLayer: o.layer, cachePolicy: o.cachePolicy, renumber: o.renumber, signal });
  }
  let xa;
  try {
    const ids = new Int32Array(G * A);
    const positions = new Int32Array(G * A);
    for (let g = 0; g < G; g++) {
      ids.set(answerIds, g * A);
      for (let i = 0; i < A; i++) positions[g * A + i] = state.nextPosition[g]! + i;
    }
    xa = await rt.k.embedding(weights.embed, int32Tensor(ids, [G, A], dev), ops);
    await runDecoder(weights, config, xa, int32Tensor(positions, [G, A], dev), new Int32Array(G).fill(A), state.cache, { from: 0, to: L }, ops);
  } finally {
    state.cache.dispose();
  }
  // Token i is predicted by the last prompt row (i = 0) or by answer token i-1.
  const logSoftmax = async (h: ReturnType<typeof view>) => (await rt.k.softmax(await lmHead(weights, config, h, ops), { backend: rt.backend, signal, log: true })).toHost().host as Float32Array;
  const lastPrompt = await gatherRagged(rt.k, state.x, Array.from(state.length, (len) => [len - 1]), rt.backend);
  const first = await logSoftmax(view(lastPrompt, [G, D]));
  const rest = A > 1 ? await logSoftmax(view(await gatherRagged(rt.k, xa, Array.from({ length: G }, () => Int32Array.from({ length: A - 1 }, (_, i) => i)), rt.backend), [G * (A - 1), D])) : null;
  const tokenLogProbs = new Float32Array(G * A);
  const logProb = new Float64Array(G);
  const greedyMatch = new Uint8Array(G).fill(1);
  for (let g = 0; g < G; g++) {
    for (let i = 0; i < A; i++) {
      const offset = i === 0 ? g * V : (g * (A - 1) + i - 1) * V;
      const table = i === 0 ? first : rest!;
      const value = table[offset + answerIds[i]!]!;
      tokenLogProbs[g * A + i] = value;
      logProb[g] = logProb[g]! + value;
      if (argmax(table, offset, V) !== answerIds[i]) greedyMatch[g] = 0;
    }
  }
  return { logProb, tokenLogProbs, answerIds, greedyMatch, ...(o.returnFirstLogProbs ? { firstLogProbs: first } : {}) };
}
