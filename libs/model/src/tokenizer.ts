// The checkpoint's tokenizer.json through @huggingface/tokenizers, the Llama 3 chat format,
// and a streaming detokenizer that only ever emits complete UTF-8 characters.
import { readFile } from 'node:fs/promises';
import path from 'node:path';

import { Tokenizer as UntypedTokenizer } from '@huggingface/tokenizers';

import { byteLevelTokenBytes } from './byte-level.js';
import { ModelError } from './errors.js';

export interface ChatMessage {
  role: string; // 'system' | 'user' | 'assistant' | ...
  content: string;
}

export interface StreamDecoder {
  /** Adds one token; returns the text that became complete (often '' mid-character). */
  push(tokenId: number): string;
  /** Ends the stream; returns what is left (U+FFFD for a dangling partial character). */
  flush(): string;
}

export interface LoadedTokenizer {
  readonly bosTokenId: number;
  readonly eosTokenIds: readonly number[];
  readonly vocabSize: number; // ids the tokenizer knows, added tokens included
  /** Text to ids; adds <|begin_of_text|> (the post-processor's template) unless told not to. */
  encode(text: string, opts?: { addSpecialTokens?: boolean }): number[];
  decode(ids: readonly number[], opts?: { skipSpecialTokens?: boolean }): string;
  /** The Llama 3 chat format, exactly as Llama 3 Instruct's chat_template renders it. */
  applyChatTemplate(
    messages: readonly ChatMessage[],
    opts?: { addGenerationPrompt?: boolean },
  ): string;
  /** applyChatTemplate then encode, without a second <|begin_of_text|>. */
  encodeChat(messages: readonly ChatMessage[], opts?: { addGenerationPrompt?: boolean }): number[];
  createStreamDecoder(opts?: { skipSpecialTokens?: boolean }): StreamDecoder;
}

/**
 * The part of @huggingface/tokenizers' Tokenizer used here. Its bundled .d.ts files use
 * extensionless relative imports that NodeNext resolution cannot follow, so the class arrives
 * untyped; this restates the documented signatures.
 */
interface Tokenizer {
  encode(text: string, options?: { add_special_tokens?: boolean }): { ids: number[] };
  decode(ids: number[], options?: { skip_special_tokens?: boolean }): string;
  token_to_id(token: string): number | undefined;
  id_to_token(id: number): string | undefined;
  get_vocab(withAddedTokens?: boolean): Map<string, number>;
}
const TokenizerClass = UntypedTokenizer as unknown as new (
  json: object,
  config: object,
) => Tokenizer;

interface TokenizerJson {
  decoder?: { type?: string; decoders?: { type?: string }[] } | null;
  added_tokens?: { id: number; content: string; special?: boolean }[];
}

const HEADER_START = '<|start_header_id|>';
const HEADER_END = '<|end_header_id|>';
const END_OF_TURN = '<|eot_id|>';

export async function loadTokenizer(dir: string): Promise<LoadedTokenizer> {
  const tokJson = (await readJson(path.join(dir, 'tokenizer.json'), true)) as TokenizerJson;
  const tokConfig = ((await readJson(path.join(dir, 'tokenizer_config.json'), false)) ??
    {}) as Record<string, unknown>;
  const generation = (await readJson(path.join(dir, 'generation_config.json'), false)) as Record<
    string,
    unknown
  > | null;
  let tokenizer: Tokenizer;
  try {
    tokenizer = new TokenizerClass(tokJson, tokConfig);
  } catch (cause) {
    throw new ModelError('TOKENIZER_INVALID', `${dir}/tokenizer.json: ${String(cause)}`, { cause });
  }
  return new HfTokenizer(tokenizer, tokJson, tokConfig, generation);
}

async function readJson(file: string, required: boolean): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (cause) {
    if (!required) return null;
    throw new ModelError('CHECKPOINT_MISSING', `cannot read ${file}`, { cause });
  }
  try {
    return JSON.parse(text);
  } catch (cause) {
    throw new ModelError('TOKENIZER_INVALID', `${file} is not valid JSON`, { cause });
  }
}

/** A token named in tokenizer_config.json, as a string or an AddedToken object. */
function tokenContent(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (
    typeof v === 'object' &&
    v !== null &&
    typeof (v as { content?: unknown }).content === 'string'
  ) {
    return (v as { content: string }).content;
  }
  return null;
}

class HfTokenizer implements LoadedTokenizer {
  readonly bosTokenId: number;
  readonly eosTokenIds: readonly number[];
  readonly vocabSize: number;
  private readonly bosToken: string;
  private readonly specialIds: ReadonlySet<number>;
  private readonly addedContent: ReadonlyMap<number, string>;
  private readonly byteLevel: boolean;

  constructor(
    private readonly tok: Tokenizer,
    json: TokenizerJson,
    config: Record<string, unknown>,
    generation: Record<string, unknown> | null,
  ) {
    const idOf = (token: string, field: string) => {
      const id = tok.token_to_id(token);
      if (id === undefined) {
        throw new ModelError(
          'TOKENIZER_INVALID',
          `tokenizer_config.json ${field} "${token}" is not in the vocabulary`,
        );
      }
      return id;
    };
    this.bosToken = tokenContent(config.bos_token) ?? '<|begin_of_text|>';
    this.bosTokenId = idOf(this.bosToken, 'bos_token');
    const eos = new Set<number>();
    const eosToken = tokenContent(config.eos_token);
    if (eosToken) eos.add(idOf(eosToken, 'eos_token'));
    const genEos = generation?.eos_token_id;
    for (const id of Array.isArray(genEos) ? genEos : [genEos])
      if (Number.isInteger(id)) eos.add(id as number);
    this.eosTokenIds = [...eos];
    this.vocabSize = tok.get_vocab(true).size;
    const added = json.added_tokens ?? [];
    this.addedContent = new Map(added.map((t) => [t.id, t.content]));
    this.specialIds = new Set(added.filter((t) => t.special).map((t) => t.id));
    const decoders =
      json.decoder?.type === 'Sequence' ? (json.decoder.decoders ?? []) : [json.decoder ?? {}];
    this.byteLevel = decoders.some((d) => d.type === 'ByteLevel');
  }

  encode(text: string, opts: { addSpecialTokens?: boolean } = {}): number[] {
    return this.tok.encode(text, { add_special_tokens: opts.addSpecialTokens ?? true }).ids;
  }

  decode(ids: readonly number[], opts: { skipSpecialTokens?: boolean } = {}): string {
    // The library refuses an empty list; the empty sequence decodes to the empty string.
    if (ids.length === 0) return '';
    return this.tok.decode([...ids], { skip_special_tokens: opts.skipSpecialTokens ?? false });
  }

  applyChatTemplate(
    messages: readonly ChatMessage[],
    opts: { addGenerationPrompt?: boolean } = {},
  ): string {
    for (const t of [HEADER_START, HEADER_END, END_OF_TURN]) {
      if (this.tok.token_to_id(t) === undefined) {
        throw new ModelError(
          'TOKENIZER_INVALID',
          `the Llama 3 chat format needs the special token ${t}, which this tokenizer lacks`,
        );
      }
    }
    let text = '';
    messages.forEach((m, i) => {
      // Jinja's `trim` strips surrounding whitespace, like String.prototype.trim.
      const turn = `${HEADER_START}${m.role}${HEADER_END}\n\n${m.content.trim()}${END_OF_TURN}`;
      text += i === 0 ? this.bosToken + turn : turn;
    });
    if (opts.addGenerationPrompt ?? true) text += `${HEADER_START}assistant${HEADER_END}\n\n`;
    return text;
  }

  encodeChat(
    messages: readonly ChatMessage[],
    opts: { addGenerationPrompt?: boolean } = {},
  ): number[] {
    return this.encode(this.applyChatTemplate(messages, opts), { addSpecialTokens: false });
  }

  createStreamDecoder(opts: { skipSpecialTokens?: boolean } = {}): StreamDecoder {
    const skip = opts.skipSpecialTokens ?? false;
    return this.byteLevel ? this.byteStream(skip) : this.textStream(skip);
  }

  /** Byte-level vocabularies: tokens are bytes, and TextDecoder's stream mode holds back partial characters. */
  private byteStream(skip: boolean): StreamDecoder {
    const decoder = new TextDecoder('utf-8');
    const encoder = new TextEncoder();
    return {
      push: (id) => {
        const added = this.addedContent.get(id);
        let bytes: Uint8Array | null;
        if (added !== undefined) {
          if (skip && this.specialIds.has(id)) return '';
          bytes = encoder.encode(added);
        } else {
          const token = this.tok.id_to_token(id);
          bytes = token === undefined ? null : byteLevelTokenBytes(token);
          if (!bytes)
            throw new ModelError('TOKENIZER_INVALID', `token id ${id} has no byte-level spelling`);
        }
        return decoder.decode(bytes, { stream: true });
      },
      flush: () => decoder.decode(),
    };
  }

  /** Other vocabularies: re-decode the pending tokens and hold back a trailing U+FFFD. */
  private textStream(skip: boolean): StreamDecoder {
    let pending: number[] = [];
    let emitted = '';
    return {
      push: (id) => {
        pending.push(id);
        const text = this.decode(pending, { skipSpecialTokens: skip });
        if (text.endsWith('\uFFFD')) return '';
        const out = text.slice(emitted.length);
        emitted = text;
        // Keep one token of context so a leading-space rule still sees its neighbour.
        if (pending.length > 8) {
          pending = pending.slice(-1);
          emitted = this.decode(pending, { skipSpecialTokens: skip });
        }
        return out;
      },
      flush: () => {
        const text = this.decode(pending, { skipSpecialTokens: skip });
        const out = text.slice(emitted.length);
        pending = [];
        emitted = '';
        return out;
      },
    };
  }
}
