// openai.ts — the OpenAI chat-completions wire format: a request body
// parsed and checked into what the VLM needs, and the responses, the
// server-sent-event chunks and the errors written back in OpenAI's shapes.
// Only what this runtime can honour is accepted; anything else is refused
// with a GripError whose message says what was expected.
import { randomUUID } from 'node:crypto';
import { GripError, type GripErrorCode } from '../errors.js';
import type { GenerateResult } from '../model/runtime/types.js';

/** A chat-completions request, checked. */
export interface ChatRequest {
  /** The text parts of the one user message, joined by newlines. */
  prompt: string;
  /** The encoded image of the message's one image_url part (decoded from its data: URL). */
  image: Buffer;
  /** New tokens at most (max_tokens or max_completion_tokens). */
  maxTokens: number;
  stream: boolean;
  /** stream_options.include_usage: a last chunk with the usage and no choices. */
  includeUsage: boolean;
  /** The extra field keep_ratio, in (0, 1]; undefined: the server's default. */
  keepRatio: number | undefined;
  /** The extra field pruner (a name); undefined: the server's default. */
  pruner: string | undefined;
  /** The extra field ignore_eos (as vLLM's): decode max_tokens tokens even past end-of-sequence. */
  ignoreEos: boolean;
}

export interface ParseLimits {
  /** The served model's id: a request naming another model is refused. */
  modelId: string;
  /** The largest max_tokens accepted. */
  maxTokensLimit: number;
  /** max_tokens when the request gives none. */
  defaultMaxTokens: number;
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const shown = (v: unknown): string => {
  const text = JSON.stringify(v) ?? String(v);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
};
function fail(code: GripErrorCode, expected: string, what: string, received: string): never {
  throw new GripError(code, `expected ${expected} for ${what} but received ${received}`);
}

/** Parses the JSON text of a request body (ERR_GRIP_FORMAT when it is not JSON). */
export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    return fail('ERR_GRIP_FORMAT', 'a JSON body', 'the request', `invalid JSON (${(error as Error).message})`);
  }
}

/** The bytes of a base64 `data:` URL; any other URL is refused, as nothing may download. */
export function decodeDataUrl(url: unknown, what: string): Buffer {
  if (typeof url !== 'string') return fail('ERR_GRIP_RANGE', 'a data: URL string', what, shown(url));
  if (!url.startsWith('data:')) {
    const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(url)?.[1]?.toLowerCase();
    return fail('ERR_GRIP_UNSUPPORTED', 'a data: URL (the server downloads nothing)', what,
      scheme ? `a ${scheme}: URL` : `"${url.slice(0, 40)}"`);
  }
  const comma = url.indexOf(',');
  const header = comma < 0 ? url.slice(5) : url.slice(5, comma);
  const params = header.split(';');
  const mediaType = params[0]!.toLowerCase();
  if (comma < 0 || !params.slice(1).includes('base64')) return fail('ERR_GRIP_FORMAT', 'a base64 data: URL (data:image/png;base64,...)', what, `data:${header.slice(0, 40)}`);
  if (mediaType !== '' && !mediaType.startsWith('image/')) return fail('ERR_GRIP_FORMAT', 'an image media type', what, `"${mediaType}"`);
  const payload = url.slice(comma + 1).replace(/\s+/g, '');
  // Buffer.from(.., 'base64') skips bad characters silently: check them first.
  if (payload.length === 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(payload) || payload.length % 4 === 1) {
    return fail('ERR_GRIP_FORMAT', 'base64 image data', what, payload.length === 0 ? 'nothing' : 'characters outside base64');
  }
  return Buffer.from(payload, 'base64');
}

/** The message content: its text parts and its image parts' URLs. */
function readContent(content: unknown, what: string): { texts: string[]; images: { url: unknown; what: string }[] } {
  if (typeof content === 'string') return { texts: [content], images: [] };
  if (!Array.isArray(content)) return fail('ERR_GRIP_RANGE', 'a string or an array of content parts', what, shown(content));
  const texts: string[] = [], images: { url: unknown; what: string }[] = [];
  content.forEach((part: unknown, i) => {
    const at = `${what}[${i}]`;
    if (!isRecord(part)) return fail('ERR_GRIP_RANGE', 'a content part object', at, shown(part));
    if (part.type === 'text') {
      if (typeof part.text !== 'string') return fail('ERR_GRIP_RANGE', 'a string', `${at}.text`, shown(part.text));
      texts.push(part.text);
    } else if (part.type === 'image_url') {
      const imageUrl = part.image_url;
      images.push({ url: isRecord(imageUrl) ? imageUrl.url : imageUrl, what: `${at}.image_url.url` });
    } else return fail('ERR_GRIP_UNSUPPORTED', 'a content part of type text or image_url', `${at}.type`, shown(part.type));
  });
  return { texts, images };
}

/** Checks a chat-completions body (already parsed from JSON) and returns what the VLM needs. */
export function parseChatRequest(body: unknown, limits: ParseLimits): ChatRequest {
  if (!isRecord(body)) return fail('ERR_GRIP_RANGE', 'a JSON object', 'the request body', shown(body));
  if (body.model !== undefined && body.model !== limits.modelId) fail('ERR_GRIP_RANGE', `the served model "${limits.modelId}"`, 'model', shown(body.model));
  const messages = body.messages;
  if (!Array.isArray(messages) || messages.length === 0) return fail('ERR_GRIP_RANGE', 'a non-empty array of messages', 'messages', shown(messages));
  if (messages.length !== 1 || !isRecord(messages[0]) || messages[0].role !== 'user') {
    fail('ERR_GRIP_UNSUPPORTED', 'one user message (the model answers one question about one image)', 'messages',
      messages.length === 1 ? `a message with role ${shown(isRecord(messages[0]) ? messages[0].role : messages[0])}` : `${messages.length} messages`);
  }
  const { texts, images } = readContent((messages[0] as Record<string, unknown>).content, 'messages[0].content');
  if (images.length !== 1) fail('ERR_GRIP_RANGE', 'one image_url part (a data: URL)', 'messages[0].content', images.length === 0 ? 'no image' : `${images.length} images`);
  const image = decodeDataUrl(images[0]!.url, images[0]!.what);
  const prompt = texts.join('\n');
  if (prompt.trim() === '') fail('ERR_GRIP_RANGE', 'a text part with the question', 'messages[0].content', 'no text');

  const integer = (key: string, low: number, high: number): number | undefined => {
    const v = body[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < low || v > high) fail('ERR_GRIP_RANGE', `an integer in [${low}, ${high}]`, key, shown(v));
    return v as number;
  };
  const maxTokens = integer('max_completion_tokens', 1, limits.maxTokensLimit) ?? integer('max_tokens', 1, limits.maxTokensLimit) ?? limits.defaultMaxTokens;
  const temperature = body.temperature;
  if (temperature !== undefined && temperature !== null && temperature !== 0) {
    fail('ERR_GRIP_UNSUPPORTED', 'temperature 0 or none (greedy decoding; sampling is not implemented)', 'temperature', shown(temperature));
  }
  if (body.top_p !== undefined && body.top_p !== null && body.top_p !== 1) fail('ERR_GRIP_UNSUPPORTED', 'top_p 1 or none (greedy decoding)', 'top_p', shown(body.top_p));
  if (body.n !== undefined && body.n !== null && body.n !== 1) fail('ERR_GRIP_UNSUPPORTED', 'n 1 or none (one greedy answer)', 'n', shown(body.n));
  const stop = body.stop;
  if (stop !== undefined && stop !== null && !(Array.isArray(stop) && stop.length === 0)) fail('ERR_GRIP_UNSUPPORTED', 'no stop sequences (decoding stops at end-of-sequence or max_tokens)', 'stop', shown(stop));
  const flag = (v: unknown, key: string): boolean => {
    if (v === undefined || v === null) return false;
    if (typeof v !== 'boolean') fail('ERR_GRIP_RANGE', 'a boolean', key, shown(v));
    return v as boolean;
  };
  const stream = flag(body.stream, 'stream');
  const options = body.stream_options;
  if (options !== undefined && options !== null && !isRecord(options)) fail('ERR_GRIP_RANGE', 'an object', 'stream_options', shown(options));
  const includeUsage = flag(isRecord(options) ? options.include_usage : undefined, 'stream_options.include_usage');
  const keep = body.keep_ratio;
  if (keep !== undefined && keep !== null && !(typeof keep === 'number' && keep > 0 && keep <= 1)) fail('ERR_GRIP_RANGE', 'a number in (0, 1]', 'keep_ratio', shown(keep));
  const pruner = body.pruner;
  if (pruner !== undefined && pruner !== null && typeof pruner !== 'string') fail('ERR_GRIP_RANGE', 'a pruner name', 'pruner', shown(pruner));
  return {
    prompt, image, maxTokens, stream, includeUsage,
    keepRatio: typeof keep === 'number' ? keep : undefined,
    pruner: typeof pruner === 'string' ? pruner : undefined,
    ignoreEos: flag(body.ignore_eos, 'ignore_eos'),
  };
}

// ---- responses -----------------------------------------------------------------------

/** The identity of one completion, shared by its response or all its chunks. */
export interface CompletionId {
  id: string;
  created: number;
  model: string;
}

export function newCompletionId(model: string): CompletionId {
  return { id: `chatcmpl-${randomUUID().replaceAll('-', '')}`, created: Math.floor(Date.now() / 1000), model };
}

export interface Usage {
  /** Tokens the LLM prefilled: the prompt's text and the kept visual tokens. */
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  /** Visual tokens of the image before pruning. */
  visual_tokens: number;
  /** Visual tokens kept by the pruner (all of them unpruned). */
  kept_visual_tokens: number;
}

export type FinishReason = 'stop' | 'length';

export function usageOf(result: GenerateResult): Usage {
  // The image's token count from the result itself (kept / keep ratio), since
  // it follows the image in families with dynamic resolution (LLaVA-NeXT).
  const numImageTokens = Math.round(result.kept.indices.length / result.kept.keepRatio);
  return {
    prompt_tokens: result.prefillTokens,
    completion_tokens: result.tokenIds.length,
    total_tokens: result.prefillTokens + result.tokenIds.length,
    visual_tokens: numImageTokens,
    kept_visual_tokens: result.kept.indices.length,
  };
}

/** 'stop' when the answer ended at an end-of-sequence token, else 'length' (max_tokens reached). */
export function finishReason(result: GenerateResult, eos: ReadonlySet<number>): FinishReason {
  const last = result.tokenIds.at(-1);
  return last !== undefined && eos.has(last) ? 'stop' : 'length';
}

export function completionBody(id: CompletionId, result: GenerateResult, finish: FinishReason, usage: Usage): object {
  return {
    id: id.id, object: 'chat.completion', created: id.created, model: id.model,
    choices: [{ index: 0, message: { role: 'assistant', content: result.text }, logprobs: null, finish_reason: finish }],
    usage,
  };
}

/** One server-sent event of a streamed completion: a content delta, the first (role) chunk, the last (finish) chunk, or the usage chunk. */
export function chunkEvent(id: CompletionId, part: { role: true } | { content: string } | { finish: FinishReason } | { usage: Usage }): string {
  const base = { id: id.id, object: 'chat.completion.chunk', created: id.created, model: id.model };
  let body: object;
  if ('usage' in part) body = { ...base, choices: [], usage: part.usage };
  else {
    const delta = 'role' in part ? { role: 'assistant', content: '' } : 'content' in part ? { content: part.content } : {};
    body = { ...base, choices: [{ index: 0, delta, logprobs: null, finish_reason: 'finish' in part ? part.finish : null }] };
  }
  return `data: ${JSON.stringify(body)}\n\n`;
}

/** The event that ends a stream. */
export const DONE_EVENT = 'data: [DONE]\n\n';

/**
 * The deltas of a stream trimmed as GenerateResult.text is: leading
 * whitespace dropped, trailing whitespace held back until more text follows,
 * so the deltas join to exactly the non-streamed content.
 */
export function trimmedDeltas(): (delta: string) => string {
  let started = false, pending = '';
  return (delta) => {
    let text = pending + delta;
    if (!started) {
      text = text.trimStart();
      if (text === '') return '';
      started = true;
    }
    const body = text.trimEnd();
    pending = text.slice(body.length);
    return body;
  };
}

// ---- errors --------------------------------------------------------------------------

export type ErrorType = 'invalid_request_error' | 'not_found_error' | 'rate_limit_error' | 'server_error';

/** An error answered in OpenAI's JSON shape, carrying the GripError code. */
export function errorBody(error: GripError, type: ErrorType): object {
  return { error: { message: error.message, type, code: error.code, param: null } };
}
