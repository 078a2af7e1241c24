// A small byte-level BPE tokenizer in exactly the form of Llama 3's tokenizer.json (same
// pre-tokenizer split pattern, ByteLevel decoder, <|begin_of_text|> post-processor, special
// tokens at the end of the vocabulary), for random test checkpoints.
import { BYTE_TO_CHAR } from './byte-level.js';

export const SPECIAL_TOKENS = [
  '<|begin_of_text|>',
  '<|end_of_text|>',
  '<|start_header_id|>',
  '<|end_header_id|>',
  '<|eot_id|>',
] as const;

// Llama 3's pre-tokenizer pattern, verbatim from its tokenizer.json.
const LLAMA3_SPLIT =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

// Words whose prefixes become merges, so encodings are shorter than raw bytes.
const MERGE_WORDS = [
  ' the',
  ' and',
  'ing',
  ' to',
  ' of',
  ' a',
  ' in',
  ' is',
  'er',
  ' hello',
  ' world',
  ' user',
  ' assistant',
  ' system',
  'ed',
  ' it',
  ' that',
  ' for',
  ' on',
  ' with',
  ' you',
  ' are',
];

// Llama 3 Instruct's chat template (for tools that render it; loadTokenizer implements it).
export const LLAMA3_CHAT_TEMPLATE =
  "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}";

const spell = (s: string) => [...Buffer.from(s, 'utf8')].map((b) => BYTE_TO_CHAR[b]).join('');

/** tokenizer.json and tokenizer_config.json for a vocabulary of `vocabSize` ids. */
export function byteLevelTokenizerFiles(vocabSize: number, maxLength: number) {
  const vocab: Record<string, number> = {};
  for (let b = 0; b < 256; b++) vocab[BYTE_TO_CHAR[b]] = b;
  const merges: [string, string][] = [];
  const room = vocabSize - 256 - SPECIAL_TOKENS.length;
  outer: for (const word of MERGE_WORDS) {
    const chars = [...spell(word)];
    let prefix = chars[0];
    for (const ch of chars.slice(1)) {
      const merged = prefix + ch;
      if (!(merged in vocab)) {
        if (merges.length === room) break outer;
        vocab[merged] = 256 + merges.length;
        merges.push([prefix, ch]);
      }
      prefix = merged;
    }
  }
  const added: { id: number; content: string }[] = [];
  // Unused ids between the merges and the specials are reserved specials, as in Llama 3.
  for (let id = 256 + merges.length, r = 0; id < vocabSize - SPECIAL_TOKENS.length; id++, r++) {
    added.push({ id, content: `<|reserved_special_token_${r}|>` });
  }
  SPECIAL_TOKENS.forEach((content, k) =>
    added.push({ id: vocabSize - SPECIAL_TOKENS.length + k, content }),
  );
  const bos = SPECIAL_TOKENS[0];
  const bosId = vocabSize - SPECIAL_TOKENS.length;
  const tokenizer = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added.map(({ id, content }) => ({
      id,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: null,
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        { type: 'Split', pattern: { Regex: LLAMA3_SPLIT }, behavior: 'Isolated', invert: false },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
      ],
    },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [
        { SpecialToken: { id: bos, type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: bos, type_id: 1 } },
        { Sequence: { id: 'B', type_id: 1 } },
      ],
      special_tokens: { [bos]: { id: bos, ids: [bosId], tokens: [bos] } },
    },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: true,
      vocab,
      merges: merges.map(([a, b]) => `${a} ${b}`),
    },
  };
  const tokenizerConfig = {
    added_tokens_decoder: Object.fromEntries(
      added.map(({ id, content }) => [
        String(id),
        {
          content,
          lstrip: false,
          normalized: false,
          rstrip: false,
          single_word: false,
          special: true,
        },
      ]),
    ),
    bos_token: bos,
    eos_token: '<|eot_id|>',
    chat_template: LLAMA3_CHAT_TEMPLATE,
    clean_up_tokenization_spaces: false,
    model_input_names: ['input_ids', 'attention_mask'],
    model_max_length: maxLength,
    tokenizer_class: 'PreTrainedTokenizerFast',
  };
  return { tokenizer, tokenizerConfig };
}
