// tokenizer.json through @huggingface/tokenizers, the Llama 3 chat format, and streaming
// detokenization that never splits a UTF-8 character.
import fc from 'fast-check';

import { loadTokenizer, type LoadedTokenizer } from '../src/index.js';
import { tempDir, tinyCheckpoint } from './helpers.js';

describe('loadTokenizer', () => {
  let tmp: Awaited<ReturnType<typeof tempDir>>;
  let tok: LoadedTokenizer;
  const BOS = 295; // vocab 300: specials are the last five ids
  const [EOS, HEADER_START, HEADER_END, EOT] = [296, 297, 298, 299];

  beforeAll(async () => {
    tmp = await tempDir('tok');
    tok = await loadTokenizer(await tinyCheckpoint(tmp.dir, 'ckpt'));
  });
  afterAll(() => tmp.cleanup());

  it('knows its special ids', () => {
    expect(tok.bosTokenId).toBe(BOS);
    expect([...tok.eosTokenIds].sort()).toEqual([EOS, EOT]);
    expect(tok.vocabSize).toBe(300);
  });

  it('encodes with <|begin_of_text|>, uses merges, and decodes back', () => {
    const ids = tok.encode(' hello world');
    expect(ids[0]).toBe(BOS);
    expect(ids.length).toBeLessThan(1 + ' hello world'.length); // merges applied
    expect(tok.decode(ids)).toBe('<|begin_of_text|> hello world');
    expect(tok.decode(ids, { skipSpecialTokens: true })).toBe(' hello world');
    expect(tok.encode('hi', { addSpecialTokens: false })).toEqual([104, 105]);
    expect(tok.encode('', { addSpecialTokens: false })).toEqual([]);
    expect(tok.decode([])).toBe('');
    expect(tok.encode('a<|eot_id|>b', { addSpecialTokens: false })).toEqual([97, EOT, 98]);
  });

  it('renders the Llama 3 chat format', () => {
    const messages = [
      { role: 'system', content: 'Be brief. ' },
      { role: 'user', content: '\n Hi there' },
    ];
    expect(tok.applyChatTemplate(messages)).toBe(
      '<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>' +
        '<|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|>' +
        '<|start_header_id|>assistant<|end_header_id|>\n\n',
    );
    expect(tok.applyChatTemplate(messages.slice(1), { addGenerationPrompt: false })).toBe(
      '<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|>',
    );
    const ids = tok.encodeChat(messages.slice(1));
    expect(ids.filter((i) => i === BOS)).toHaveLength(1);
    expect(ids.slice(0, 2)).toEqual([BOS, HEADER_START]);
    expect(ids.slice(-3)).toEqual([HEADER_END, 10, 10]);
  });

  it('streams a multi-byte character only once all its bytes have arrived', () => {
    const stream = tok.createStreamDecoder();
    const ids = tok.encode('a😀é', { addSpecialTokens: false });
    expect(ids).toEqual([97, 240, 159, 152, 128, 195, 169]);
    expect(ids.map((id) => stream.push(id))).toEqual(['a', '', '', '', '😀', '', 'é']);
    expect(stream.flush()).toBe('');
    const dangling = tok.createStreamDecoder();
    expect([dangling.push(240), dangling.push(159), dangling.flush()]).toEqual(['', '', '\uFFFD']);
  });

  it('streamed text equals the decoded text for any input', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', maxLength: 40 }), (text) => {
        const ids = tok.encode(text);
        const stream = tok.createStreamDecoder({ skipSpecialTokens: true });
        let out = '';
        for (const id of ids) {
          const piece = stream.push(id);
          expect(piece).not.toContain('\uFFFD');
          out += piece;
        }
        out += stream.flush();
        expect(out).toBe(text);
        expect(tok.decode(ids, { skipSpecialTokens: true })).toBe(text);
      }),
      { numRuns: 200, seed: 42 },
    );
  });

  it('streams special tokens as text unless asked to skip them', () => {
    const ids = [BOS, 104, 105, EOT];
    const keep = tok.createStreamDecoder();
    expect(ids.map((i) => keep.push(i)).join('')).toBe('<|begin_of_text|>hi<|eot_id|>');
    const skip = tok.createStreamDecoder({ skipSpecialTokens: true });
    expect(ids.map((i) => skip.push(i)).join('')).toBe('hi');
  });
});
