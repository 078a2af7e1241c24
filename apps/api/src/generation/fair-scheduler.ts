import {
  Inject,
  Injectable,
  Logger,
  type OnModuleDestroy,
  type OnModuleInit,
} from '@nestjs/common';
import {
  GENERATION_JOB_NAME,
  GENERATION_QUEUE,
  generationJobSchema,
  queuePrefix,
  type GenerationJob,
} from '@pipedec/contracts';
import { Queue } from 'bullmq';
import { API_CONFIG, type ApiConfig } from '../config/api-config.js';
import { RedisConnections } from '../infra/redis.provider.js';
import { MetricsService } from '../metrics/metrics.service.js';

// Weighted fair queuing between tenants, in front of BullMQ (whose open-source edition has no
// per-group round robin). Jobs wait in a list per tenant; a sorted set orders tenants by the
// virtual finish time of their next job (start + 1/weight, weight from the plan), so a
// tenant's burst advances only its own clock and others interleave. The dispatcher keeps
// BullMQ's waiting list short, so the order chosen here is the order the heads see.

/** KEYS: ready zset, tenant list, vt hash, weight hash, jobs hash. ARGV: tenant, id, weight, payload. */
const ENQUEUE_LUA = `
redis.call('RPUSH', KEYS[2], ARGV[2])
redis.call('HSET', KEYS[5], ARGV[2], ARGV[4])
redis.call('HSET', KEYS[4], ARGV[1], ARGV[3])
if redis.call('ZSCORE', KEYS[1], ARGV[1]) == false then
  local gvt = tonumber(redis.call('HGET', KEYS[3], '__global') or '0')
  local last = tonumber(redis.call('HGET', KEYS[3], ARGV[1]) or '0')
  redis.call('ZADD', KEYS[1], math.max(gvt, last) + 1 / tonumber(ARGV[3]), ARGV[1])
end
return redis.call('LLEN', KEYS[2])
`;

/**
 * KEYS: ready zset, vt hash, weight hash, jobs hash, handoff hash. ARGV: list key prefix.
 * Returns the payload, which stays in the handoff hash until BullMQ has the job, so a replica
 * that dies in between leaves it for the next start-up to hand over (jobId dedupes).
 */
const POP_LUA = `
local top = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if #top == 0 then return false end
local tenant, score = top[1], tonumber(top[2])
local list = ARGV[1] .. tenant
local id = redis.call('LPOP', list)
redis.call('HSET', KEYS[2], '__global', score)
if redis.call('LLEN', list) > 0 then
  local w = tonumber(redis.call('HGET', KEYS[3], tenant) or '1')
  redis.call('ZADD', KEYS[1], score + 1 / w, tenant)
else
  redis.call('ZREM', KEYS[1], tenant)
  redis.call('HSET', KEYS[2], tenant, score)
end
if not id then return false end
local payload = redis.call('HGET', KEYS[4], id)
redis.call('HDEL', KEYS[4], id)
if payload then redis.call('HSET', KEYS[5], id, payload) end
return payload
`;

/** KEYS: tenant list, jobs hash, ready zset. ARGV: id, tenant. 1 when it was still pending. */
const REMOVE_LUA = `
local n = redis.call('LREM', KEYS[1], 0, ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
if redis.call('LLEN', KEYS[1]) == 0 then redis.call('ZREM', KEYS[3], ARGV[2]) end
return n
`;

/** See FairScheduler.checkRoom. */
export interface RoomCheck {
  room: Promise<boolean>;
  release(): void;
}

interface Pending {
  job: GenerationJob;
  /** BullMQ priority: 1 is served first. */
  priority: number;
}

@Injectable()
export class FairScheduler implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger('FairScheduler');
  readonly queue: Queue;
  private timer?: NodeJS.Timeout;
  private dispatching?: Promise<void>;
  private stopped = false;
  /** A job is being handed straight to BullMQ (see checkRoom). */
  private directInFlight = false;

  constructor(
    private readonly redis: RedisConnections,
    @Inject(API_CONFIG) private readonly config: ApiConfig,
    metrics: MetricsService,
  ) {
    metrics.setQueueDepthSource(async () => {
      const c = await this.queue.getJobCounts('waiting', 'prioritized', 'active');
      return {
        fair: await this.pendingCount(),
        bullmq_waiting: (c.waiting ?? 0) + (c.prioritized ?? 0),
        bullmq_active: c.active ?? 0,
      };
    });
    // On the connection of the quota script and the fair lists: an admission's quota and room
    // checks (checkRoom) then answer in one read.
    this.queue = new Queue(GENERATION_QUEUE, {
      connection: redis.command,
      prefix: queuePrefix(redis.prefix),
    });
  }

  private key(name: string): string {
    return `${this.redis.prefix}fair:${name}`;
  }

  async onModuleInit(): Promise<void> {
    // Not fatal: with Redis down the API still starts, and /health says so.
    await this.recoverHandoffs().catch((e: unknown) =>
      this.logger.warn(`handoff recovery: ${String(e)}`),
    );
    this.schedule(0);
  }

  async onModuleDestroy(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.dispatching;
    await this.queue.close();
  }

  /**
   * Starts looking whether the next job may go straight to BullMQ: nothing waits in the fair
   * lists and BullMQ has room, so the dispatcher would hand it over at once anyway (its round
   * trips and timer tick showed in time to first token). Taken before the job exists, so the
   * look shares a round trip with the caller's own (the quota admission); pass it to enqueue,
   * or `release` it. Null while another job of this replica goes that way: admissions arriving
   * together would all see room and skip the fair order, so the others queue as usual.
   */
  checkRoom(): RoomCheck | null {
    if (this.directInFlight) return null;
    this.directInFlight = true;
    const room = Promise.all([
      this.redis.command.zcard(this.key('ready')),
      this.queue.getJobCounts('waiting', 'prioritized'),
    ]).then(
      ([fair, c]) =>
        fair === 0 && (c.waiting ?? 0) + (c.prioritized ?? 0) < this.config.QUEUE_DEPTH,
      () => false,
    );
    let held = true;
    return {
      room,
      release: () => {
        if (held) this.directInFlight = held = false;
      },
    };
  }

  /**
   * Queues a job behind its tenant's earlier jobs (`weight` > 0, higher plans more), or hands
   * it straight to BullMQ when `check` found room.
   */
  async enqueue(
    job: GenerationJob,
    weight: number,
    priority: number,
    check: RoomCheck | null = null,
  ): Promise<void> {
    let payload: Pending;
    try {
      payload = { job: generationJobSchema.parse(job), priority };
      if (check && (await check.room)) {
        await this.addToBullmq(payload);
        return;
      }
    } finally {
      check?.release();
    }
    await this.redis.command.eval(
      ENQUEUE_LUA,
      5,
      this.key('ready'),
      this.key(`t:${job.tenantId}`),
      this.key('vt'),
      this.key('weight'),
      this.key('jobs'),
      job.tenantId,
      job.requestId,
      weight,
      JSON.stringify(payload),
    );
    this.schedule(0);
  }

  /**
   * Takes a job out before it runs: from the fair lists, or from BullMQ's waiting list.
   * Returns false when the job is already running (or done).
   */
  async remove(tenantId: string, requestId: string): Promise<boolean> {
    const pending = (await this.redis.command.eval(
      REMOVE_LUA,
      3,
      this.key(`t:${tenantId}`),
      this.key('jobs'),
      this.key('ready'),
      requestId,
      tenantId,
    )) as number;
    if (pending > 0) return true;
    const job = await this.queue.getJob(requestId);
    if (!job) return false;
    const state = await job.getState();
    if (state === 'waiting' || state === 'prioritized' || state === 'delayed') {
      try {
        await job.remove();
        return true;
      } catch {
        return false; // a head took it in the meantime
      }
    }
    return false;
  }

  /**
   * Which of these requests still wait in the fair scheduler: in its lists, or popped and
   * being handed to BullMQ.
   */
  async pendingAmong(requestIds: readonly string[]): Promise<Set<string>> {
    const pipe = this.redis.command.pipeline();
    for (const id of requestIds) {
      pipe.hexists(this.key('jobs'), id);
      pipe.hexists(this.key('handoff'), id);
    }
    const replies = (await pipe.exec()) ?? [];
    return new Set(
      requestIds.filter((_, i) => replies[2 * i]?.[1] === 1 || replies[2 * i + 1]?.[1] === 1),
    );
  }

  /**
   * Ids of jobs that ended (completed or failed) from `from` to `until` (epoch ms), oldest
   * first, and when the last of them ended.
   */
  async endedBetween(
    from: number,
    until: number,
    limit: number,
  ): Promise<{ ids: string[]; last: number | null }> {
    const out: [string, number][] = [];
    for (const key of [this.queue.keys.completed, this.queue.keys.failed]) {
      const flat = await this.redis.command.zrangebyscore(
        key,
        from,
        until,
        'WITHSCORES',
        'LIMIT',
        0,
        limit,
      );
      for (let i = 0; i < flat.length; i += 2) out.push([flat[i], Number(flat[i + 1])]);
    }
    out.sort((a, b) => a[1] - b[1]);
    const page = out.slice(0, limit);
    return {
      ids: page.map(([id]) => id),
      last: page.length === limit ? page[page.length - 1][1] : null,
    };
  }

  /** Requests waiting to start: in the fair lists or being handed over, and in BullMQ's. */
  async waitingCount(): Promise<number> {
    const [fair, handoff, counts] = await Promise.all([
      this.redis.command.hlen(this.key('jobs')),
      this.redis.command.hlen(this.key('handoff')),
      this.queue.getJobCounts('waiting', 'prioritized', 'delayed'),
    ]);
    return (
      fair + handoff + (counts.waiting ?? 0) + (counts.prioritized ?? 0) + (counts.delayed ?? 0)
    );
  }

  async pendingCount(): Promise<number> {
    return this.redis.command.hlen(this.key('jobs'));
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.dispatching = this.dispatch()
        .catch((e: unknown) => this.logger.warn(`dispatch: ${String(e)}`))
        .finally(() => this.schedule(100));
    }, ms);
    this.timer.unref();
  }

  /** Moves jobs into BullMQ while its waiting list is shorter than QUEUE_DEPTH. */
  private async dispatch(): Promise<void> {
    for (;;) {
      if (this.stopped) return;
      const counts = await this.queue.getJobCounts('waiting', 'prioritized');
      if ((counts.waiting ?? 0) + (counts.prioritized ?? 0) >= this.config.QUEUE_DEPTH) return;
      const raw = (await this.redis.command.eval(
        POP_LUA,
        5,
        this.key('ready'),
        this.key('vt'),
        this.key('weight'),
        this.key('jobs'),
        this.key('handoff'),
        this.key('t:'),
      )) as string | null;
      if (!raw) return;
      await this.handOver(raw);
    }
  }

  /** Adds a popped job to BullMQ (idempotent: the job id is the request id), then forgets it. */
  private async handOver(raw: string): Promise<void> {
    const pending = JSON.parse(raw) as Pending;
    await this.addToBullmq(pending);
    await this.redis.command.hdel(this.key('handoff'), pending.job.requestId);
  }

  private async addToBullmq({ job, priority }: Pending): Promise<void> {
    await this.queue.add(GENERATION_JOB_NAME, job, {
      jobId: job.requestId,
      priority,
      attempts: this.config.JOB_ATTEMPTS,
      backoff: { type: 'fixed', delay: 200 },
      removeOnComplete: { age: 3600 },
      removeOnFail: { age: 3600 },
    });
  }

  /** Jobs a previous process popped but may not have handed to BullMQ. */
  private async recoverHandoffs(): Promise<void> {
    const left = await this.redis.command.hvals(this.key('handoff'));
    for (const raw of left) await this.handOver(raw);
  }
}
