// llama2_tokenizer.ts — a genuine Llama-2 (LLaVA-1.5) tokenizer.json, built in
// memory at test time from the vocabulary and merges that llama-tokenizer-js
// (a devDependency) embeds, and that package's own BPE encoder as an
// independent reference. No copy of the vocabulary is committed.
//
// llama-tokenizer-js carries the LLaMA / Llama-2 SentencePiece model
// (meta-llama/Llama-2-7b-hf, which lmsys/vicuna-7b-v1.5 and so
// llava-hf/llava-1.5-7b-hf inherit): 32000 tokens, one per line, the line
// number being the id; and 61249 merges as (left id, right id) pairs in
// priority order, which its decompressMerges turns into a Map from "left right"
// to 2 * index + 1 (insertion order = priority). Hugging Face's tokenizer.json
// lists merges by priority too, first = applied first, as "left right" strings
// (or [left, right] pairs since tokenizers 0.20; @huggingface/tokenizers 0.2.0
// reads both and ranks a merge by its index).
import llamaTokenizer, { type LlamaTokenizer } from 'llama-tokenizer-js';

/** llama-tokenizer-js's tokenizer over its embedded Llama-2 data: `encode(text, addBos = true, addPrecedingSpace = true)`. */
export const reference: LlamaTokenizer = llamaTokenizer;

export type MergeFormat = 'strings' | 'pairs';

let cache: { vocab: Record<string, number>; merges: [string, string][] } | undefined;

/** The vocabulary (token -> id) and the merges (by priority) of llama-tokenizer-js, checked for consistency. */
function llamaData(): { vocab: Record<string, number>; merges: [string, string][] } {
  if (cache) return cache;
  const { vocabById, vocabByString, merges } = reference;
  if (vocabById.length !== 32000 || vocabByString.size !== 32000) {
    throw new Error(`llama-tokenizer-js: expected 32000 distinct tokens but found ${vocabById.length} (${vocabByString.size} distinct)`);
  }
  const vocab: Record<string, number> = Object.create(null);
  vocabById.forEach((token, id) => { vocab[token] = id; });
  const pairs: [string, string][] = [];
  let previous = 0;
  for (const [key, priority] of merges) {
    const parts = key.split(' ');
    const [left, right] = parts;
    // No token holds a space (SentencePiece writes it "▁"), so "left right" splits one way.
    if (parts.length !== 2 || left === undefined || right === undefined || !(left in vocab) || !(right in vocab) || !(left + right in vocab)) {
      throw new Error(`llama-tokenizer-js: merge ${JSON.stringify(key)} is not two tokens that join into a third`);
    }
    if (priority <= previous) throw new Error(`llama-tokenizer-js: merge ${JSON.stringify(key)} is out of priority order`);
    previous = priority;
    pairs.push([left, right]);
  }
  cache = { vocab, merges: pairs };
  return cache;
}

const addedToken = (id: number, content: string) =>
  ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });

/**
 * Llama-2-7b-hf's tokenizer.json (the "legacy" SentencePiece conversion:
 * Prepend "▁" and Replace " " -> "▁" normalizers, no pre-tokenizer, BOS from
 * the post-processor, byte fallback), with llama-tokenizer-js's vocabulary and
 * merges. `llava` (default true) adds llava-1.5-7b-hf's two added tokens,
 * "<image>" = 32000 and "<pad>" = 32001, special and not normalized.
 * A fresh object each call.
 */
export function llama2TokenizerJson(options: { llava?: boolean; merges?: MergeFormat } = {}): Record<string, any> {
  const { vocab, merges } = llamaData();
  const added = [addedToken(0, '<unk>'), addedToken(1, '<s>'), addedToken(2, '</s>')];
  if (options.llava ?? true) added.push(addedToken(32000, '<image>'), addedToken(32001, '<pad>'));
  const bos = (typeId: number) => ({ SpecialToken: { id: '<s>', type_id: typeId } });
  const sequence = (id: string, typeId: number) => ({ Sequence: { id, type_id: typeId } });
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: {
      type: 'Sequence',
      normalizers: [{ type: 'Prepend', prepend: '▁' }, { type: 'Replace', pattern: { String: ' ' }, content: '▁' }],
    },
    pre_tokenizer: null,
    post_processor: {
      type: 'TemplateProcessing',
      single: [bos(0), sequence('A', 0)],
      pair: [bos(0), sequence('A', 0), bos(1), sequence('B', 1)],
      special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
    },
    decoder: {
      type: 'Sequence',
      decoders: [
        { type: 'Replace', pattern: { String: '▁' }, content: ' ' },
        { type: 'ByteFallback' },
        { type: 'Fuse' },
        { type: 'Strip', content: ' ', start: 1, stop: 0 },
      ],
    },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: '<unk>',
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      vocab: { ...vocab },
      merges: (options.merges ?? 'strings') === 'pairs' ? merges.map(([a, b]) => [a, b]) : merges.map(([a, b]) => `${a} ${b}`),
    },
  };
}

/**
 * llava-1.5-7b-hf's tokenizer_config.json, as far as it matters here: the
 * special tokens (pad "<pad>"), add_bos_token, clean_up_tokenization_spaces
 * false (LlamaTokenizerFast's default; @huggingface/tokenizers would default
 * to true and rewrite " ." as "." on decode) and legacy false, which only
 * steers transformers' slow-to-fast conversion: the shipped tokenizer.json,
 * which wins, is the legacy one above. A fresh object each call.
 */
export function llavaTokenizerConfig(): Record<string, any> {
  const entry = (content: string) => { const { id: _, ...rest } = addedToken(0, content); return rest; };
  return {
    add_bos_token: true,
    add_eos_token: false,
    added_tokens_decoder: { 0: entry('<unk>'), 1: entry('<s>'), 2: entry('</s>'), 32000: entry('<image>'), 32001: entry('<pad>') },
    bos_token: '<s>',
    clean_up_tokenization_spaces: false,
    eos_token: '</s>',
    legacy: false,
    model_max_length: 1000000000000000019884624838656,
    pad_token: '<pad>',
    padding_side: 'left',
    processor_class: 'LlavaProcessor',
    sp_model_kwargs: {},
    tokenizer_class: 'LlamaTokenizer',
    unk_token: '<unk>',
    use_default_system_prompt: false,
  };
}
