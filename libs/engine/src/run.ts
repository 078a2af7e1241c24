// RequestRun: what every pipelined method shares. It owns the pipeline session, the event
// loop (verdicts and ticks), prefill in chunks, stop rules, cancellation, decisions with their
// sequence numbers, events and statistics. A method supplies two handlers, onTick and
// onVerdict, and reads like the algorithm.

import { checkCompatible } from './draft.js';
import { EngineError } from './errors.js';
import type { Decision, LayerPacket, Verdict } from './messages.js';
import type { Pipeline, PipelineEvent, PipelineSession } from './pipeline.js';
import { GREEDY, type SamplingParams } from './sampling.js';
import { draftHits, type Method, type RequestStats, type TokenEvent, ratio } from './stats.js';
import type { StageShard } from './stage.js';
import { type FinishReason, StopRules, type TextStream } from './stop.js';

export interface GenerateRequest {
  requestId: string;
  prompt: readonly number[];
  maxTokens: number;
  sampling?: SamplingParams; // default greedy
  /** Default: the model's eosTokenIds; [] disables. */
  eosTokenIds?: readonly number[];
  stop?: readonly string[];
  /** The request's streaming detokenizer, for stop strings and text deltas (stop.ts). */
  text?: TextStream;
  /** Prompt positions per prefill packet (default 32). */
  prefillChunk?: number;
  signal?: AbortSignal;
  onEvent?: (event: TokenEvent) => void;
}

export interface GenerateResult {
  requestId: string;
  tokens: number[];
  text: string;
  finishReason: FinishReason;
  stats: RequestStats;
  /** [committed tokens] the target's logit of each committed token (drift checks). */
  tokenLogits: number[];
}

export interface MethodHandlers {
  /** Stage 0 can take a packet: return it, or null to skip this timestep. */
  onTick(): Promise<LayerPacket | null> | LayerPacket | null;
  /** Called right after a packet was sent (PipeDec drafts here, overlapping stage compute). */
  afterSend?(packet: LayerPacket): Promise<void>;
  onVerdict(verdict: Verdict): Promise<void> | void;
}

/** Limits checked before any work: positions the request may use. */
export function planLength(
  promptLength: number,
  maxTokens: number,
  maxPositions: number,
): { maxNew: number; finishAtLimit: FinishReason } {
  if (promptLength === 0) throw new EngineError('BAD_REQUEST', 'the prompt is empty');
  if (!Number.isInteger(maxTokens) || maxTokens < 1) {
    throw new EngineError('BAD_REQUEST', `maxTokens must be a positive integer, got ${maxTokens}`);
  }
  if (promptLength > maxPositions) {
    throw new EngineError(
      'PROMPT_TOO_LONG',
      `prompt has ${promptLength} tokens, the context window ${maxPositions}`,
    );
  }
  const room = maxPositions - promptLength;
  return room < maxTokens
    ? { maxNew: room, finishAtLimit: 'context_full' }
    : { maxNew: maxTokens, finishAtLimit: 'max_tokens' };
}

/**
 * Starts a pipelined method's request: checks the draft (if any) against the target and its
 * score temperature, plans the length within both context windows and opens the run; for a
 * prompt that already fills them, the finished result instead.
 */
export function openRun(
  pipeline: Pipeline,
  request: GenerateRequest,
  method: Method,
  draft?: { shard: StageShard; scoreTemperature?: number },
): RequestRun | GenerateResult {
  if (draft) {
    checkCompatible(pipeline.info, draft.shard.info);
    const t = draft.scoreTemperature ?? 1;
    if (!(t > 0 && Number.isFinite(t))) {
      throw new EngineError('BAD_REQUEST', `the draft's score temperature must be > 0, got ${t}`);
    }
  }
  const maxPositions = Math.min(
    pipeline.info.maxPositions,
    draft?.shard.info.maxPositions ?? Infinity,
  );
  const plan = planLength(request.prompt.length, request.maxTokens, maxPositions);
  if (plan.maxNew === 0) return contextFullResult(request, method, pipeline.stageCount);
  return new RequestRun(pipeline, request, method, plan.maxNew, plan.finishAtLimit);
}

export class RequestRun {
  readonly session: PipelineSession;
  readonly sampling: SamplingParams;
  readonly prompt: readonly number[];
  /** Last position whose row may be computed: later rows could only yield unwanted tokens. */
  readonly lastUsefulPosition: number;
  readonly stats: RequestStats;
  readonly stop: StopRules;
  finish: FinishReason | null = null;
  /** Prompt rows of the last chunk before its last row: committed with the first verdict. */
  pendingChain: number[] = [];
  private readonly chunks: number[][] = []; // [chunks][positions] prompt row ids
  private chunkSent = 0;
  private readonly chunkSeqs = new Map<number, number>(); // packet seq -> chunk index
  private packetSeq = 0;
  private decisionSeq = 0;
  private readonly tokenLogits: number[] = [];
  private readonly t0 = performance.now();
  private draftWallMs = 0;
  /** What the draft itself computed (draftMs in the stats); its wall time may hold other work. */
  private draftOwnMs = 0;
  private readonly engineBySteps: number[] = []; // [timesteps] controller ms in each

  constructor(
    readonly pipeline: Pipeline,
    readonly request: GenerateRequest,
    method: Method,
    readonly maxNew: number,
    finishAtLimit: FinishReason,
  ) {
    this.prompt = request.prompt;
    const sampling = request.sampling ?? GREEDY;
    // PP has no draft: both acceptance modes just sample the target (and the last stage need
    // not send distributions back).
    this.sampling =
      method === 'pp' && sampling.acceptance !== undefined
        ? { ...sampling, acceptance: 'exact' }
        : sampling;
    this.session = pipeline.open(request.requestId);
    const p = request.prompt.length;
    this.lastUsefulPosition = p + maxNew - 2;
    const chunk = request.prefillChunk ?? 32;
    for (let s = 0; s < p; s += chunk) {
      this.chunks.push(Array.from({ length: Math.min(chunk, p - s) }, (_, i) => s + i));
    }
    this.stop = new StopRules({
      maxTokens: maxNew,
      finishAtLimit,
      eosTokenIds: request.eosTokenIds ?? pipeline.info.eosTokenIds,
      stop: request.stop ?? [],
      text: request.text,
    });
    this.stats = emptyStats(method, pipeline.stageCount, p);
  }

  /** Node id of the last prompt row: the first root. Tree ids start above it. */
  get promptRoot(): number {
    return this.prompt.length - 1;
  }

  get prefillDone(): boolean {
    return this.chunkSent === this.chunks.length;
  }

  /** The next prefill chunk as a packet, or null once all are sent. */
  nextPrefillPacket(epoch: number): LayerPacket | null {
    const ids = this.chunks[this.chunkSent];
    if (!ids) return null;
    this.chunkSeqs.set(this.packetSeq, this.chunkSent);
    this.chunkSent++;
    if (this.prefillDone) this.pendingChain = ids.slice(0, -1);
    return this.packet(
      epoch,
      ids.map((id) => (id === 0 ? -1 : id - 1)),
      ids,
      ids,
      ids.map((id) => this.prompt[id]),
    );
  }

  isPrefillPacket(seq: number): boolean {
    return this.chunkSeqs.has(seq);
  }

  /**
   * Handles the verdict of a prefill chunk other than the last: its rows now exist on every
   * stage, so they become committed. Returns false for other verdicts.
   */
  handlePrefillVerdict(v: Verdict, epoch: number): boolean {
    const chunk = this.chunkSeqs.get(v.seq);
    if (chunk === undefined || chunk === this.chunks.length - 1) return false;
    this.decide(epoch, this.chunks[chunk], 'all');
    return true;
  }

  packet(
    epoch: number,
    parentIds: number[],
    nodeIds: number[],
    positions: number[],
    tokens: number[],
  ): LayerPacket {
    return {
      requestId: this.request.requestId,
      epoch,
      seq: this.packetSeq++,
      nodeIds: Int32Array.from(nodeIds),
      parentIds: Int32Array.from(parentIds),
      positions: Int32Array.from(positions),
      tokens: Int32Array.from(tokens),
      sampling: this.sampling,
    };
  }

  decide(epoch: number, commit: number[], keep: Decision['keep'], upTo = -1): void {
    const t = performance.now();
    this.session.broadcast({
      requestId: this.request.requestId,
      epoch,
      seq: this.decisionSeq++,
      commit,
      keep,
      upTo,
    });
    this.stats.broadcastMs += performance.now() - t;
  }

  /** Commits one target token; false once the request is finished. */
  commitToken(token: number, logit: number): boolean {
    if (this.request.signal?.aborted) {
      this.finish = 'cancelled';
      return false;
    }
    this.stats.committedTokens++;
    this.tokenLogits.push(logit);
    const step = this.stop.push(token);
    const timestep = this.session.timestep;
    if (this.stats.committedTokens === 1) {
      this.stats.prefillTimesteps = timestep;
      this.stats.ttftWallMs = performance.now() - this.t0;
      this.stats.ttftSimulatedMs = this.session.simulatedMs;
    }
    if (step.emit) {
      this.request.onEvent?.({
        requestId: this.request.requestId,
        token,
        index: this.stop.tokens.length - 1,
        timestep,
        simulatedMs: this.session.simulatedMs,
        text: step.delta,
      });
    }
    this.finish = step.finish;
    return this.finish === null;
  }

  /** Times a draft call so that engine overhead excludes it. */
  async timeDraft<T>(positions: number, work: () => Promise<T>, ownMs?: () => number): Promise<T> {
    const t = performance.now();
    const inPipeline = this.session.inFlight > 0;
    try {
      return await work();
    } finally {
      const wall = performance.now() - t;
      this.draftWallMs += wall;
      if (inPipeline) this.stats.draftInPipelineMs += wall;
      const own = ownMs?.();
      this.draftOwnMs += own !== undefined && Number.isFinite(own) ? Math.min(own, wall) : wall;
      this.stats.draftPositions += positions;
    }
  }

  timeDraftSync(work: () => void): void {
    const t = performance.now();
    work();
    const wall = performance.now() - t;
    this.draftWallMs += wall;
    if (this.session.inFlight > 0) this.stats.draftInPipelineMs += wall;
    this.draftOwnMs += wall;
  }

  /** The event loop: runs until a stop rule fires or the signal aborts. */
  async loop(h: MethodHandlers): Promise<void> {
    const signal = this.request.signal;
    // Each wait for the next event also ends if the signal aborts. Not Promise.race with one
    // abort promise for the whole request: that promise, never settled, gathered a reaction per
    // event, and each held the event it raced (a verdict and its arrays) until the request
    // ended, so every event outlived the young generation. The head runs this loop for every
    // request: bench:batching (lo4, 8 clients) counted 55-63 full mark-compacts at the head per
    // run with the race, 9-15 without, and 8-9% more tokens/s (bench/results/run-loop-gc-ab).
    let wake: ((aborted: 'aborted') => void) | null = null;
    const onAbort = () => wake?.('aborted');
    signal?.addEventListener('abort', onAbort, { once: true });
    const nextEvent = (): Promise<PipelineEvent | 'aborted'> => {
      const next = this.session.next();
      if (!signal) return next;
      return new Promise((resolve, reject) => {
        if (signal.aborted) return resolve('aborted');
        wake = resolve;
        next.then(resolve, reject);
      });
    };
    let idleTicks = 0;
    let engineMs = 0;
    try {
      while (this.finish === null) {
        const ev = await nextEvent();
        if (ev === 'aborted' || signal?.aborted) {
          this.finish = 'cancelled';
          break;
        }
        const t = performance.now();
        const outside = this.draftWallMs + this.stats.broadcastMs;
        if (ev.kind === 'verdict') {
          idleTicks = 0;
          await h.onVerdict(ev.verdict);
        } else {
          const packet = await h.onTick();
          if (packet) {
            idleTicks = 0;
            this.session.send(packet);
            await h.afterSend?.(packet);
          } else if (this.session.inFlight > 0) {
            // Nothing to send until an answer comes back (the tree reached the last useful
            // position, or a refill waits for its verdict): waiting, not stalled.
            idleTicks = 0;
          } else if (++idleTicks > 4 * this.pipeline.stageCount + 8) {
            throw new EngineError('PIPELINE_STALLED', 'no packet in flight and none to send');
          }
        }
        const own = performance.now() - t - (this.draftWallMs + this.stats.broadcastMs - outside);
        engineMs += own;
        const step = this.session.timestep;
        this.engineBySteps[step] = (this.engineBySteps[step] ?? 0) + own;
      }
    } finally {
      wake = null;
      signal?.removeEventListener('abort', onAbort);
    }
    this.stats.engineMs = engineMs;
  }

  /** Frees the request everywhere and fills in the statistics. */
  async close(): Promise<GenerateResult> {
    await this.session.close();
    const s = this.stats;
    s.timesteps = this.session.timestep;
    s.outputTokens = this.stop.tokens.length;
    s.draftMs = this.draftOwnMs;
    s.wallMs = performance.now() - this.t0;
    s.simulatedMs = this.session.simulatedMs;
    const usage = this.session.usage();
    s.stageBusyMs = usage.map((u) => u.busyMs);
    s.stagePositions = usage.map((u) => u.positions);
    s.stageSimulatedMs = usage.map((u) => u.simulatedMs);
    const decodeTokens = Math.max(0, s.committedTokens - 1); // none before the first token
    s.timestepsPerToken = ratio(s.timesteps - s.prefillTimesteps, decodeTokens);
    s.tokensPerTimestep = ratio(decodeTokens, s.timesteps - s.prefillTimesteps);
    s.simulatedMsPerToken = ratio(s.simulatedMs - s.ttftSimulatedMs, decodeTokens);
    const steps = Array.from(this.engineBySteps, (x) => x ?? 0).sort((a, b) => a - b);
    s.engineMsMedian = steps[Math.floor(steps.length / 2)] ?? 0;
    s.engineMsP90 = steps[Math.floor(steps.length * 0.9)] ?? 0;
    const hits = draftHits(s);
    s.hitRate = ratio(hits.accepted, hits.verified);
    s.refillsPer100Tokens = ratio(100 * s.refills, s.committedTokens);
    return {
      requestId: this.request.requestId,
      tokens: [...this.stop.tokens],
      text: this.stop.output,
      finishReason: this.finish ?? 'cancelled',
      stats: s,
      tokenLogits: this.tokenLogits,
    };
  }
}

/** The answer for a prompt that already fills the context window: nothing to generate. */
export function contextFullResult(request: GenerateRequest, method: Method, stages: number) {
  const result: GenerateResult = {
    requestId: request.requestId,
    tokens: [],
    text: '',
    finishReason: 'context_full',
    stats: emptyStats(method, stages, request.prompt.length),
    tokenLogits: [],
  };
  return result;
}

export function emptyStats(method: Method, stages: number, promptTokens: number): RequestStats {
  return {
    method,
    stages,
    promptTokens,
    outputTokens: 0,
    committedTokens: 0,
    timesteps: 0,
    prefillTimesteps: 0,
    timestepsPerToken: 0,
    tokensPerTimestep: 0,
    verifications: 0,
    hits: 0,
    misses: 0,
    refills: 0,
    hitRate: 0,
    refillsPer100Tokens: 0,
    acceptedDraftTokens: 0,
    firstProposalChecks: 0,
    firstProposalMatches: 0,
    draftedNodes: 0,
    draftMs: 0,
    draftInPipelineMs: 0,
    draftPositions: 0,
    stageBusyMs: [],
    stagePositions: [],
    stageSimulatedMs: [],
    engineMs: 0,
    engineMsMedian: 0,
    engineMsP90: 0,
    broadcastMs: 0,
    wallMs: 0,
    ttftWallMs: 0,
    simulatedMs: 0,
    ttftSimulatedMs: 0,
    simulatedMsPerToken: 0,
  };
}
