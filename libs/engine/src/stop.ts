// Stop rules: maximum tokens, the context window, end-of-sequence ids and stop strings. Stop
// strings are matched on the detokenized text; text that could still turn into a stop string
// is held back from the stream until it cannot.
//
// The text grows by one streaming detokenizer's pieces (a TextStream: libs/model's
// createStreamDecoder), so a token costs the same at the thousandth as at the first. It used
// to re-decode every token so far at each token: quadratic in the output's length, on the
// head's thread, which also runs stage 0 (a 1,000-token answer re-decoded half a million
// tokens). A stop string is looked for only where it could have begun: in the held-back tail
// not streamed yet.

export type FinishReason = 'max_tokens' | 'context_full' | 'eos' | 'stop_string' | 'cancelled';

export interface StopOptions {
  maxTokens: number; // after the context window is taken into account
  finishAtLimit: FinishReason; // 'max_tokens' or 'context_full': which limit maxTokens is
  eosTokenIds: readonly number[];
  stop: readonly string[];
  /** The request's detokenizer; without one, no text and no stop strings. */
  text?: TextStream;
}

/**
 * A streaming detokenizer: push gives the text a token completes ('' while a character's
 * bytes are still arriving); flush, at the end, what is left (U+FFFD for a partial character).
 * Its pieces joined equal the decode of all the tokens.
 */
export interface TextStream {
  push(token: number): string;
  flush(): string;
}

export interface StopStep {
  /** The token belongs to the output (false for an end-of-sequence token). */
  emit: boolean;
  /** New text safe to stream ('' when no decoder). */
  delta: string;
  finish: FinishReason | null;
}

export class StopRules {
  readonly tokens: number[] = [];
  /** Text streamed already: final, since text that might begin a stop string is held back. */
  private readonly streamed: string[] = [];
  /** Text not streamed yet: a held-back tail, where a stop string may still begin. */
  private pending = '';
  private readonly eos: ReadonlySet<number>;

  constructor(private readonly opts: StopOptions) {
    this.eos = new Set(opts.eosTokenIds);
  }

  /** The output text so far (cut before a stop string once one has matched). */
  get output(): string {
    return this.streamed.join('') + this.pending;
  }

  push(token: number): StopStep {
    const stream = this.opts.text;
    if (this.eos.has(token)) {
      if (stream) this.pending += stream.flush();
      return { emit: false, delta: this.flush(), finish: 'eos' };
    }
    this.tokens.push(token);
    let finish: FinishReason | null =
      this.tokens.length >= this.opts.maxTokens ? this.opts.finishAtLimit : null;
    if (!stream) return { emit: true, delta: '', finish };
    this.pending += stream.push(token);
    if (finish) this.pending += stream.flush();
    // A stop string can only begin in the held-back tail (heldBack), so only it is searched.
    let cut = -1;
    for (const s of this.opts.stop) {
      const at = s.length > 0 ? this.pending.indexOf(s) : -1;
      if (at >= 0 && (cut < 0 || at < cut)) cut = at;
    }
    if (cut >= 0) {
      this.pending = this.pending.slice(0, cut);
      finish = 'stop_string';
    }
    if (finish) return { emit: true, delta: this.flush(), finish };
    const safe = this.pending.length - this.heldBack();
    const delta = this.pending.slice(0, safe);
    this.pending = this.pending.slice(safe);
    if (delta) this.streamed.push(delta);
    return { emit: true, delta, finish };
  }

  /** Everything not streamed yet (at the end of the request). */
  flush(): string {
    const rest = this.pending;
    this.pending = '';
    if (rest) this.streamed.push(rest);
    return rest;
  }

  /**
   * Length of the longest suffix of the pending text that begins a stop string. Never longer
   * than the pending text: a suffix reaching into streamed text would have been held back when
   * that text was streamed. (A partial character needs no holding: the TextStream gives none.)
   */
  private heldBack(): number {
    const text = this.pending;
    let hold = 0;
    for (const s of this.opts.stop) {
      for (let k = Math.min(s.length - 1, text.length); k > hold; k--) {
        if (text.endsWith(s.slice(0, k))) {
          hold = k;
          break;
        }
      }
    }
    return hold;
  }
}
