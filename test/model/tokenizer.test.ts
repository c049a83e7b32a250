// tokenizer.test.ts — TextTokenizer on Llama-2's SentencePiece-BPE
// tokenizer.json (built at test time from llama-tokenizer-js's vocabulary and
// merges, with LLaVA-1.5's added tokens <image> = 32000 and <pad> = 32001; see
// llama2_tokenizer.ts), checked id for id against llama-tokenizer-js's own
// encoder and against published ids; on a word-level tokenizer built here; the
// LLaVA prompt (llava-1.5 text, llava-hf's chat template, templates that read
// content as a string) and its one-image-token check; every error path.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GripError } from '../../lib/errors.ts';
import { TextTokenizer, buildPrompt, encodePrompt } from '../../lib/model/tokenizer.ts';
import { llama2TokenizerJson, llavaTokenizerConfig, reference } from './llama2_tokenizer.ts';
import { expectError } from '../helpers.ts';

const test = suite('tokenizer');

/** Runs fn (sync throw or rejected Promise) and checks the GripError's code and message. */

/** The chat template of llava-hf/llava-1.5-7b-hf (chat_template.json). */
const LLAVA_TEMPLATE = "{% for message in messages %}{% if message['role'] != 'system' %}{{ message['role'].upper() + ': '}}{% endif %}{# Render all images first #}{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}{# Render all text next #}{% if message['role'] != 'assistant' %}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] + ' '}}{% endfor %}{% else %}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{% generation %}{{ content['text'] + ' '}}{% endgeneration %}{% endfor %}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}";
/** A Llama-2-chat style template: content read as a string, BOS written by the template. */
const STRING_TEMPLATE = "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}[INST] {{ message['content'] }} [/INST]{% endif %}{% endfor %}";

const PROMPT = 'What is shown?';
const LLAVA_PROMPT = 'USER: <image>\nWhat is shown? ASSISTANT:';
/** Its Llama-2 ids: <s> ▁US ER : ▁ <image> ▁ <0x0A> What ▁is ▁shown ? ▁A SS IST ANT : */
const LLAVA_PROMPT_IDS = [1, 3148, 1001, 29901, 29871, 32000, 29871, 13, 5618, 338, 4318, 29973, 319, 1799, 9047, 13566, 29901];

let root = '';
/** <root>/llava: Llama-2's tokenizer with LLaVA-1.5-hf's added tokens and tokenizer_config.json, no chat template. */
let llavaDir = '';
let tokenizer: TextTokenizer;
let tokenizerJson: Record<string, any>;
let tokenizerConfig: Record<string, any>;

/** A copy of the LLaVA tokenizer folder with extra files. */
async function variant(name: string, files: Record<string, string>): Promise<string> {
  const dir = join(root, name);
  await mkdir(dir);
  await writeFile(join(dir, 'tokenizer.json'), JSON.stringify(tokenizerJson));
  await writeFile(join(dir, 'tokenizer_config.json'), JSON.stringify(tokenizerConfig));
  for (const [file, text] of Object.entries(files)) await writeFile(join(dir, file), text);
  return dir;
}

test.before(async () => {
  root = await mkdtemp(join(tmpdir(), 'grip-tokenizer-'));
  llavaDir = join(root, 'llava');
  await mkdir(llavaDir);
  tokenizerJson = llama2TokenizerJson();
  tokenizerConfig = llavaTokenizerConfig();
  await writeFile(join(llavaDir, 'tokenizer.json'), JSON.stringify(tokenizerJson));
  await writeFile(join(llavaDir, 'tokenizer_config.json'), JSON.stringify(tokenizerConfig));
  tokenizer = await TextTokenizer.load(llavaDir);
});
test.after(async () => {
  await rm(root, { recursive: true, force: true });
});

// ---- the SentencePiece-BPE tokenizer ---------------------------------------------------------------

test('Llama-2 ids: "Hello world" is [1, 15043, 3186], and the ids llama-tokenizer-js pins in its own tests', () => {
  assert.equal(Array.from(tokenizer.encode('Hello world')), [1, 15043, 3186]);
  assert.equal(Array.from(tokenizer.encode('Hello world!')), [1, 15043, 3186, 29991]);
  assert.equal(Array.from(tokenizer.encode('Hello world', { addSpecialTokens: false })), [15043, 3186]);
  assert.equal(Array.from(tokenizer.encode('[INST]')), [1, 518, 25580, 29962]);
  // Literal ids from llama-tokenizer-js's runTests (not computed by it here): a run of spaces
  // merged in the right order, equal-priority merges left to right, tabs and a newline as byte
  // tokens, and 4- and 3-byte characters outside the vocabulary as their UTF-8 bytes.
  assert.equal(Array.from(tokenizer.encode('           grabbed')), [1, 9651, 2646, 1327, 287]);
  assert.equal(Array.from(tokenizer.encode('ax\n####\nboo')), [1, 4853, 13, 4136, 13, 833, 29877]);
  assert.equal(Array.from(tokenizer.encode('\ttabs\t\t\t\tout here')), [1, 29871, 12, 21175, 12, 12, 12, 12, 449, 1244]);
  assert.equal(Array.from(tokenizer.encode('🦙Ꙋ')), [1, 29871, 243, 162, 169, 156, 237, 156, 141]);
  assert.equal(Array.from(tokenizer.encode('镇')), [1, 29871, 30411]);
  assert.ok(tokenizer.encode('x') instanceof Int32Array);
});

test('special tokens, added tokens and the vocabulary size come from tokenizer.json and tokenizer_config.json', () => {
  assert.equal([tokenizer.bosTokenId, tokenizer.eosTokenId, tokenizer.padTokenId], [1, 2, 32001]);
  assert.equal([tokenizer.bosToken, tokenizer.eosToken, tokenizer.padToken, tokenizer.unkToken], ['<s>', '</s>', '<pad>', '<unk>']);
  assert.equal([tokenizer.tokenId('<image>'), tokenizer.tokenId('<pad>'), tokenizer.tokenId('▁Hello'), tokenizer.tokenId('no-such-token')], [32000, 32001, 15043, undefined]);
  assert.is(tokenizer.idToToken(13), '<0x0A>');
  assert.is(tokenizer.idToToken(29871), '▁');
  assert.is(tokenizer.vocabSize, 32002);
  assert.is(tokenizer.chatTemplate, undefined);
  assert.is(tokenizer.where, join(llavaDir, 'tokenizer.json'));
});

/** The prompt the issue names, and the one vLLM's LLaVA model documents the llava-1.5-7b-hf tokenizer's ids of. */
const ISSUE_PROMPT = 'USER: <image>\nWhat is shown in this image? ASSISTANT:';
const VLLM_PROMPT = "USER: <image>\nWhat's the content of the image?\nASSISTANT:";
const VLLM_PROMPT_IDS = [1, 3148, 1001, 29901, 29871, 32000, 29871, 13, 5618, 29915, 29879, 278, 2793, 310, 278, 1967, 29973, 13, 22933, 9047, 13566, 29901];

test('the LLaVA-1.5 prompt: BOS, <image> once, and llama-tokenizer-js\'s ids for the text on each side of it', () => {
  // Hugging Face splits added tokens off first and normalises each piece between them on its
  // own. Llama-2's (legacy) normaliser prepends "▁" to every piece, so each piece gets
  // SentencePiece's dummy-prefix space: "USER: " is ▁US ER : ▁ and "\nWhat ..." after <image> is
  // ▁ <0x0A> What ... (29871, 13), exactly llama-tokenizer-js's encode of each piece alone with
  // its preceding space. llava-1.5-7b-hf's tokenizer_config.json says legacy: false, but
  // transformers reads that only when it converts a slow SentencePiece tokenizer to a fast one;
  // LlamaTokenizerFast loads the shipped tokenizer.json, the legacy conversion, and vLLM
  // documents the 29871, 13 after 32000 that it gives (VLLM_PROMPT_IDS). We follow the file.
  for (const [text, expected] of [[LLAVA_PROMPT, LLAVA_PROMPT_IDS], [ISSUE_PROMPT, undefined], [VLLM_PROMPT, VLLM_PROMPT_IDS]] as const) {
    const ids = Array.from(tokenizer.encode(text));
    const [before, after] = text.split('<image>') as [string, string];
    assert.equal(ids, [1, ...reference.encode(before, false), 32000, ...reference.encode(after, false)], text);
    assert.is(ids.filter((id) => id === 32000).length, 1, text);
    assert.is(ids.filter((id) => id === 1).length, 1, text);
    if (expected) assert.equal(ids, expected, text);
    assert.equal(Array.from(encodePrompt(tokenizer, text, 32000)), ids, text);
  }
  // The text without <image> is one piece: llama-tokenizer-js's ids exactly.
  const plain = ISSUE_PROMPT.replace('<image>', '');
  assert.equal(Array.from(tokenizer.encode(plain)), reference.encode(plain));
  // A non-legacy tokenizer.json (no normaliser; a Metaspace pre-tokenizer that prepends "▁" to
  // the first piece only) would give 32000, 13 instead: not what llava-1.5-7b-hf ships.
  const nonLegacy = TextTokenizer.fromJSON({
    ...llama2TokenizerJson(), normalizer: null, pre_tokenizer: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'first', split: false },
  }, llavaTokenizerConfig(), 'non-legacy');
  const ids = Array.from(nonLegacy.encode(ISSUE_PROMPT));
  assert.equal(ids.slice(0, 8), [1, 3148, 1001, 29901, 29871, 32000, 13, 5618]);
});

/**
 * Text that must give llama-tokenizer-js's ids exactly (with and without BOS) and
 * decode back to itself: punctuation, digits, accents, scripts, emoji and CJK
 * outside the vocabulary (byte fallback), leading/trailing/multiple spaces,
 * newlines, tabs, CR LF, code.
 */
const CORPUS = [
  'Hello world',
  'The quick brown fox jumps over the lazy dog.',
  "It's a dog's life, isn't it? \"Yes\" -- (maybe); [no] {ok}!",
  'punctuation: !?.,;:()[]{}"\'`~@#$%^&*_+=|\\/<>',
  'numbers 0 7 42 1234567890 3.14159 -273.15 1e-9 2,048 50%',
  'Mr . Smith , hello . . .',
  'café naïve résumé Ünïcödé façade',
  'Привет, мир! Ελληνικά',
  'مرحبا بالعالم',
  '日本語のテキストと中文文本。',
  '镇',
  'emoji 😀🎉👍🏽 and a family 👨‍👩‍👧',
  '🦙',
  '∑∫√∞ ≤ ≥ ≠ ½ ™',
  '𝔘𝔫𝔦𝔠𝔬𝔡𝔢 math letters',
  'ＦＵＬＬＷＩＤＴＨ text',
  'zero\u200bwidth space',
  ' ',
  '   ',
  ' leading space',
  '    four leading spaces',
  'trailing spaces   ',
  'multiple    spaces  inside',
  '\n',
  '\n\nleading newlines',
  'line one\nline two\n\nline four\n',
  '\r\nwindows\r\nline endings',
  'tab\tseparated\tvalues',
  'function add(a, b) {\n  return a + b;\n}',
  'def f(x):\n    return x ** 2  # square\n',
  '<div class="x">&amp;</div>',
  'https://example.com/path?q=1&r=2#frag',
  'CamelCaseIdentifier snake_case_id kebab-case-id',
  'ASSISTANT:',
  'x'.repeat(300),
];

test("a corpus: TextTokenizer's ids are llama-tokenizer-js's, and decode gives the text back", () => {
  for (const text of CORPUS) {
    const label = JSON.stringify(text);
    const ids = Array.from(tokenizer.encode(text));
    assert.equal(ids, reference.encode(text), label);
    assert.equal(Array.from(tokenizer.encode(text, { addSpecialTokens: false })), reference.encode(text, false), label);
    assert.is(tokenizer.decode(ids, { skipSpecialTokens: true }), text, label);
    assert.is(reference.decode(ids), text, label);
  }
});

test('seeded random text: the same ids as llama-tokenizer-js, and decode gives the text back', () => {
  let seed = 20240917;
  const next = (n: number) => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return (seed >>> 8) % n;
  };
  const chars = [...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJ   \n\t.,!?0123456789éüñ日本語中文ПриветÅ😀🦙‱㐀𒀀<>/'];
  const words = ['the', 'ing', 'tion', ' the', 'Hello', 'world', 'ASSISTANT', 'USER', '    ', '\n\n', 'http', '://', 'function', '=>', '日本', '😀😀'];
  for (let n = 0; n < 500; n++) {
    let text = '';
    for (let i = 1 + next(30); i > 0; i--) text += next(10) < 3 ? words[next(words.length)] : chars[next(chars.length)];
    const ids = Array.from(tokenizer.encode(text));
    assert.equal(ids, reference.encode(text), JSON.stringify(text));
    assert.is(tokenizer.decode(ids, { skipSpecialTokens: true }), text, JSON.stringify(text));
  }
});

test('where the two part ways, by design: empty text, added tokens written in the text, lone surrogates', () => {
  // Empty text: the post-processor adds BOS to any sequence (transformers gives [1] too);
  // llama-tokenizer-js returns [] before it adds BOS.
  assert.equal(Array.from(tokenizer.encode('')), [1]);
  assert.equal(reference.encode(''), []);
  // An added token's text ("<s>", "</s>", "<image>", "<pad>") is split off as that token, as
  // transformers does by default (split_special_tokens=False); llama-tokenizer-js knows no added
  // tokens and spells it "<" "s" ">". The legacy "▁" prepended to the piece after it (see the
  // LLaVA test) then decodes as a space: such text does not round-trip.
  assert.equal(Array.from(tokenizer.encode('a<s>b')), [1, 263, 1, 289]);
  assert.equal(reference.encode('a<s>b'), [1, 263, 29966, 29879, 29958, 29890]);
  assert.is(tokenizer.decode(tokenizer.encode('a<s>b'), { skipSpecialTokens: true }), 'a b');
  assert.equal(Array.from(tokenizer.encode('</s><pad>')), [1, 2, 32001]);
  // A lone surrogate is not Unicode: both encode the UTF-8 of U+FFFD (TextEncoder), so the ids
  // agree and decode gives U+FFFD back.
  assert.equal(Array.from(tokenizer.encode('x\ud800y')), reference.encode('x\ud800y'));
  assert.is(tokenizer.decode(tokenizer.encode('x\ud800y'), { skipSpecialTokens: true }), 'x\ufffdy');
});

test('merges as [left, right] pairs (tokenizers >= 0.20) give the same ids as "left right" strings', () => {
  const pairs = TextTokenizer.fromJSON(llama2TokenizerJson({ merges: 'pairs' }), llavaTokenizerConfig(), 'pairs');
  for (const text of [...CORPUS, ISSUE_PROMPT]) assert.equal(Array.from(pairs.encode(text)), Array.from(tokenizer.encode(text)), JSON.stringify(text));
});

test('decode inverts encode; skipSpecialTokens drops <s>, </s>, <image> and <pad>', () => {
  for (const text of ['Hello world', 'A cat, two dogs and 3 birds.', 'line one\nline two\ttab', 'café 😀 日本語', '  leading spaces']) {
    assert.is(tokenizer.decode(tokenizer.encode(text), { skipSpecialTokens: true }), text, JSON.stringify(text));
    assert.is(tokenizer.decode(tokenizer.encode(text, { addSpecialTokens: false })), text, JSON.stringify(text));
  }
  assert.is(tokenizer.decode([1, 15043, 3186, 2]), '<s> Hello world</s>');
  assert.is(tokenizer.decode([1, 15043, 3186, 2, 32001], { skipSpecialTokens: true }), 'Hello world');
  assert.is(tokenizer.decode(Int32Array.of(15043, 32000, 3186), { skipSpecialTokens: true }), 'Hello world');
  assert.is(tokenizer.decode([1, 2], { skipSpecialTokens: true }), '');
  assert.is(tokenizer.decode([]), '');
});

test('decode and encode reject what is not token ids or text with ERR_GRIP_RANGE', async () => {
  await expectError(() => tokenizer.decode([1, 32002]), 'ERR_GRIP_RANGE', 'expected token ids in [0, 32001] for ids but received number 32002 at [1]');
  await expectError(() => tokenizer.decode([0.5]), 'ERR_GRIP_RANGE', 'expected token ids in [0, 32001] for ids but received number 0.5 at [0]');
  await expectError(() => tokenizer.decode(7 as never), 'ERR_GRIP_RANGE', 'expected an array of token ids for ids but received number 7');
  await expectError(() => tokenizer.encode(null as never), 'ERR_GRIP_RANGE', 'expected a string for text but received null');
});

// ---- prompts --------------------------------------------------------------------------------------------

test('buildPrompt: llava-1.5 (the default without a chat template) and raw', async () => {
  assert.is(buildPrompt(tokenizer, PROMPT), LLAVA_PROMPT);
  assert.is(buildPrompt(tokenizer, PROMPT, { template: 'llava-1.5' }), LLAVA_PROMPT);
  assert.is(buildPrompt(tokenizer, 'Describe <image> briefly', { template: 'raw' }), 'Describe <image> briefly');
  await expectError(() => buildPrompt(tokenizer, PROMPT, { template: 'vicuna' as never }), 'ERR_GRIP_RANGE',
    "expected one of 'llava-1.5', 'chat', 'raw' for options.template but received the string \"vicuna\"");
  await expectError(() => buildPrompt(tokenizer, PROMPT, { template: 'chat' }), 'ERR_GRIP_UNSUPPORTED',
    `expected a chat template (chat_template.jinja, chat_template.json or chat_template in tokenizer_config.json) for the tokenizer of ${join(llavaDir, 'tokenizer.json')} but received none`);
});

test("llava-1.5-7b-hf's chat template (chat_template.json) renders the llava-1.5 prompt and the same ids", async () => {
  const dir = await variant('chat-json', { 'chat_template.json': JSON.stringify({ chat_template: LLAVA_TEMPLATE }) });
  const chat = await TextTokenizer.load(dir);
  assert.is(chat.chatTemplate, LLAVA_TEMPLATE);
  const text = buildPrompt(chat, PROMPT); // 'chat' is the default once there is a template
  assert.is(text, LLAVA_PROMPT);
  assert.equal(Array.from(encodePrompt(chat, text, 32000)), LLAVA_PROMPT_IDS);
  // A conversation renders each turn (the assistant's through {% generation %}).
  const turns = chat.applyChatTemplate([
    { role: 'user', content: [{ type: 'image' }, { type: 'text', text: 'Colour?' }] },
    { role: 'assistant', content: [{ type: 'text', text: 'Red.' }] },
    { role: 'user', content: [{ type: 'text', text: 'Shape?' }] },
  ], { addGenerationPrompt: true });
  assert.is(turns, 'USER: <image>\nColour? ASSISTANT: Red. USER: Shape? ASSISTANT:');
});

test('chat_template.jinja wins over chat_template.json, which wins over tokenizer_config.json', async () => {
  const jinja = '{% for m in messages %}J {{ m.content[0].type }}:<image> {{ m.content[1].text }}{% endfor %}';
  const both = await variant('chat-both', { 'chat_template.jinja': jinja, 'chat_template.json': JSON.stringify({ chat_template: LLAVA_TEMPLATE }) });
  assert.is(buildPrompt(await TextTokenizer.load(both), PROMPT), 'J image:<image> What is shown?');
  tokenizerConfig.chat_template = LLAVA_TEMPLATE;
  try {
    const inConfig = await variant('chat-config', {});
    assert.is(buildPrompt(await TextTokenizer.load(inConfig), PROMPT), LLAVA_PROMPT);
    const overridden = await variant('chat-config-json', { 'chat_template.json': JSON.stringify({ chat_template: STRING_TEMPLATE }) });
    assert.is((await TextTokenizer.load(overridden)).chatTemplate, STRING_TEMPLATE);
  } finally {
    delete tokenizerConfig.chat_template;
  }
  const named = TextTokenizer.fromJSON(tokenizerJson, { ...tokenizerConfig, chat_template: [{ name: 'tool_use', template: 'x' }, { name: 'default', template: LLAVA_TEMPLATE }] }, 'named');
  assert.is(named.chatTemplate, LLAVA_TEMPLATE);
});

test('a template that reads content as a string gets "<image>\\n" + prompt; a BOS it writes is not doubled', async () => {
  const dir = await variant('chat-string', { 'chat_template.jinja': STRING_TEMPLATE });
  const chat = await TextTokenizer.load(dir);
  const text = buildPrompt(chat, PROMPT);
  assert.is(text, '<s>[INST] <image>\nWhat is shown? [/INST]');
  const ids = Array.from(encodePrompt(chat, text, 32000));
  // <s> (once: the template's and the post-processor's, of which encodePrompt keeps one) ▁[ INST ] ▁ <image> ▁ <0x0A> ...
  assert.equal(ids.slice(0, 8), [1, 518, 25580, 29962, 29871, 32000, 29871, 13]);
  assert.is(ids.filter((id) => id === 1).length, 1);
});

test('chat template errors: no <image> rendered, a raise_exception, a template that does not parse', async () => {
  const dropsImage = await TextTokenizer.load(await variant('chat-no-image', { 'chat_template.jinja': '{% for m in messages %}USER: question{% endfor %}' }));
  await expectError(() => buildPrompt(dropsImage, PROMPT), 'ERR_GRIP_FORMAT',
    `expected a chat template that renders the image placeholder <image> for the chat template of ${join(root, 'chat-no-image', 'tokenizer.json')} but received a prompt without it`);
  const jinjaPath = join(root, 'chat-raises', 'chat_template.jinja');
  const raises = await TextTokenizer.load(await variant('chat-raises', { 'chat_template.jinja': "{{ raise_exception('only system turns') }}" }));
  await expectError(() => buildPrompt(raises, PROMPT), 'ERR_GRIP_FORMAT',
    `expected a chat template that renders these messages for chat_template in ${jinjaPath} but received an error (only system turns)`);
  const brokenDir = await variant('chat-broken', { 'chat_template.json': JSON.stringify({ chat_template: '{% for m in messages %}{{ m.content }' }) });
  await expectError(() => TextTokenizer.load(brokenDir), 'ERR_GRIP_FORMAT',
    new RegExp(`^expected a Jinja chat template for chat_template in ${join(brokenDir, 'chat_template.json').replace(/[.\\/-]/g, '\\$&')} but received one that does not parse \\(.+\\)$`));
  const notString = await variant('chat-not-string', { 'chat_template.json': JSON.stringify({ template: 'x' }) });
  await expectError(() => TextTokenizer.load(notString), 'ERR_GRIP_FORMAT',
    `expected a string for chat_template in ${join(notString, 'chat_template.json')} but received undefined`);
});

test('encodePrompt wants exactly one image token: none or two are ERR_GRIP_RANGE', async () => {
  await expectError(() => encodePrompt(tokenizer, 'USER: What is shown? ASSISTANT:', 32000), 'ERR_GRIP_RANGE',
    'expected exactly one <image> token for prompt but received 0');
  await expectError(() => encodePrompt(tokenizer, 'USER: <image>\n<image>\nCompare. ASSISTANT:', 32000), 'ERR_GRIP_RANGE',
    'expected exactly one <image> token for prompt but received 2');
  await expectError(() => encodePrompt(tokenizer, buildPrompt(tokenizer, 'Is <image> here?'), 32000), 'ERR_GRIP_RANGE',
    'expected exactly one <image> token for prompt but received 2');
  await expectError(() => encodePrompt(tokenizer, LLAVA_PROMPT, -1), 'ERR_GRIP_RANGE',
    'expected an integer in [0, 2147483647] for imageTokenId but received number -1');
});

// ---- a word-level tokenizer ------------------------------------------------------------------------------

/** A WordPiece model over whole lower-case words acts word-level (the library has no WordLevel model). */
const WORDS = ['[UNK]', '[CLS]', '[SEP]', '<image>', 'the', 'cat', 'sat', 'on', 'mat', '.', '?', 'what', 'is', 'shown', 'user', 'assistant', ':'];
const special = (id: number) => ({ id, content: WORDS[id], single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
const WORD_TOKENIZER = {
  version: '1.0',
  truncation: null,
  padding: null,
  added_tokens: [0, 1, 2, 3].map(special),
  normalizer: { type: 'Lowercase' },
  pre_tokenizer: { type: 'BertPreTokenizer' },
  post_processor: {
    type: 'TemplateProcessing',
    single: [{ SpecialToken: { id: '[CLS]', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '[SEP]', type_id: 0 } }],
    pair: [{ SpecialToken: { id: '[CLS]', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '[SEP]', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }, { SpecialToken: { id: '[SEP]', type_id: 1 } }],
    special_tokens: { '[CLS]': { id: '[CLS]', ids: [1], tokens: ['[CLS]'] }, '[SEP]': { id: '[SEP]', ids: [2], tokens: ['[SEP]'] } },
  },
  decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
  model: { type: 'WordPiece', unk_token: '[UNK]', continuing_subword_prefix: '##', max_input_chars_per_word: 100, vocab: Object.fromEntries(WORDS.map((w, i) => [w, i])) },
};

test('a word-level tokenizer.json: lower-cased words, [UNK] for the rest, decode joins words', async () => {
  const dir = join(root, 'words');
  await mkdir(dir);
  await writeFile(join(dir, 'tokenizer.json'), JSON.stringify(WORD_TOKENIZER));
  const words = await TextTokenizer.load(dir); // no tokenizer_config.json
  assert.equal(Array.from(words.encode('The cat sat on the mat.')), [1, 4, 5, 6, 7, 4, 8, 9, 2]);
  assert.equal(Array.from(words.encode('The dog sat', { addSpecialTokens: false })), [4, 0, 6]);
  assert.is(words.decode([1, 4, 5, 6, 7, 4, 8, 9, 2], { skipSpecialTokens: true }), 'the cat sat on the mat.');
  assert.is(words.vocabSize, WORDS.length);
  // No bos_token in a tokenizer_config.json: the post-processor's leading special token stands in.
  assert.equal([words.bosTokenId, words.eosTokenId, words.padTokenId], [1, undefined, undefined]);
  const ids = encodePrompt(words, buildPrompt(words, PROMPT), 3);
  assert.equal(Array.from(ids), [1, 14, 16, 3, 11, 12, 13, 10, 15, 16, 2]);
});

// ---- files -------------------------------------------------------------------------------------------------

test('tokenizer.json is required (ERR_GRIP_IO), must parse (ERR_GRIP_FORMAT) and be accepted by the library (ERR_GRIP_FORMAT)', async () => {
  const missing = join(root, 'missing');
  await expectError(() => TextTokenizer.load(missing), 'ERR_GRIP_IO',
    `expected a readable tokenizer.json for ${join(missing, 'tokenizer.json')} but received ENOENT: no such file or directory`);
  const broken = join(root, 'broken');
  await mkdir(broken);
  await writeFile(join(broken, 'tokenizer.json'), '{"model": ');
  await expectError(() => TextTokenizer.load(broken), 'ERR_GRIP_FORMAT',
    `expected a JSON object for ${join(broken, 'tokenizer.json')} but received invalid JSON starting "{\\"model\\": "`);
  await writeFile(join(broken, 'tokenizer.json'), '[]');
  await expectError(() => TextTokenizer.load(broken), 'ERR_GRIP_FORMAT', `expected a JSON object for ${join(broken, 'tokenizer.json')} but received an array`);
  await writeFile(join(broken, 'tokenizer.json'), JSON.stringify({ ...WORD_TOKENIZER, model: { type: 'Nonesuch' } }));
  await expectError(() => TextTokenizer.load(broken), 'ERR_GRIP_FORMAT',
    `expected a tokenizer.json that @huggingface/tokenizers accepts for ${join(broken, 'tokenizer.json')} but received one it rejects (Unknown TokenizerModel type: Nonesuch)`);
  await writeFile(join(broken, 'tokenizer.json'), JSON.stringify({ model: WORD_TOKENIZER.model }));
  await expectError(() => TextTokenizer.load(broken), 'ERR_GRIP_FORMAT',
    `expected a tokenizer.json that @huggingface/tokenizers accepts for ${join(broken, 'tokenizer.json')} but received one it rejects (Tokenizer must contain a "decoder" property)`);
  await writeFile(join(broken, 'tokenizer.json'), JSON.stringify(WORD_TOKENIZER));
  await writeFile(join(broken, 'tokenizer_config.json'), '{"bos_token": ');
  await expectError(() => TextTokenizer.load(broken), 'ERR_GRIP_FORMAT',
    `expected a JSON object for ${join(broken, 'tokenizer_config.json')} but received invalid JSON starting "{\\"bos_token\\": "`);
  await expectError(() => TextTokenizer.fromJSON(WORD_TOKENIZER, 'config', 'mem'), 'ERR_GRIP_FORMAT',
    'expected a JSON object for the tokenizer_config.json of mem but received the string "config"');
});

test.run();
