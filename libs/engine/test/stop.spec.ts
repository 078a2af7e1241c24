import fc from 'fast-check';

import { type FinishReason, StopRules, type TextStream } from '../src/index.js';

/** Token i is the letter 96 + i ('a' for 1): one character per token. */
const letters = (): TextStream => ({ push: (i) => String.fromCharCode(96 + i), flush: () => '' });

/** Token i is the byte i: a character may take several tokens, as with byte-level BPE. */
const bytes = (): TextStream => {
  const decoder = new TextDecoder('utf-8');
  return {
    push: (i) => decoder.decode(Uint8Array.of(i), { stream: true }),
    flush: () => decoder.decode(),
  };
};
const decodeBytes = (ids: readonly number[]) =>
  new TextDecoder('utf-8').decode(Uint8Array.from(ids));

/**
 * The rules as they were written before streaming: the whole output re-decoded at every
 * token, every stop string looked for near the end of it. The oracle for the property below.
 */
function reference(
  ids: readonly number[],
  opts: { maxTokens: number; eos: number[]; stop: string[] },
): { deltas: string[]; output: string; finish: FinishReason | null; tokens: number } {
  const tokens: number[] = [];
  const deltas: string[] = [];
  let text = '';
  let streamed = 0;
  const longest = Math.max(0, ...opts.stop.map((s) => s.length));
  const flush = () => {
    const rest = text.slice(streamed);
    streamed = text.length;
    return rest;
  };
  for (const id of ids) {
    if (opts.eos.includes(id)) {
      deltas.push(flush());
      return { deltas, output: text, finish: 'eos', tokens: tokens.length };
    }
    tokens.push(id);
    let finish: FinishReason | null = tokens.length >= opts.maxTokens ? 'max_tokens' : null;
    const full = decodeBytes(tokens);
    const from = Math.max(0, text.length - longest);
    let cut = -1;
    for (const s of opts.stop) {
      const at = s.length > 0 ? full.indexOf(s, from) : -1;
      if (at >= 0 && (cut < 0 || at < cut)) cut = at;
    }
    text = cut >= 0 ? full.slice(0, cut) : full;
    if (cut >= 0) finish = 'stop_string';
    if (finish) {
      deltas.push(flush());
      return { deltas, output: text, finish, tokens: tokens.length };
    }
    let hold = text.endsWith('\uFFFD') ? 1 : 0;
    for (const s of opts.stop) {
      for (let k = Math.min(s.length - 1, text.length); k > hold; k--) {
        if (text.endsWith(s.slice(0, k))) {
          hold = k;
          break;
        }
      }
    }
    const safe = text.length - hold;
    deltas.push(text.slice(streamed, safe));
    streamed = Math.max(streamed, safe);
  }
  return { deltas, output: text, finish: null, tokens: tokens.length };
}

describe('StopRules', () => {
  it('stops at max tokens, or at the context limit with its own reason', () => {
    const r = new StopRules({
      maxTokens: 2,
      finishAtLimit: 'max_tokens',
      eosTokenIds: [],
      stop: [],
    });
    expect(r.push(1).finish).toBeNull();
    expect(r.push(2).finish).toBe('max_tokens');
    const c = new StopRules({
      maxTokens: 1,
      finishAtLimit: 'context_full',
      eosTokenIds: [],
      stop: [],
    });
    expect(c.push(1).finish).toBe('context_full');
  });

  it('stops at an end-of-sequence id without emitting it', () => {
    const r = new StopRules({
      maxTokens: 9,
      finishAtLimit: 'max_tokens',
      eosTokenIds: [0],
      stop: [],
      text: letters(),
    });
    expect(r.push(1)).toEqual({ emit: true, delta: 'a', finish: null });
    expect(r.push(0)).toEqual({ emit: false, delta: '', finish: 'eos' });
    expect(r.tokens).toEqual([1]);
  });

  it('matches a stop string split across tokens, holding back text that may start it', () => {
    const r = new StopRules({
      maxTokens: 9,
      finishAtLimit: 'max_tokens',
      eosTokenIds: [],
      stop: ['cd'],
      text: letters(),
    });
    expect(r.push(1).delta).toBe('a'); // "a"
    expect(r.push(3).delta).toBe(''); // "ac": "c" may begin "cd"
    const last = r.push(4); // "acd"
    expect(last).toEqual({ emit: true, delta: '', finish: 'stop_string' });
    expect(r.output).toBe('a');
  });

  it('releases held-back text once it cannot become a stop string', () => {
    const r = new StopRules({
      maxTokens: 9,
      finishAtLimit: 'max_tokens',
      eosTokenIds: [],
      stop: ['cd'],
      text: letters(),
    });
    r.push(3);
    expect(r.push(5).delta).toBe('ce');
  });

  it('ends a dangling partial character as U+FFFD, as decoding all the tokens would', () => {
    const r = new StopRules({
      maxTokens: 2,
      finishAtLimit: 'max_tokens',
      eosTokenIds: [],
      stop: [],
      text: bytes(),
    });
    expect(r.push(0x61).delta).toBe('a');
    expect(r.push(0xf0)).toEqual({ emit: true, delta: '\uFFFD', finish: 'max_tokens' });
    expect(r.output).toBe(decodeBytes([0x61, 0xf0]));
  });

  it('gives the same text, output and finish as re-decoding every token (any bytes, stops)', () => {
    // Bytes from a small alphabet (so stop strings do occur) plus UTF-8 lead and continuation
    // bytes (so characters span tokens, and some never complete).
    const byte = fc.constantFrom(0x61, 0x62, 0x63, 0x20, 0xc3, 0xa9, 0xe2, 0x82, 0xac, 0xf0, 0x9f);
    const stop = fc.string({ unit: fc.constantFrom('a', 'b', 'c', ' ', 'é', '€'), maxLength: 3 });
    fc.assert(
      fc.property(
        fc.array(byte, { maxLength: 40 }),
        fc.array(stop, { maxLength: 3 }),
        fc.integer({ min: 1, max: 45 }),
        fc.boolean(),
        (ids, stops, maxTokens, withEos) => {
          const eos = withEos ? [0x20] : [];
          const want = reference(ids, { maxTokens, eos, stop: stops });
          const r = new StopRules({
            maxTokens,
            finishAtLimit: 'max_tokens',
            eosTokenIds: eos,
            stop: stops,
            text: bytes(),
          });
          const deltas: string[] = [];
          let finish: FinishReason | null = null;
          for (const id of ids) {
            const step = r.push(id);
            deltas.push(step.delta);
            if ((finish = step.finish)) break;
          }
          // A run that has not finished (its tokens ran out here; a cancelled request) holds
          // only complete characters: re-decoding showed a partial one as U+FFFD meanwhile.
          const output =
            want.finish === null
              ? new TextDecoder().decode(Uint8Array.from(r.tokens), { stream: true })
              : want.output;
          expect({ finish, output: r.output, tokens: r.tokens.length }).toEqual({
            finish: want.finish,
            output,
            tokens: want.tokens,
          });
          // What was streamed is never taken back: the output so far starts with it. A finished
          // run streamed all of it. (When a piece is released may differ: the oracle saw a
          // partial character as U+FFFD, which ended a stop string's prefix one token sooner.)
          expect(output.startsWith(deltas.join(''))).toBe(true);
          if (finish) expect(deltas.join('')).toBe(want.deltas.join(''));
        },
      ),
      { numRuns: 2000, seed: 7 },
    );
  });
});
