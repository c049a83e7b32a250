// request.ts — the checks every request passes before any work starts, and
// the text half of a row: the prompt tokenised and split at the image.
import { describe } from '../../tensor.js';
import { check } from '../../validate.js';
import { buildPrompt, encodePrompt, type TextTokenizer } from '../tokenizer.js';
import type { GenerateRequest, PromptSource, PruneOptions } from './types.js';

export function checkRequestObject(request: unknown): void {
  if (typeof request !== 'object' || request === null) check.fail('ERR_GRIP_RANGE', 'a request object', 'request', String(request));
}

export function checkPruneOptions(r: PruneOptions, what: string): void {
  if (r.keepRatio !== undefined) check.number(r.keepRatio, `${what}.keepRatio`, (v) => v > 0 && v <= 1, 'a number in (0, 1]');
  if (r.cachePolicy !== undefined) check.oneOf(r.cachePolicy, `${what}.cachePolicy`, ['keep', 'compact']);
  if (r.imageNewline !== undefined) check.oneOf(r.imageNewline, `${what}.imageNewline`, ['prune', 'keep']);
  if (r.budget !== undefined) check.oneOf(r.budget, `${what}.budget`, ['image', 'tile']);
  if (r.pruner !== undefined && (typeof r.pruner !== 'object' || r.pruner === null || typeof r.pruner.select !== 'function')) {
    check.fail('ERR_GRIP_RANGE', 'a Pruner (an object with point and select())', `${what}.pruner`, String(r.pruner));
  }
}

/** A batch for generateBatch: non-empty, one pruner for all rows, each row's options valid. */
export function checkBatch(requests: readonly GenerateRequest[]): void {
  if (!Array.isArray(requests) || requests.length === 0) check.fail('ERR_GRIP_SHAPE', 'a non-empty array of requests', 'requests', Array.isArray(requests) ? 'an empty array' : describe(requests));
  const pruner = requests[0]!.pruner;
  requests.forEach((r, b) => {
    if (r.pruner !== pruner) check.fail('ERR_GRIP_RANGE', 'the same pruner in every request of a batch', `requests[${b}].pruner`, r.pruner?.name ?? 'none');
    checkPruneOptions(r, `requests[${b}]`);
    if (r.maxNewTokens !== undefined) check.integer(r.maxNewTokens, `requests[${b}].maxNewTokens`, 0, 1 << 20);
  });
}

export interface PromptSpec {
  tokenizer: TextTokenizer;
  imageTokenIndex: number;
  vocabSize: number;
  /** Visual tokens per image (an already expanded run has this many image tokens). */
  numImageTokens: number;
}

/** The request's token ids split around its image: one image token, or the expanded run of N that newer processors emit. */
export function splitPrompt(spec: PromptSpec, request: PromptSource, what: string): { before: Int32Array; after: Int32Array } {
  let ids: Int32Array;
  const imageToken = spec.imageTokenIndex;
  if (request.inputIds !== undefined) {
    ids = Int32Array.from(request.inputIds);
    ids.forEach((id, i) => check.integer(id, `${what}.inputIds[${i}]`, 0, spec.vocabSize - 1));
  } else if (typeof request.prompt === 'string') {
    const text = buildPrompt(spec.tokenizer, request.prompt, { ...(request.template ? { template: request.template } : {}), imageToken: spec.tokenizer.idToToken(imageToken) });
    ids = encodePrompt(spec.tokenizer, text, imageToken);
  } else {
    return check.fail('ERR_GRIP_RANGE', 'prompt (a string) or inputIds', what, 'neither');
  }
  const at = ids.indexOf(imageToken);
  const count = ids.reduce((n, id) => n + (id === imageToken ? 1 : 0), 0);
  const N = spec.numImageTokens;
  if (at < 0 || (count !== 1 && count !== N) || (count === N && ids[at + N - 1] !== imageToken)) {
    check.fail('ERR_GRIP_RANGE', `one image token (${imageToken}) or a run of ${N}`, `${what} token ids`, `${count}`);
  }
  return { before: ids.slice(0, at), after: ids.slice(at + count) };
}
