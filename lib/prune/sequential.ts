// sequential.ts — GRIP's keep-set policy with a redundancy penalty λ.
// Pruning is a sequence of decisions (the MDP of GRIP-VLM): token i_t is
// chosen given the set S of tokens chosen before it, with the logit
//   l_t(n) = s(n) − λ · max(0, max_{m in S} cos(h_n, h_m))   (n not in S)
// where s are the scorer's scores and h the visual states the scorer read.
// The policy draws i_t from softmax(l_t); the deterministic keep-set takes
// argmax l_t at every step. With λ = 0 this is the Plackett-Luce policy of
// independent scores (Gumbel-top-k, and top-k at inference), which the
// native ops serve; these host functions are for λ > 0.
// Why: independent scores spend a small budget on several patches of one
// object (they look alike, so they score alike); the penalty makes the next
// pick pay for resembling what is already kept.
import { describe } from '../tensor.js';
import { check } from '../validate.js';

export interface SequentialPolicy {
  /** The scorer's scores of the N tokens. */
  scores: ArrayLike<number>;
  /** cos(h_i, h_j), row-major [N, N] (cosineSimilarities). */
  similarity: ArrayLike<number>;
  /** λ >= 0. */
  redundancy: number;
}

/** Walks k picks: before pick t, the logits l_t (-Infinity for taken tokens) and their log-normaliser go to pick(), which returns the token taken. */
function walk(policy: SequentialPolicy, k: number, pick: (t: number, logits: Float64Array, logZ: number, taken: Uint8Array) => number): Int32Array {
  if (typeof policy !== 'object' || policy === null || typeof policy.scores?.length !== 'number' || policy.scores.length < 1) {
    check.fail('ERR_GRIP_RANGE', 'a policy { scores, similarity, redundancy } with at least one score', 'policy', describe(policy));
  }
  const { scores, similarity, redundancy } = policy;
  const N = scores.length;
  check.integer(k, 'k', 1, N);
  if (similarity?.length !== N * N) check.fail('ERR_GRIP_SHAPE', `${N * N} similarities ([N, N] for N = ${N})`, 'policy.similarity', typeof similarity?.length === 'number' ? `${similarity.length}` : describe(similarity));
  check.number(redundancy, 'policy.redundancy', (v) => v >= 0 && Number.isFinite(v), 'a finite number >= 0');
  const penalty = new Float64Array(N);
  const taken = new Uint8Array(N);
  const logits = new Float64Array(N);
  const order = new Int32Array(k);
  for (let t = 0; t < k; t++) {
    let max = -Infinity;
    for (let n = 0; n < N; n++) {
      logits[n] = taken[n] ? -Infinity : scores[n]! - redundancy * penalty[n]!;
      if (logits[n]! > max) max = logits[n]!;
    }
    let z = 0;
    for (let n = 0; n < N; n++) if (!taken[n]) z += Math.exp(logits[n]! - max);
    const chosen = pick(t, logits, max + Math.log(z), taken);
    order[t] = chosen;
    taken[chosen] = 1;
    const row = chosen * N;
    for (let n = 0; n < N; n++) if (similarity[row + n]! > penalty[n]!) penalty[n] = similarity[row + n]!;
  }
  return order;
}

/** The deterministic keep-set, in pick order: argmax l_t at every step (ties to the lower index); top-k when λ = 0. */
export function greedyKeep(policy: SequentialPolicy, k: number): Int32Array {
  return walk(policy, k, (_t, logits, _logZ, taken) => {
    let best = -1;
    for (let n = 0; n < logits.length; n++) if (!taken[n] && (best < 0 || logits[n]! > logits[best]!)) best = n;
    return best;
  });
}

/** An ordered keep-set drawn from the policy (one uniform draw per pick), with its log-probability. */
export function sampleKeep(policy: SequentialPolicy, k: number, random: () => number): { order: Int32Array; logProb: number } {
  if (typeof random !== 'function') check.fail('ERR_GRIP_RANGE', 'a function returning uniform numbers in [0, 1)', 'random', describe(random));
  let logProb = 0;
  const order = walk(policy, k, (_t, logits, logZ, taken) => {
    const u = random();
    let cumulative = 0, last = -1;
    for (let n = 0; n < logits.length; n++) {
      if (taken[n]) continue;
      last = n;
      cumulative += Math.exp(logits[n]! - logZ);
      if (u < cumulative) break;
    }
    logProb += logits[last]! - logZ;
    return last;
  });
  return { order, logProb };
}

/**
 * log π(order) = Σ_t l_t(i_t) − log Σ_{n not in S_t} exp l_t(n), and
 * dScores = dLogProb · d log π / d s (the penalty does not depend on s).
 */
export function keepLogProb(policy: SequentialPolicy, order: ArrayLike<number>, dLogProb = 0): { logProb: number; dScores: Float64Array } {
  const N = policy.scores.length;
  const dScores = new Float64Array(N);
  const seen = new Uint8Array(N);
  for (let t = 0; t < order.length; t++) {
    const i = order[t]!;
    if (!Number.isInteger(i) || i < 0 || i >= N || seen[i]) check.fail('ERR_GRIP_RANGE', `distinct indices in [0, ${N})`, 'order', `${i} at [${t}]`);
    seen[i] = 1;
  }
  let logProb = 0;
  walk(policy, order.length, (t, logits, logZ, taken) => {
    const i = order[t]!;
    logProb += logits[i]! - logZ;
    if (dLogProb !== 0) {
      for (let n = 0; n < N; n++) if (!taken[n]) dScores[n] = dScores[n]! - dLogProb * Math.exp(logits[n]! - logZ);
      dScores[i] = dScores[i]! + dLogProb;
    }
    return i;
  });
  return { logProb, dScores };
}
