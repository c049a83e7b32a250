// tokenizer.ts — the files of the testbed model that depend only on the
// vocabulary: tokenizer.json (whole words as WordPiece, which
// @huggingface/tokenizers loads), tokenizer_config.json and the CLIP
// preprocessor_config.json for 96x96 images. Same structure as test/fixtures/tiny-llava.
import { IMAGE_SIZE, VOCABULARY } from '../../lib/data/shapes/index.ts';

export const PAD_ID = 0;
export const BOS_ID = 1;
export const EOS_ID = 2;
export const UNK_ID = 3;
export const IMAGE_TOKEN_ID = 4;
const SPECIAL_TOKENS = ['<pad>', '<s>', '</s>', '<unk>', '<image>'];

/** Every token by id: the specials, the prompt template's words, then the question/answer vocabulary sorted. */
export function tokensById(): string[] {
  const tokens = [...SPECIAL_TOKENS, 'user', ':', 'assistant', ...[...VOCABULARY].sort()];
  if (new Set(tokens).size !== tokens.length) throw new Error('expected unique tokens for the testbed vocabulary but received duplicates');
  return tokens;
}

export interface ModelTextFiles {
  'tokenizer.json': Record<string, unknown>;
  'tokenizer_config.json': Record<string, unknown>;
  'preprocessor_config.json': Record<string, unknown>;
}

/** The three files, as JSON values (write each with JSON.stringify(value, null, 2)). */
export function modelTextFiles(): ModelTextFiles {
  const tokens = tokensById();
  const bos = { SpecialToken: { id: '<s>', type_id: 0 } };
  const tokenizer = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: SPECIAL_TOKENS.map((content, id) => ({
      id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true,
    })),
    normalizer: { type: 'Lowercase' },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: {
      type: 'TemplateProcessing',
      single: [bos, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [bos, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '<s>', type_id: 1 } }, { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: { '<s>': { id: '<s>', ids: [BOS_ID], tokens: ['<s>'] } },
    },
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    model: {
      type: 'WordPiece',
      unk_token: '<unk>',
      continuing_subword_prefix: '##',
      max_input_chars_per_word: 100,
      vocab: Object.fromEntries(tokens.map((token, id) => [token, id])),
    },
  };
  const tokenizerConfig = {
    bos_token: '<s>',
    eos_token: '</s>',
    unk_token: '<unk>',
    pad_token: '<pad>',
    add_bos_token: true,
    model_max_length: 512,
    clean_up_tokenization_spaces: false,
  };
  const preprocessor = {
    image_processor_type: 'CLIPImageProcessor',
    do_resize: true,
    size: { shortest_edge: IMAGE_SIZE },
    resample: 3,
    do_center_crop: true,
    crop_size: { height: IMAGE_SIZE, width: IMAGE_SIZE },
    do_rescale: true,
    rescale_factor: 1 / 255,
    do_normalize: true,
    image_mean: [0.48145466, 0.4578275, 0.40821073],
    image_std: [0.26862954, 0.26130258, 0.27577711],
    do_convert_rgb: true,
  };
  return { 'tokenizer.json': tokenizer, 'tokenizer_config.json': tokenizerConfig, 'preprocessor_config.json': preprocessor };
}
