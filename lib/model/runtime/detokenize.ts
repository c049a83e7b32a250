// detokenize.ts — incremental detokenisation for streaming: the text each
// new token adds to the decoded answer, shared by VLM.stream and the server.
import type { TextTokenizer } from '../tokenizer.js';

/** A function taking each generated token in order and returning the text it adds (empty while it ends inside a UTF-8 character). */
export function textDeltas(tokenizer: TextTokenizer): (token: number) => string {
  const tokens: number[] = [];
  let text = '';
  return (token) => {
    tokens.push(token);
    const full = tokenizer.decode(Int32Array.from(tokens), { skipSpecialTokens: true });
    // A token that ends inside a UTF-8 character adds its text with the next one.
    const delta = full.endsWith('\uFFFD') ? '' : full.startsWith(text) ? full.slice(text.length) : full;
    if (delta !== '') text = full;
    return delta;
  };
}
