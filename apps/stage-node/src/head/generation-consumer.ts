// The head's BullMQ worker on the generation queue. It takes jobs only while its pipeline is
// whole (paused otherwise), runs each with the job's method over the GrpcPipeline, and appends
// the request's events to its Redis stream. decoding_method "auto" is resolved here, per
// request, by a MethodChooser fed with this pipeline's own measurements. A job that fails because the pipeline broke is
// retried by the queue when its attempts allow (the error event says so); other failures are
// final.
import { randomUUID } from 'node:crypto';
import { Logger } from '@nestjs/common';
import {
  cancelChannel,
  GENERATION_JOB_NAME,
  kvRowsFor,
  kvTreeRows,
  type StageKv,
  generationJobSchema,
  queuePrefix,
  unsupportedCombination,
  type DecodingChoice,
  decodingLabel,
  type FinishReason as JobFinishReason,
  type GenerationJob,
} from '@pipedec/contracts';
import {
  decodeMsPerToken,
  defaultAutoCandidates,
  draftAgreement,
  MethodChooser,
  requestClass,
  type FinishReason,
  type GenerateResult,
  type RequestStats,
  type StageShard,
  isDistribution,
  decodingUnderLoad,
  layerWidthUnderLoad,
} from '@pipedec/engine';
import type { LoadedTokenizer } from '@pipedec/model';
import { DelayedError, UnrecoverableError, Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import type { StageConfig } from '../config/stage-config.js';
import type { GrpcPipeline, TransportStats } from './grpc-pipeline.js';
import { JobEventStream } from './job-events.js';
import { speculativeStats } from './job-stats.js';
import { KvGate } from './kv-gate.js';
import { runMethod } from './run-method.js';
import { StageNodeError } from './stage-node-error.js';
import { PipelineWarmUp } from './warm-up.js';

const CANCEL_POLL_MS = 200;
/** How often a job cancelled with its client checks that an API still relays it. */
const RELAY_CHECK_MS = 250;
/** A running job's lock, renewed every half of it while its head lives. */
const JOB_LOCK_MS = 4000;
/** A job fetched while the pipeline stopped being whole waits this long before it is offered again. */
const REQUEUE_DELAY_MS = 100;
/** Tokens per warm-up request (warm-up.ts). */
const WARMUP_REQUEST_TOKENS = 64;
/** The warm-up's prompt, when the checkpoint has a tokenizer. */
const WARMUP_TEXT =
  'In the beginning the service was cold, and every packet went slowly through the stages; ' +
  'then it ran a few requests of its own, and it was fast.';

/** The job's return value in the queue: what the benchmark and operators read back. */
export interface GenerationSummary {
  requestId: string;
  tokens: number;
  finishReason: JobFinishReason;
  decoding: DecodingChoice;
  stats: RequestStats;
  transport: TransportStats | null;
}

export class GenerationConsumer {
  private readonly log = new Logger('GenerationConsumer');
  private worker: Worker | null = null;
  private running: Promise<void> | null = null;
  private readonly connection: Redis;
  /** Pub/sub connection for cancellations (the flag's poll is the fallback). */
  private readonly subscriber: Redis;
  /** The running requests' aborts, by request id. */
  private readonly aborts = new Map<string, AbortController>();
  /** decoding_method "auto": measured decode speed per candidate, by fixed width (0: none). */
  private readonly choosers = new Map<number, MethodChooser>();
  /** Jobs start only when their worst-case KV fits on every stage (kv-gate.ts). */
  readonly kvGate: KvGate;
  /** Tokens streamed since start, every request together (the heartbeat's throughput). */
  private streamed = 0;
  /** Runs before the first job (warm-up.ts); the queue is not read until it is done. */
  readonly warmUp: PipelineWarmUp;
  private warming: Promise<unknown> | null = null;
  private warmAbort: AbortController | null = null;
  private accepting = false;

  constructor(
    private readonly config: StageConfig,
    private readonly pipeline: GrpcPipeline,
    private readonly draft: StageShard,
    private readonly tokenizer: LoadedTokenizer | null,
    private readonly redis: Redis,
    /**
     * Re-reads the registry and says whether the pipeline is whole now. The worker is paused
     * as soon as a poll sees the pipeline broken or a stage draining, but a job fetched in the
     * window before that poll would start on a pipeline that is going away: it is checked again
     * here and put back on the queue, untouched, when the answer is no.
     */
    private readonly wholeNow: () => Promise<boolean> = () => Promise.resolve(true),
    /** Every stage's KV memory as announced (StageNode.kvStages). */
    kvStages: () => readonly StageKv[] = () => [],
  ) {
    this.kvGate = new KvGate(kvStages);
    this.connection = new Redis(config.redisUrl, { maxRetriesPerRequest: null });
    // The API publishes a cancelled request's id as it sets the flag: abort at once.
    this.subscriber = new Redis(config.redisUrl, { maxRetriesPerRequest: null });
    this.subscriber.on('message', (_channel: string, requestId: string) =>
      this.aborts.get(requestId)?.abort(),
    );
    this.subscriber.subscribe(cancelChannel(config.redisPrefix)).catch((e: unknown) => {
      this.log.warn(`cancel channel: ${e instanceof Error ? e.message : String(e)}; polling only`);
    });
    this.warmUp = this.buildWarmUp();
  }

  /**
   * Starts or resumes taking jobs (pipeline whole) or pauses (not whole). The first time the
   * pipeline is whole the warm-up runs first; it stops when the pipeline breaks and starts
   * again from zero the next time it is whole.
   */
  setAccepting(accept: boolean): void {
    this.accepting = accept;
    if (!accept) this.warmAbort?.abort();
    if (accept && this.warmUp.pending) {
      if (!this.warming) {
        const abort = (this.warmAbort = new AbortController());
        this.warming = this.warmUp.start(abort.signal).then(() => {
          this.warming = null;
          if (this.accepting) this.setAccepting(true);
        });
      }
      return;
    }
    if (accept) {
      if (!this.worker) {
        this.worker = new Worker(
          this.config.queueName,
          (job: Job, token) => this.admit(job, token),
          {
            connection: this.connection,
            prefix: queuePrefix(this.config.redisPrefix),
            concurrency: this.config.queueConcurrency,
            autorun: false,
            // A head that dies (kill -9) holds its job's lock until it expires; any head's
            // stalled check then puts the job back for the next whole pipeline. BullMQ's 30 s
            // defaults kept a client waiting up to a minute; these bound it to about 6 s.
            lockDuration: JOB_LOCK_MS,
            stalledInterval: JOB_LOCK_MS / 2,
          },
        );
        this.worker.on('error', (e) => this.log.warn(`queue: ${e.message}`));
        this.running = this.worker.run().catch((e: unknown) => {
          this.log.error(`worker stopped: ${e instanceof Error ? e.message : String(e)}`);
        });
      } else if (this.worker.isPaused()) {
        void this.worker.resume();
      }
    } else if (this.worker && !this.worker.isPaused()) {
      void this.worker.pause(true).catch(() => undefined);
      this.kvGate.withdrawAll();
    }
  }

  /** Stops taking jobs and waits for the running ones (up to the grace period; then they fail). */
  async close(): Promise<void> {
    this.accepting = false;
    this.warmAbort?.abort();
    await this.warming;
    if (this.worker) {
      await this.worker.close();
      await this.running;
    }
    await this.connection.quit().catch(() => undefined);
    await this.subscriber.quit().catch(() => undefined);
  }

  get tokensStreamed(): number {
    return this.streamed;
  }

  /** Stops fetching new jobs; running ones go on. */
  async pause(): Promise<void> {
    this.accepting = false;
    this.warmAbort?.abort();
    this.kvGate.withdrawAll();
    await this.worker?.pause(true);
  }

  /** Starts the job if the pipeline is whole at this moment; otherwise back to the queue. */
  private async admit(job: Job, token: string | undefined): Promise<GenerationSummary> {
    if (!(await this.wholeNow().catch(() => false))) {
      await job.moveToDelayed(Date.now() + REQUEUE_DELAY_MS, token);
      throw new DelayedError();
    }
    return this.process(job, token);
  }

  private async process(job: Job, token: string | undefined): Promise<GenerationSummary> {
    if (job.name !== GENERATION_JOB_NAME) {
      throw new UnrecoverableError(`unknown job name "${job.name}" on ${this.config.queueName}`);
    }
    const parsed = generationJobSchema.safeParse(job.data);
    if (!parsed.success) {
      throw new UnrecoverableError(`JOB_INVALID: ${parsed.error.message}`);
    }
    const data = parsed.data;
    const attempt = job.attemptsMade + 1;
    const events = new JobEventStream(this.redis, data.eventsKey);
    const abort = new AbortController();
    this.aborts.set(data.requestId, abort);
    const pollCancel = () =>
      void this.redis.exists(data.cancelKey).then(
        (n) => n > 0 && abort.abort(),
        () => undefined,
      );
    pollCancel(); // cancelled while it waited in the queue
    const cancelTimer = setInterval(pollCancel, CANCEL_POLL_MS);
    const relayTimer = data.relayKey ? this.watchRelay(data.requestId, data.relayKey, abort) : null;
    let lease = () => {};
    try {
      const chosen = this.fitKv(data, this.chosenDecoding(data));
      // Waits (still queued to its client: no `started` yet) until its KV fits.
      const held = await this.kvGate.acquire(chosen.rows, abort.signal);
      if (!held) {
        // The head stopped taking jobs while this one waited: back to the queue, untouched.
        await job.moveToDelayed(Date.now() + REQUEUE_DELAY_MS, token);
        throw new DelayedError();
      }
      lease = held;
      const decoding = this.withRefills(this.underLoad(chosen.decoding));
      events.append({
        type: 'started',
        attempt,
        pipelineId: this.config.pipelineId,
        decoding,
        at: Date.now(),
      });
      const result = await this.generate(data, decoding, attempt, abort.signal, events);
      this.learn(data, decoding, result);
      const transport = this.pipeline.takeStats(result.requestId) ?? null;
      const stats = speculativeStats(result.stats, transport);
      const at = Date.now();
      events.append({ type: 'stats', stats, at });
      events.append({
        type: 'done',
        finishReason: jobFinishReason(result.finishReason),
        usage: { promptTokens: data.promptTokens, completionTokens: result.tokens.length },
        stats,
        at,
      });
      await events.flush();
      return {
        requestId: data.requestId,
        tokens: result.tokens.length,
        finishReason: jobFinishReason(result.finishReason),
        decoding,
        stats: result.stats,
        transport,
      };
    } catch (error) {
      if (error instanceof DelayedError) throw error; // requeued, not failed
      const attempts = job.opts.attempts ?? 1;
      const retryable = error instanceof StageNodeError && error.retryable && attempt < attempts;
      const code = errorCode(error);
      const message = error instanceof Error ? error.message : String(error);
      events.append({ type: 'error', code, message, retryable, at: Date.now() });
      await events.flush().catch(() => undefined);
      this.log.warn(`request ${data.requestId} attempt ${attempt} failed: ${message}`);
      if (!retryable) throw new UnrecoverableError(message);
      throw error;
    } finally {
      lease();
      clearInterval(cancelTimer);
      if (relayTimer) clearInterval(relayTimer);
      this.aborts.delete(data.requestId);
    }
  }

  /**
   * A job cancelled with its client: the API relaying its stream would cancel it when the
   * client drops, but an API that crashed cancels nothing, and the job would run to its end,
   * billed for tokens nobody asked to keep. Its relays refresh the heartbeat key
   * (contracts relayKey); once it has been gone for RELAY_LOST_CANCEL_MS, counted from the
   * job's start or the last time it was seen, the job is cancelled as a client's cancel is:
   * it ends with finish reason "cancelled", billed the tokens it wrote to its stream.
   */
  private watchRelay(requestId: string, key: string, abort: AbortController): NodeJS.Timeout {
    let seenAt = Date.now();
    const check = () => {
      void this.redis.exists(key).then(
        (n) => {
          if (n > 0) seenAt = Date.now();
          else if (Date.now() - seenAt >= this.config.relayLostCancelMs && !abort.signal.aborted) {
            this.log.warn(
              `request ${requestId}: no API has relayed it for ${Date.now() - seenAt} ms; cancelling`,
            );
            abort.abort();
          }
        },
        () => undefined, // Redis unreachable: nothing is known about the relay
      );
    };
    return setInterval(check, RELAY_CHECK_MS);
  }

  /**
   * The request's worst-case KV rows (contracts kv-budget.ts) with the tree it asked for, or a
   * narrower one when that could never fit on the pipeline's stages (the API refuses a
   * request that would not fit even with width 1; a budget that shrank since is failed here).
   */
  private fitKv(job: GenerationJob, d: DecodingChoice): { decoding: DecodingChoice; rows: number } {
    const stages = this.config.stageCount;
    const maxPositions = this.pipeline.info.maxPositions;
    const depth = d.depth || this.config.stppDepth;
    const rowsAt = (w: number) =>
      kvRowsFor(job.promptTokens, job.maxTokens, maxPositions, kvTreeRows(w, stages, depth));
    for (let w = Math.max(1, d.width); w >= 1; w--) {
      if (!this.kvGate.canEverFit(rowsAt(w))) continue;
      const decoding = w === d.width ? d : { ...d, width: w, narrowedFrom: d.width };
      return { decoding, rows: rowsAt(w) };
    }
    throw new StageNodeError(
      'KV_BUDGET',
      `the request needs ${rowsAt(1)} KV rows (${job.promptTokens} prompt + ${job.maxTokens} max_tokens + tree), more than a stage of pipeline ${this.config.pipelineId} holds (${this.kvGate.capacitySlots()} slots)`,
    );
  }

  /**
   * Its width narrowed to a share of the row budget when other requests are in flight, or PP
   * when too many are (row-budget.ts decodingUnderLoad).
   */
  private underLoad(chosen: DecodingChoice): DecodingChoice {
    if (chosen.method === 'pp') return chosen;
    const { method, width } = decodingUnderLoad(
      chosen.method,
      chosen.width,
      this.pipeline.inFlight + 1,
      this.config.rowBudget,
      this.config.speculateMaxInFlight,
    );
    if (method === 'pp') {
      return {
        ...chosen,
        method,
        width,
        depth: 0,
        narrowedFrom: chosen.narrowedFrom ?? chosen.width,
        fellBackFrom: chosen.method,
      };
    }
    if (width === chosen.width) return chosen;
    return { ...chosen, width, narrowedFrom: chosen.narrowedFrom ?? chosen.width };
  }

  /** PipeDec's refill depth on this pipeline, stated in the decoding it reports. */
  private withRefills(d: DecodingChoice): DecodingChoice {
    return d.method === 'pipedec' ? { ...d, refillLayers: this.config.pipeDecRefillLayers } : d;
  }

  private chosenDecoding(job: GenerationJob): DecodingChoice {
    const depth = this.config.stppDepth;
    // Jobs queued before speculative_acceptance existed accept exactly.
    const acceptance = job.sampling.acceptance ?? 'exact';
    if (job.method !== 'auto') {
      return {
        method: job.method,
        width: job.width,
        depth: job.method === 'stpp' ? depth : 0,
        reason: 'requested',
        acceptance,
      };
    }
    const cls = requestClass(job.sampling, acceptance);
    const chooser = this.chooser(job.width);
    const c = chooser.choose(cls);
    const weighed = chooser.estimates(cls); // what it weighed, for whoever asks why
    return {
      method: c.method,
      width: c.width,
      depth: c.depth,
      reason: c.reason,
      acceptance,
      ...(weighed.length > 0
        ? {
            estimates: Object.fromEntries(weighed.map((e) => [decodingLabel(e.candidate), e.ms])),
          }
        : {}),
    };
  }

  /**
   * Feeds auto's measurements: every finished request that ran one of auto's candidates
   * (named or chosen) records its decode time per token under its class.
   */
  private learn(job: GenerationJob, d: DecodingChoice, result: GenerateResult): void {
    const ms = decodeMsPerToken(result.stats);
    // A narrowed run shared the pipeline: its speed says nothing about the method alone.
    if (ms === undefined || result.finishReason === 'cancelled' || d.narrowedFrom) return;
    const cls = requestClass(job.sampling, job.sampling.acceptance ?? 'exact');
    for (const width of new Set([0, job.width])) {
      const chooser = this.chooser(width);
      if (
        chooser.candidates.some(
          (c) => c.method === d.method && c.width === d.width && c.depth === d.depth,
        )
      ) {
        chooser.record(cls, d, ms, draftAgreement(result.stats));
      }
    }
  }

  /** One chooser per width a request may fix (0: auto picks the width as well). */
  private chooser(width: number): MethodChooser {
    let c = this.choosers.get(width);
    if (!c) {
      c = new MethodChooser({
        candidates: defaultAutoCandidates(width > 0 ? width : undefined, this.config.stppDepth),
      });
      this.choosers.set(width, c);
    }
    return c;
  }

  /** The warm-up over auto's candidates; what it measures in its second half feeds auto. */
  private buildWarmUp(): PipelineWarmUp {
    const info = this.pipeline.info;
    const prompt = this.tokenizer
      ? this.tokenizer.encode(WARMUP_TEXT)
      : Array.from({ length: 32 }, (_, i) => (i * 7919 + 13) % info.vocabSize);
    const candidates = this.chooser(0).candidates;
    return new PipelineWarmUp(
      {
        tokens: this.config.warmUp.tokens,
        maxMs: this.config.warmUp.maxMs,
        requestTokens: Math.min(WARMUP_REQUEST_TOKENS, info.maxPositions - prompt.length - 1),
        prompt,
        candidates,
      },
      async (c, request) => {
        const result = await runMethod(c.method, this.pipeline, this.draft, request, {
          width: c.width,
          stppDepth: c.depth || this.config.stppDepth,
          scoreTemperature: this.config.draftScoreTemperature,
          refillLayers: this.config.pipeDecRefillLayers,
        });
        this.pipeline.takeStats(result.requestId);
        return result;
      },
      (cls, c, ms, agreement) => this.chooser(0).record(cls, c, ms, agreement),
      (line) => this.log.log(line),
    );
  }

  private generate(
    job: GenerationJob,
    decoding: DecodingChoice,
    attempt: number,
    signal: AbortSignal,
    events: JobEventStream,
  ): Promise<GenerateResult> {
    const unsupported = unsupportedCombination(job);
    if (unsupported) throw new StageNodeError('JOB_INVALID', unsupported.message);
    if (job.model !== this.config.modelName) {
      throw new StageNodeError(
        'MODEL_MISMATCH',
        `job asks for model "${job.model}", pipeline ${this.config.pipelineId} serves "${this.config.modelName}"`,
      );
    }
    const tok = this.tokenizer;
    let prompt: number[];
    if (job.prompt.kind === 'tokens') prompt = job.prompt.tokenIds;
    else if (tok) prompt = tok.encode(job.prompt.text);
    else
      throw new StageNodeError(
        'JOB_INVALID',
        'a text prompt needs a tokenizer next to the checkpoint',
      );
    return runMethod(
      decoding.method,
      this.pipeline,
      this.draft,
      {
        // One pipeline id per run: a stage never confuses a retry with what it released. The
        // run tag matters when a killed head's job is taken again by BullMQ's stalled check:
        // the attempt number is the same, and the surviving stages may still hold the dead
        // head's run under it; reusing the id stalled the new run for PACKET_TIMEOUT (30 s).
        requestId: `${job.requestId}#${attempt}.${randomUUID().slice(0, 8)}`,
        prompt,
        maxTokens: job.maxTokens,
        sampling: job.sampling,
        stop: job.stop,
        text: tok?.createStreamDecoder({ skipSpecialTokens: true }),
        signal,
        onEvent: (e) => {
          this.streamed++;
          events.append({
            type: 'token',
            index: e.index,
            tokenId: e.token,
            text: e.text,
            timestep: e.timestep,
            at: Date.now(),
          });
        },
      },
      {
        ...this.pipeDecWidth(job, decoding),
        stppDepth: decoding.depth || this.config.stppDepth,
        scoreTemperature: this.config.draftScoreTemperature,
        refillLayers: this.config.pipeDecRefillLayers,
      },
    );
  }

  /**
   * PipeDec's width follows the row budget through the request (row-budget.ts): it started at
   * decoding.width, its share when it started; each next layer takes the share of the
   * requests in flight then, up to the width it asked for. Distribution acceptance keeps its
   * starting width: its tokens depend on the tree (the engine ignores widthNow there too).
   */
  private pipeDecWidth(
    job: GenerationJob,
    decoding: DecodingChoice,
  ): { width: number; widthNow?: () => number } {
    if (
      decoding.method !== 'pipedec' ||
      isDistribution(job.sampling) ||
      !this.config.widthFollowsLoad
    ) {
      return { width: decoding.width };
    }
    const asked = decoding.narrowedFrom ?? decoding.width;
    return {
      width: asked,
      widthNow: () =>
        layerWidthUnderLoad(
          asked,
          Math.max(1, this.pipeline.inFlight),
          this.config.rowBudget,
          this.config.speculateMaxInFlight,
        ),
    };
  }
}

export function jobFinishReason(r: FinishReason): JobFinishReason {
  switch (r) {
    case 'max_tokens':
    case 'context_full':
      return 'length';
    case 'eos':
    case 'stop_string':
      return 'stop';
    case 'cancelled':
      return 'cancelled';
  }
}

function errorCode(error: unknown): string {
  if (error instanceof StageNodeError) return error.code;
  if (error instanceof Error && 'code' in error && typeof error.code === 'string')
    return error.code;
  return 'INTERNAL';
}
