// tokenizer.ts — text <-> token ids from a Hugging Face tokenizer.json (through
// @huggingface/tokenizers), and the LLaVA prompt: a chat template
// (@huggingface/jinja) or LLaVA-1.5's "USER: <image>\n... ASSISTANT:",
// encoded with exactly one image token for the runtime to expand.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Template } from '@huggingface/jinja';
import { Tokenizer } from '@huggingface/tokenizers';
import { GripError } from '../errors.js';
import { describe } from '../tensor.js';
import { check } from '../validate.js';
import { ioError, isRecord, jsonText, parseJsonObject } from '../json.js';

export interface EncodeOptions {
  /** Add what the tokenizer's post-processor adds (BOS for Llama); default true. */
  addSpecialTokens?: boolean | undefined;
}

export interface DecodeOptions {
  /** Leave out special tokens (BOS, EOS, <image>, <pad>...); default false. */
  skipSpecialTokens?: boolean | undefined;
}

/** One chat turn as chat templates read it: text, or a list of typed parts. */
export interface ChatMessage {
  role: string;
  content: string | ({ type: 'image' } | { type: 'text'; text: string })[];
}

export interface FromJSONOptions {
  /** A chat template that overrides tokenizer_config.json's chat_template. */
  chatTemplate?: string | undefined;
  /** Where that template came from, for messages (default: `where`). */
  chatTemplateWhere?: string | undefined;
}

export type PromptTemplate = 'llava-1.5' | 'chat' | 'raw';

export const IMAGE_TOKEN = '<image>';

/** Largest token id accepted: above any real vocabulary (~262k), far below what makes the library slow. */
export const MAX_TOKEN_ID = 2 ** 24 - 1;

/**
 * The ids of model.vocab ({token: id}) and added_tokens: integers in
 * [0, MAX_TOKEN_ID]. @huggingface/tokenizers sizes tables by the largest id,
 * so one id of 2^31 took minutes (a parser-fuzzer finding).
 */
function checkTokenIds(json: Record<string, unknown>, where: string): void {
  const fail = (what: string, id: unknown): never => {
    throw new GripError('ERR_GRIP_FORMAT', `expected a token id in [0, ${MAX_TOKEN_ID}] for ${what} in ${where} but received ${jsonText(id)}`);
  };
  const ok = (id: unknown) => Number.isInteger(id) && (id as number) >= 0 && (id as number) <= MAX_TOKEN_ID;
  const model = json.model;
  if (isRecord(model) && isRecord(model.vocab)) {
    for (const [token, id] of Object.entries(model.vocab)) if (!ok(id)) fail(`model.vocab[${JSON.stringify(token)}]`, id);
  }
  if (Array.isArray(json.added_tokens)) {
    json.added_tokens.forEach((added: unknown, i) => {
      if (isRecord(added) && !ok(added.id)) fail(`added_tokens[${i}].id`, added.id);
    });
  }
}

const errorText = (error: unknown) => (error instanceof Error ? error.message : String(error)).trim().split('\n')[0];

/** A token given in tokenizer_config.json: "<s>", or an AddedToken object {content: "<s>", ...}. */
function tokenText(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (isRecord(value) && typeof value.content === 'string') return value.content;
  return undefined;
}

/** The first special token of a TemplateProcessing post-processor's single-sequence template (BOS for Llama). */
function leadingSpecialToken(tokenizerJson: Record<string, unknown>): string | undefined {
  const post = tokenizerJson.post_processor;
  if (!isRecord(post) || post.type !== 'TemplateProcessing' || !Array.isArray(post.single)) return undefined;
  const first: unknown = post.single[0];
  return isRecord(first) && isRecord(first.SpecialToken) && typeof first.SpecialToken.id === 'string' ? first.SpecialToken.id : undefined;
}

/** tokenizer_config.json's chat_template: a string, or a list of {name, template} (the one named "default"). */
function configChatTemplate(config: Record<string, unknown>, where: string): string | undefined {
  const value = config.chat_template;
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) {
    const named = value.find((t: unknown) => isRecord(t) && t.name === 'default');
    if (isRecord(named) && typeof named.template === 'string') return named.template;
    if (value.every((t: unknown) => isRecord(t) && typeof t.name === 'string' && typeof t.template === 'string')) return undefined;
  }
  throw new GripError('ERR_GRIP_FORMAT',
    `expected a string or a list of {name, template} for chat_template in ${where} but received ${jsonText(value)}`);
}

async function readText(path: string, what: string, optional: boolean): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    if (optional && (error as { code?: unknown }).code === 'ENOENT') return undefined;
    throw ioError(error, `a readable ${what}`, path);
  }
}

export class TextTokenizer {
  /** Where the tokenizer came from (the tokenizer.json path), for messages. */
  readonly where: string;
  readonly bosTokenId?: number;
  readonly eosTokenId?: number;
  readonly padTokenId?: number;
  readonly bosToken?: string;
  readonly eosToken?: string;
  readonly padToken?: string;
  readonly unkToken?: string;
  /** One more than the largest token id (added tokens included): the ids decode accepts are [0, vocabSize). */
  readonly vocabSize: number;
  /** The Jinja chat template, when the model ships one. */
  readonly chatTemplate?: string;
  private readonly tokenizer: Tokenizer;
  private readonly template?: Template;
  private readonly templateWhere: string;

  private constructor(tokenizer: Tokenizer, config: Record<string, unknown>, bosFallback: string | undefined,
    chatTemplate: string | undefined, where: string, templateWhere: string) {
    this.tokenizer = tokenizer;
    this.where = where;
    this.templateWhere = templateWhere;
    let maxId = -1;
    for (const id of tokenizer.get_vocab(true).values()) maxId = Math.max(maxId, id);
    this.vocabSize = maxId + 1;

    const special = (key: string, fallback?: string): [string, number] | [] => {
      const text = key in config ? tokenText(config[key]) : fallback;
      const id = text === undefined ? undefined : tokenizer.token_to_id(text);
      return text !== undefined && id !== undefined ? [text, id] : [];
    };
    [this.bosToken, this.bosTokenId] = special('bos_token', bosFallback);
    [this.eosToken, this.eosTokenId] = special('eos_token');
    [this.padToken, this.padTokenId] = special('pad_token');
    [this.unkToken] = special('unk_token');

    if (chatTemplate !== undefined) {
      try {
        this.template = new Template(chatTemplate);
      } catch (error) {
        throw new GripError('ERR_GRIP_FORMAT',
          `expected a Jinja chat template for chat_template in ${templateWhere} but received one that does not parse (${errorText(error)})`);
      }
      this.chatTemplate = chatTemplate;
    }
  }

  /**
   * Reads `<dir>/tokenizer.json` (required), `tokenizer_config.json`
   * (optional: special tokens, chat_template) and a chat template from
   * `chat_template.jinja` or `chat_template.json` ({"chat_template": "..."}),
   * which win over tokenizer_config.json's, in that order.
   */
  static async load(dir: string): Promise<TextTokenizer> {
    const tokenizerPath = join(dir, 'tokenizer.json');
    const configPath = join(dir, 'tokenizer_config.json');
    const jinjaPath = join(dir, 'chat_template.jinja');
    const templateJsonPath = join(dir, 'chat_template.json');
    const [tokenizerText, configText, jinjaText, templateJsonText] = await Promise.all([
      readText(tokenizerPath, 'tokenizer.json', false),
      readText(configPath, 'tokenizer_config.json', true),
      readText(jinjaPath, 'chat_template.jinja', true),
      readText(templateJsonPath, 'chat_template.json', true),
    ]);
    const tokenizerJson = parseJsonObject(tokenizerText!, tokenizerPath);
    const config = configText === undefined ? {} : parseJsonObject(configText, configPath);

    const options: FromJSONOptions = {};
    if (jinjaText !== undefined) {
      options.chatTemplate = jinjaText;
      options.chatTemplateWhere = jinjaPath;
    } else if (templateJsonText !== undefined) {
      const value = parseJsonObject(templateJsonText, templateJsonPath).chat_template;
      if (typeof value !== 'string') {
        throw new GripError('ERR_GRIP_FORMAT', `expected a string for chat_template in ${templateJsonPath} but received ${jsonText(value)}`);
      }
      options.chatTemplate = value;
      options.chatTemplateWhere = templateJsonPath;
    } else options.chatTemplateWhere = configPath;
    return TextTokenizer.fromJSON(tokenizerJson, config, tokenizerPath, options);
  }

  /** A tokenizer from parsed tokenizer.json and tokenizer_config.json ({} or null when there is none); `where` is named in errors. */
  static fromJSON(tokenizerJson: unknown, tokenizerConfig: unknown, where: string, options: FromJSONOptions = {}): TextTokenizer {
    if (!isRecord(tokenizerJson)) throw new GripError('ERR_GRIP_FORMAT', `expected a JSON object for ${where} but received ${describe(tokenizerJson)}`);
    const config = tokenizerConfig ?? {};
    if (!isRecord(config)) {
      throw new GripError('ERR_GRIP_FORMAT', `expected a JSON object for the tokenizer_config.json of ${where} but received ${describe(config)}`);
    }
    const templateWhere = options.chatTemplateWhere ?? where;
    const chatTemplate = options.chatTemplate ?? configChatTemplate(config, templateWhere);
    checkTokenIds(tokenizerJson, where);
    let tokenizer: Tokenizer;
    try {
      // A tokenizer.json without added tokens is valid for the Rust library; this one needs the list.
      tokenizer = new Tokenizer({ added_tokens: [], ...tokenizerJson }, config);
    } catch (error) {
      throw new GripError('ERR_GRIP_FORMAT',
        `expected a tokenizer.json that @huggingface/tokenizers accepts for ${where} but received one it rejects (${errorText(error)})`);
    }
    return new TextTokenizer(tokenizer, config, leadingSpecialToken(tokenizerJson), chatTemplate, where, templateWhere);
  }

  /** Token ids of `text` (with BOS as the post-processor adds it, unless addSpecialTokens is false). */
  encode(text: string, options: EncodeOptions = {}): Int32Array {
    if (typeof text !== 'string') check.fail('ERR_GRIP_RANGE', 'a string', 'text', describe(text));
    const addSpecialTokens = options.addSpecialTokens ?? true;
    try {
      return Int32Array.from(this.tokenizer.encode(text, { add_special_tokens: addSpecialTokens }).ids);
    } catch (error) {
      // A tokenizer.json the library accepts but cannot encode with (a post-processor template
      // or a pre-tokenizer option of the wrong type: parser-fuzzer findings, seed 11).
      throw new GripError('ERR_GRIP_FORMAT', `expected a tokenizer.json that @huggingface/tokenizers can encode with for ${this.where} but received one it fails on (${errorText(error)})`);
    }
  }

  /** The text of token ids; every id must be an integer in [0, vocabSize). */
  decode(ids: ArrayLike<number>, options: DecodeOptions = {}): string {
    if (ids === null || typeof ids !== 'object' || typeof ids.length !== 'number') check.fail('ERR_GRIP_RANGE', 'an array of token ids', 'ids', describe(ids));
    const list = Array.from(ids);
    list.forEach((id, i) => {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
        check.fail('ERR_GRIP_RANGE', `token ids in [0, ${this.vocabSize - 1}]`, 'ids', `${describe(id)} at [${i}]`);
      }
    });
    if (list.length === 0) return '';
    try {
      return this.tokenizer.decode(list, { skip_special_tokens: options.skipSpecialTokens ?? false });
    } catch (error) {
      // A tokenizer.json the library accepts but cannot decode with (a token that is not a string: a parser-fuzzer finding).
      throw new GripError('ERR_GRIP_FORMAT', `expected a tokenizer.json that @huggingface/tokenizers can decode with for ${this.where} but received one it fails on (${errorText(error)})`);
    }
  }

  /** The id of a token string (a vocabulary entry such as "▁Hello", or an added token such as "<image>"). */
  tokenId(token: string): number | undefined {
    return this.tokenizer.token_to_id(token);
  }

  /** The token string of an id, or undefined when the vocabulary has none. */
  idToToken(id: number): string | undefined {
    return this.tokenizer.id_to_token(id);
  }

  /**
   * The chat template rendered over `messages` (with bos_token, eos_token,
   * pad_token and unk_token set, as transformers' apply_chat_template does).
   * Errors: no chat template is ERR_GRIP_UNSUPPORTED; a template that fails
   * on these messages (raise_exception, a type error) is ERR_GRIP_FORMAT.
   */
  applyChatTemplate(messages: readonly ChatMessage[], options: { addGenerationPrompt?: boolean } = {}): string {
    if (!this.template) {
      throw new GripError('ERR_GRIP_UNSUPPORTED',
        `expected a chat template (chat_template.jinja, chat_template.json or chat_template in tokenizer_config.json) for the tokenizer of ${this.where} but received none`);
    }
    const variables: Record<string, unknown> = { messages, add_generation_prompt: options.addGenerationPrompt ?? false };
    for (const [name, value] of [['bos_token', this.bosToken], ['eos_token', this.eosToken], ['pad_token', this.padToken], ['unk_token', this.unkToken]] as const) {
      if (value !== undefined) variables[name] = value;
    }
    try {
      return this.template.render(variables);
    } catch (error) {
      throw new GripError('ERR_GRIP_FORMAT', `expected a chat template that renders these messages for chat_template in ${this.templateWhere} but received an error (${errorText(error)})`);
    }
  }
}

/**
 * The prompt text for one image and one user turn:
 * - 'llava-1.5': exactly `USER: <image>\n${prompt} ASSISTANT:`;
 * - 'chat': the tokenizer's chat template over one user message with an image
 *   part and a text part, and the generation prompt (llava-hf's template
 *   gives the same text as 'llava-1.5'). A template that reads content as a
 *   string, or renders no <image> from the parts, is given "<image>\n" + prompt;
 * - 'raw': the prompt unchanged (the caller writes <image> where it goes).
 * Default: 'chat' when the tokenizer has a chat template, else 'llava-1.5'.
 */
export function buildPrompt(tokenizer: TextTokenizer, prompt: string, options: { template?: PromptTemplate | undefined; imageToken?: string | undefined } = {}): string {
  if (typeof prompt !== 'string') check.fail('ERR_GRIP_RANGE', 'a string', 'prompt', describe(prompt));
  const template = options.template ?? (tokenizer.chatTemplate !== undefined ? 'chat' : 'llava-1.5');
  check.oneOf(template, 'options.template', ['llava-1.5', 'chat', 'raw']);
  if (template === 'raw') return prompt;
  if (template === 'llava-1.5') return `USER: ${IMAGE_TOKEN}\n${prompt} ASSISTANT:`;

  // The placeholder a chat template renders for an image part: <image> (LLaVA), <|image_pad|> (Qwen2-VL).
  const placeholder = options.imageToken ?? IMAGE_TOKEN;
  const render = (content: ChatMessage['content']) => tokenizer.applyChatTemplate([{ role: 'user', content }], { addGenerationPrompt: true });
  if (tokenizer.chatTemplate === undefined) tokenizer.applyChatTemplate([]); // throws ERR_GRIP_UNSUPPORTED, naming the files looked for
  try {
    const text = render([{ type: 'image' }, { type: 'text', text: prompt }]);
    if (text.includes(placeholder)) return text;
  } catch {
    // A template that expects string content: try that below.
  }
  const text = render(`${placeholder}\n${prompt}`);
  if (!text.includes(placeholder)) {
    throw new GripError('ERR_GRIP_FORMAT',
      `expected a chat template that renders the image placeholder ${placeholder} for the chat template of ${tokenizer.where} but received a prompt without it`);
  }
  return text;
}

/**
 * Token ids of a prompt text (BOS added as the tokenizer's post-processor
 * does; a text that already starts with the BOS string, as some chat templates
 * write it, keeps one BOS), checked to hold `imageTokenId` exactly once:
 * else ERR_GRIP_RANGE "expected exactly one <image> token for prompt but received N".
 */
export function encodePrompt(tokenizer: TextTokenizer, text: string, imageTokenId: number): Int32Array {
  check.integer(imageTokenId, 'imageTokenId', 0, 0x7fffffff);
  let ids = tokenizer.encode(text);
  const bos = tokenizer.bosTokenId;
  if (bos !== undefined && ids.length >= 2 && ids[0] === bos && ids[1] === bos) ids = ids.slice(1);
  let count = 0;
  for (const id of ids) if (id === imageTokenId) count++;
  if (count !== 1) {
    const name = tokenizer.idToToken(imageTokenId) ?? `id ${imageTokenId}`;
    throw new GripError('ERR_GRIP_RANGE', `expected exactly one ${name} token for prompt but received ${count}`);
  }
  return ids;
}
