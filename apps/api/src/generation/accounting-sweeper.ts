// Accounts the requests nobody else did: ended but unaccounted ones (their relay was gone),
// jobs BullMQ gave up on without a terminal record, jobs Redis lost, jobs that wait for a retry
// longer than PIPELINE_WAIT_S after a broken pipeline, and ended jobs with no
// request row (their replica died before writing it). One pass a second on a timer;
// `sweepNow()` runs a whole pass at once, so tests wait for it instead of sleeping.
import {
  Inject,
  Injectable,
  Logger,
  type OnModuleDestroy,
  type OnModuleInit,
} from '@nestjs/common';
import { generationJobSchema, REQUEST_KEYS_TTL_S } from '@pipedec/contracts';
import { API_CONFIG, type ApiConfig } from '../config/api-config.js';
import { Clock } from '../infra/clock.js';
import { AccountingService } from './accounting.service.js';
import { EventReader } from './event-reader.js';
import { FairScheduler } from './fair-scheduler.js';
import { requestOfJob, RequestsRepository, type SweepCursor } from './requests.repository.js';

const SWEEP_MS = 1000;
/** Unaccounted requests the sweeper looks at per pass; the next pass goes on from there. */
const SWEEP_PAGE = 200;
/**
 * A request is lost when its job is neither waiting in the fair lists nor known to BullMQ and
 * its stream holds no terminal record (Redis restarted without persistence, or someone
 * removed the job). It is failed only when a later pass, at least this long after, finds it
 * lost again.
 */
const LOST_CONFIRM_MS = 2 * SWEEP_MS;
const LOST_FORGET_MS = 10 * 60_000;
/**
 * How often ended jobs are checked for a missing row, and how many at most per look (pages of
 * 1000): 2000 jobs a second, more than the API admits.
 */
const UNRECORDED_EVERY_MS = 5 * SWEEP_MS;
const UNRECORDED_PAGE = 1000;
const UNRECORDED_PAGES = 10;

@Injectable()
export class AccountingSweeper implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger('Accounting');
  private sweepTimer?: NodeJS.Timeout;
  private sweeping?: Promise<void>;
  /** Where the next sweep pass starts (undefined: from the oldest). */
  private sweepCursor?: SweepCursor;
  /** Requests the sweeper found lost, and when it first did. */
  private lostSince = new Map<string, number>();
  /** Ended jobs up to this time (epoch ms) were checked for a row; then when it last looked. */
  private checkedUntil?: number;
  private unrecordedAt = 0;

  constructor(
    private readonly repo: RequestsRepository,
    private readonly accounting: AccountingService,
    private readonly events: EventReader,
    private readonly scheduler: FairScheduler,
    private readonly clock: Clock,
    @Inject(API_CONFIG) private readonly config: ApiConfig,
  ) {}

  onModuleInit(): void {
    this.sweepTimer = setInterval(() => {
      this.sweeping ??= this.pass(false)
        .catch((e: unknown) => this.logger.warn(`sweep: ${String(e)}`))
        .finally(() => (this.sweeping = undefined));
    }, SWEEP_MS);
    this.sweepTimer.unref();
  }

  async onModuleDestroy(): Promise<void> {
    clearInterval(this.sweepTimer);
    await this.sweeping;
  }

  /**
   * One whole pass now, after the one in progress (if any): unaccounted requests, then ended
   * jobs with no row (whenever it last looked). Errors reach the caller.
   */
  async sweepNow(): Promise<void> {
    while (this.sweeping) await this.sweeping;
    const pass = this.pass(true);
    this.sweeping = pass.then(
      () => undefined,
      () => undefined,
    );
    try {
      await pass;
    } finally {
      this.sweeping = undefined;
    }
  }

  private async pass(always: boolean): Promise<void> {
    await this.sweep();
    await this.recordUnrecorded(always);
  }

  /**
   * Finds ended-but-unaccounted requests (their relay was gone), jobs BullMQ gave up on
   * without a terminal record (a head that crashed on the last attempt), and jobs Redis lost
   * (accounted as failed, so they hold no concurrency slot or reservation for ever).
   */
  private async sweep(): Promise<void> {
    const open = await this.repo.unaccounted(
      new Date(this.clock.nowMs() - 500),
      SWEEP_PAGE,
      this.sweepCursor,
    );
    // A full page: the next pass goes on after it; otherwise it starts again from the oldest.
    this.sweepCursor = open.length === SWEEP_PAGE ? open[open.length - 1] : undefined;
    const now = this.clock.nowMs();
    // A request found lost once and accounted elsewhere since is never looked at again.
    for (const [id, since] of this.lostSince)
      if (now - since > LOST_FORGET_MS) this.lostSince.delete(id);
    if (open.length === 0) return;
    // A job still waiting in the fair scheduler has not ended: one round trip skips them all,
    // instead of four per request each second while a backlog waits.
    const waiting = await this.scheduler.pendingAmong(open.map((r) => r.id));
    for (const r of open) {
      if (waiting.has(r.id) || (await this.accounting.finalize(r.tenantId, r.id))) {
        this.lostSince.delete(r.id);
        continue;
      }
      const job = await this.scheduler.queue.getJob(r.id);
      if (job) {
        this.lostSince.delete(r.id);
        const state = await job.getState();
        if (state === 'failed') {
          await this.accounting.failAndFinalize(
            r.tenantId,
            r.id,
            'job_failed',
            job.failedReason || 'the job failed',
          );
        } else if (state === 'waiting' || state === 'prioritized' || state === 'delayed') {
          await this.endUnretried(r.tenantId, r.id, now);
        }
        continue;
      }
      const since = this.lostSince.get(r.id);
      if (since === undefined) {
        this.lostSince.set(r.id, now);
      } else if (now - since >= LOST_CONFIRM_MS) {
        this.lostSince.delete(r.id);
        this.logger.warn(`request ${r.id}: its job is gone from Redis; accounting it as failed`);
        await this.accounting.failAndFinalize(
          r.tenantId,
          r.id,
          'job_lost',
          'the job was lost before it ended (Redis lost its state, or the job was removed)',
        );
      }
    }
  }

  /**
   * A job whose attempt failed on a broken pipeline waits in the queue for the next whole one
   * (any replica). When none takes it within PIPELINE_WAIT_S it is taken out and failed with
   * no_pipeline_available, billed what was delivered, so no client waits without bound.
   */
  private async endUnretried(tenantId: string, requestId: string, now: number): Promise<void> {
    const last = await this.events.last(requestId);
    if (last?.type !== 'error' || !last.retryable) return;
    if (now - last.at < this.config.PIPELINE_WAIT_S * 1000) return;
    if (!(await this.scheduler.remove(tenantId, requestId))) return; // a head took it meanwhile
    this.logger.warn(
      `request ${requestId}: no whole pipeline took it within ${this.config.PIPELINE_WAIT_S} s after ${last.code}`,
    );
    await this.accounting.failAndFinalize(
      tenantId,
      requestId,
      'no_pipeline_available',
      `its pipeline failed (${last.code}) and no whole pipeline took it within ${this.config.PIPELINE_WAIT_S} s`,
    );
  }

  /**
   * Jobs that ended with no request row: the replica that queued them died before recording
   * them (the row is written right after the job is queued). Each is recorded from the job
   * itself and accounted, so it is billed and its reservation settles.
   */
  private async recordUnrecorded(always: boolean): Promise<void> {
    const now = this.clock.nowMs();
    if (!always && now - this.unrecordedAt < UNRECORDED_EVERY_MS) return;
    this.unrecordedAt = now;
    const until = now - this.config.UNRECORDED_AFTER_S * 1000;
    // Ended jobs stay in BullMQ for as long as their streams live.
    this.checkedUntil ??= now - REQUEST_KEYS_TTL_S * 1000;
    for (let page = 0; page < UNRECORDED_PAGES && this.checkedUntil < until; page++) {
      const { ids, last } = await this.scheduler.endedBetween(
        this.checkedUntil,
        until,
        UNRECORDED_PAGE,
      );
      for (const id of await this.repo.missing(ids)) await this.recordFromJob(id);
      // A full page: the next one goes on from its last job (and past a millisecond that
      // alone fills a page); otherwise up to `until` is done.
      this.checkedUntil = last === null ? until : Math.max(last, this.checkedUntil + 1);
    }
  }

  /** Records a request from its ended job (its replica died before it could), then accounts it. */
  private async recordFromJob(id: string): Promise<void> {
    const job = await this.scheduler.queue.getJob(id);
    const parsed = generationJobSchema.safeParse(job?.data);
    if (!parsed.success) return;
    const j = parsed.data;
    this.logger.warn(`request ${id}: its job ended with no record; recording it from the job`);
    await this.repo.create(j.tenantId, requestOfJob(j, null));
    await this.accounting.finalize(j.tenantId, id);
  }
}
