// TEST DOUBLE of a pipeline head (apps/stage-node stage 0): consumes the BullMQ queue
// "generation" and writes each request's events exactly as libs/contracts jobs/ specifies,
// with deterministic tokens. It lets the API's generation paths be tested before and apart
// from real stage processes; it is not used outside test/.
import {
  EVENT_FIELD,
  encodeEvent,
  GENERATION_QUEUE,
  generationJobSchema,
  queuePrefix,
  type GenerationJob,
  type RequestEvent,
} from '@pipedec/contracts';
import { testRedis } from '@pipedec/testkit';
import { UnrecoverableError, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';

export interface FakeHeadOptions {
  /** Delay before each token, ms. */
  tokenDelayMs?: number;
  concurrency?: number;
  /** Fail the first attempt of every job after this many tokens (retryable). */
  failFirstAttemptAfter?: number;
  /**
   * With failFirstAttemptAfter: stop taking jobs when the first attempt fails, so the retry
   * waits in the queue (a pipeline that stays broken).
   */
  pauseAfterFailure?: boolean;
  /** Die after this many tokens without writing a terminal record (a crashed head). */
  crashAfter?: number;
}

/** The fake model: token i of a job with seed s is this byte, and its text is that letter. */
export function fakeToken(seed: number, i: number): { tokenId: number; text: string } {
  const tokenId = 97 + ((seed + i * 7) % 26);
  return { tokenId, text: String.fromCharCode(tokenId) };
}

export function fakeOutput(seed: number, n: number): string {
  return Array.from({ length: n }, (_, i) => fakeToken(seed, i).text).join('');
}

export class FakeHead {
  /** Request ids in the order the head started them. */
  readonly started: string[] = [];
  /** Every job the head took, by request id (as parsed from the queue). */
  readonly jobs = new Map<string, GenerationJob>();
  private readonly worker: Worker;
  private readonly redis: Redis;
  private readonly connection: Redis;

  constructor(
    prefix: string,
    private readonly options: FakeHeadOptions = {},
  ) {
    this.redis = testRedis();
    this.connection = testRedis();
    this.worker = new Worker(GENERATION_QUEUE, (job: Job) => this.process(job), {
      connection: this.connection,
      prefix: queuePrefix(prefix),
      concurrency: options.concurrency ?? 1,
    });
  }

  private async append(job: GenerationJob, event: RequestEvent): Promise<void> {
    await this.redis.xadd(job.eventsKey, '*', EVENT_FIELD, encodeEvent(event));
  }

  private async process(raw: Job): Promise<number> {
    const parsed = generationJobSchema.safeParse(raw.data);
    if (!parsed.success) throw new UnrecoverableError(parsed.error.message);
    const job = parsed.data;
    const attempt = raw.attemptsMade + 1;
    this.started.push(job.requestId);
    this.jobs.set(job.requestId, job);
    await this.append(job, { type: 'started', attempt, pipelineId: 'fake', at: Date.now() });
    let output = '';
    let n = 0;
    let finish: 'stop' | 'length' | 'cancelled' = 'length';
    for (let i = 0; i < job.maxTokens; i++) {
      if ((await this.redis.exists(job.cancelKey)) > 0) {
        finish = 'cancelled';
        break;
      }
      await new Promise((r) => setTimeout(r, this.options.tokenDelayMs ?? 2));
      if (attempt === 1 && this.options.failFirstAttemptAfter === i) {
        await this.append(job, {
          type: 'error',
          code: 'STAGE_LOST',
          message: 'stage 2 went away',
          retryable: true,
          at: Date.now(),
        });
        if (this.options.pauseAfterFailure) await this.worker.pause(true);
        throw new Error('STAGE_LOST');
      }
      if (this.options.crashAfter === i) throw new UnrecoverableError('head crashed');
      const t = fakeToken(job.sampling.seed, i);
      output += t.text;
      n++;
      await this.append(job, {
        type: 'token',
        index: i,
        tokenId: t.tokenId,
        text: t.text,
        timestep: i,
        at: Date.now(),
      });
      if (job.stop.some((s) => output.includes(s))) {
        finish = 'stop';
        break;
      }
    }
    const stats = {
      timesteps: n,
      tokensPerTimestep: n > 1 ? 1 : 0,
      draftedTokens: 2 * n,
      acceptedTokens: Math.floor(n / 2),
      verifiedTokens: n,
      hitRate: n ? Math.floor(n / 2) / n : null,
      stageSeconds: n * 0.001,
      time: { wallMs: n, draftMs: 0.1 * n, stageComputeMs: 0.5 * n, transferMs: 0.2 * n },
    };
    await this.append(job, { type: 'stats', stats, at: Date.now() });
    await this.append(job, {
      type: 'done',
      finishReason: finish,
      usage: { promptTokens: job.promptTokens, completionTokens: n },
      stats,
      at: Date.now(),
    });
    return n;
  }

  async close(): Promise<void> {
    await this.worker.close();
    this.redis.disconnect();
    this.connection.disconnect();
  }
}
