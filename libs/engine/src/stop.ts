// Stop rules: maximum tokens, the context window, end-of-sequence ids and stop strings. Stop
// strings are matched on the detokenized text; text that could still turn into a stop string
// is held back from the stream until it cannot.

export type FinishReason = 'max_tokens' | 'context_full' | 'eos' | 'stop_string' | 'cancelled';

export interface StopOptions {
  maxTokens: number; // after the context window is taken into account
  finishAtLimit: FinishReason; // 'max_tokens' or 'context_full': which limit maxTokens is
  eosTokenIds: readonly number[];
  stop: readonly string[];
  decode?: (ids: readonly number[]) => string;
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
  private text = '';
  private streamed = 0; // characters of `text` already streamed
  private readonly eos: ReadonlySet<number>;
  private readonly longestStop: number;

  constructor(private readonly opts: StopOptions) {
    this.eos = new Set(opts.eosTokenIds);
    this.longestStop = Math.max(0, ...opts.stop.map((s) => s.length));
  }

  /** The output text so far (cut before a stop string once one has matched). */
  get output(): string {
    return this.text;
  }

  push(token: number): StopStep {
    if (this.eos.has(token)) return { emit: false, delta: this.flush(), finish: 'eos' };
    this.tokens.push(token);
    let finish: FinishReason | null =
      this.tokens.length >= this.opts.maxTokens ? this.opts.finishAtLimit : null;
    if (!this.opts.decode) return { emit: true, delta: '', finish };
    const full = this.opts.decode(this.tokens);
    const from = Math.max(0, this.text.length - this.longestStop);
    let cut = -1;
    for (const s of this.opts.stop) {
      const at = s.length > 0 ? full.indexOf(s, from) : -1;
      if (at >= 0 && (cut < 0 || at < cut)) cut = at;
    }
    if (cut >= 0) {
      this.text = full.slice(0, cut);
      finish = 'stop_string';
    } else {
      this.text = full;
    }
    if (finish) return { emit: true, delta: this.flush(), finish };
    const safe = this.text.length - this.heldBack();
    const delta = this.text.slice(this.streamed, safe);
    this.streamed = Math.max(this.streamed, safe);
    return { emit: true, delta, finish };
  }

  /** Everything not streamed yet (at the end of the request). */
  flush(): string {
    const rest = this.text.slice(this.streamed);
    this.streamed = this.text.length;
    return rest;
  }

  /** Length of the longest suffix of the text that begins a stop string (or is a partial character). */
  private heldBack(): number {
    let hold = this.text.endsWith('\uFFFD') ? 1 : 0;
    for (const s of this.opts.stop) {
      for (let k = Math.min(s.length - 1, this.text.length); k > hold; k--) {
        if (this.text.endsWith(s.slice(0, k))) {
          hold = k;
          break;
        }
      }
    }
    return hold;
  }
}
