// Warm-up: the head runs synthetic requests through its whole pipeline before it takes the
// first job, so the first users meet the speed of a process that has run for a while.
//
// Why: a stage process starts with its packet path (gRPC receive, frame decoding, the
// runtime call's JavaScript, the engine's controller at the head) in V8's interpreter;
// TurboFan compiles the hot functions only after enough calls. Measured on the 4-stage
// loopback cluster (bench:cluster, 64-token greedy requests round-robin over the methods on a
// fresh cluster): decode ms/token over the first requests PP 10.1 / STPP 7.3 / PipeDec 8.9,
// settling after ~20 requests of each at about 5.0 / 3.7 / 4.3. A stage's CPU profile over the
// same run shows it: its JavaScript costs 0.8-0.9x its ONNX Runtime time in the first sixth of
// the run and 0.45-0.5x in the last, while the runtime's own time per call does not move.
//
// What runs: the candidates `auto` chooses from (PipeDec and STPP at widths 4 and 2, PP),
// in turn, each greedy and sampled at temperature 1 with distribution acceptance (the class
// an OpenAI client's defaults land in), `requestTokens` tokens each with no end of sequence,
// until `tokens` tokens are decoded or `maxMs` has passed. The second half's decode speeds are
// handed to `measured` (auto's chooser), measured on the warm pipeline. Nothing is billed,
// streamed or counted as served; jobs that arrive meanwhile wait in the queue.
import type {
  AutoCandidate,
  GenerateRequest,
  GenerateResult,
  SamplingParams,
} from '@pipedec/engine';
import { decodeMsPerToken, draftAgreement, requestClass } from '@pipedec/engine';

export type WarmUpState = 'off' | 'waiting' | 'running' | 'done' | 'aborted';

export interface WarmUpStatus {
  state: WarmUpState;
  /** Tokens decoded so far, against the target. */
  tokens: number;
  targetTokens: number;
  requests: number;
  elapsedMs: number;
  /**
   * Decode ms/token of the first and the latest request of the first kind (auto's first
   * candidate, greedy): how much the warm-up changed it.
   */
  firstMsPerToken: number | null;
  lastMsPerToken: number | null;
  /** Why the last attempt stopped early (aborted), else null. */
  reason: string | null;
  /** When it finished or stopped (epoch ms), null before. */
  endedAt: number | null;
}

export interface WarmUpOptions {
  /** Tokens to decode in all (0: off). */
  tokens: number;
  /** Stops after this long even when fewer tokens were decoded. */
  maxMs: number;
  /** Tokens per request. */
  requestTokens: number;
  prompt: readonly number[];
  candidates: readonly AutoCandidate[];
  now?: () => number;
}

/** One synthetic request: which candidate ran it and with what sampling. */
export type WarmUpRunner = (
  candidate: AutoCandidate,
  request: GenerateRequest,
) => Promise<GenerateResult>;

const SAMPLINGS: readonly SamplingParams[] = [
  { temperature: 0, topP: 1, seed: 0 },
  { temperature: 1, topP: 1, seed: 1, acceptance: 'distribution' },
];

/** Whether a job may not start yet: the warm-up is on and has not finished. */
export function isWarming(s: WarmUpStatus): boolean {
  return s.state !== 'off' && s.state !== 'done';
}

export class PipelineWarmUp {
  private current: WarmUpStatus;
  private readonly now: () => number;

  constructor(
    private readonly opts: WarmUpOptions,
    private readonly run: WarmUpRunner,
    /** The decode speed of a warm-up request in its second half, by request class. */
    private readonly measured: (
      cls: string,
      c: AutoCandidate,
      msPerToken: number,
      agreement?: number,
    ) => void = () => {},
    private readonly log: (line: string) => void = () => {},
  ) {
    if (opts.candidates.length === 0) throw new Error('warm-up needs a candidate');
    this.now = opts.now ?? (() => performance.now());
    this.current = this.fresh(opts.tokens > 0 ? 'waiting' : 'off');
  }

  get status(): WarmUpStatus {
    return { ...this.current };
  }

  /** Whether a job may not start yet (isWarming). */
  get pending(): boolean {
    return isWarming(this.current);
  }

  /**
   * Runs the warm-up from zero (again after an aborted attempt). Resolves when it is done or
   * stopped: by `signal` (the pipeline stopped being whole) or a failed request; never throws.
   */
  async start(signal: AbortSignal): Promise<WarmUpStatus> {
    if (!this.pending) return this.status;
    const { tokens: target, maxMs, requestTokens, prompt, candidates } = this.opts;
    const s = (this.current = { ...this.fresh('running') });
    const t0 = this.now();
    const rounds = candidates.length * SAMPLINGS.length;
    this.log(`warm-up: ${target} tokens over ${rounds} kinds of request (at most ${maxMs} ms)`);
    let logged = 0;
    try {
      for (let i = 0; s.tokens < target && this.now() - t0 < maxMs; i++) {
        if (signal.aborted) throw new Error('the pipeline stopped being whole');
        const candidate = candidates[i % candidates.length];
        const base = SAMPLINGS[Math.floor(i / candidates.length) % SAMPLINGS.length];
        const sampling = base.temperature > 0 ? { ...base, seed: i + 1 } : base;
        const result = await this.run(candidate, {
          requestId: `warm-up-${i}`,
          prompt,
          maxTokens: Math.min(requestTokens, target - s.tokens),
          sampling,
          eosTokenIds: [],
          signal,
        });
        if (result.finishReason === 'cancelled')
          throw new Error('the pipeline stopped being whole');
        s.tokens += result.tokens.length;
        s.requests += 1;
        s.elapsedMs = this.now() - t0;
        const ms = decodeMsPerToken(result.stats);
        if (ms !== undefined) {
          if (i % rounds === 0) {
            s.firstMsPerToken ??= ms;
            s.lastMsPerToken = ms;
          }
          if (s.tokens * 2 >= target) {
            this.measured(
              requestClass(sampling, sampling.acceptance),
              candidate,
              ms,
              draftAgreement(result.stats),
            );
          }
        }
        if (s.tokens - logged >= target / 4 || s.tokens >= target) {
          logged = s.tokens;
          this.log(
            `warm-up: ${s.tokens}/${target} tokens, ${s.requests} requests, ${Math.round(s.elapsedMs)} ms`,
          );
        }
      }
      s.state = 'done';
      s.elapsedMs = this.now() - t0;
      s.endedAt = Date.now();
      this.log(
        `warm-up done: ${s.tokens} tokens in ${Math.round(s.elapsedMs)} ms; decode ms/token ` +
          `${fmt(s.firstMsPerToken)} -> ${fmt(s.lastMsPerToken)} (${candidates[0].method}, greedy)`,
      );
    } catch (error) {
      s.state = 'aborted';
      s.elapsedMs = this.now() - t0;
      s.endedAt = Date.now();
      s.reason = error instanceof Error ? error.message : String(error);
      this.log(`warm-up stopped after ${s.tokens} tokens: ${s.reason}`);
    }
    return this.status;
  }

  private fresh(state: WarmUpState): WarmUpStatus {
    return {
      state,
      tokens: 0,
      targetTokens: this.opts.tokens,
      requests: 0,
      elapsedMs: 0,
      firstMsPerToken: null,
      lastMsPerToken: null,
      reason: null,
      endedAt: null,
    };
  }
}

function fmt(ms: number | null): string {
  return ms === null ? '-' : ms.toFixed(2);
}
