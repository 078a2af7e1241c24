// A request's quota reservation: taken at admission (rate, concurrency and token windows in
// one Redis round trip), settled to what it used when it is accounted, given back when
// admission fails, and the counters reconciled with PostgreSQL (monthly usage, concurrency)
// every RECONCILE_INTERVAL_S. Split from AccountingService, which records and settles.
import {
  Inject,
  Injectable,
  Logger,
  type OnModuleDestroy,
  type OnModuleInit,
} from '@nestjs/common';
import { ApiError } from '../common/errors.js';
import { API_CONFIG, type ApiConfig } from '../config/api-config.js';
import { Clock } from '../infra/clock.js';
import { MetricsService } from '../metrics/metrics.service.js';
import { monthStart } from '../quotas/quota-windows.js';
import { QuotaService, type RateHeaders } from '../quotas/quota.service.js';
import type { TenantLimits } from '../tenants/limits.js';
import type { RoomCheck } from './fair-scheduler.js';
import { RequestsRepository } from './requests.repository.js';

@Injectable()
export class ReservationService implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger('Reservation');
  private reconcileTimer?: NodeJS.Timeout;
  /** Tenants whose concurrency count disagreed with PostgreSQL at the last reconciliation. */
  private concurrencyMismatch = new Set<string>();

  constructor(
    private readonly quota: QuotaService,
    private readonly repo: RequestsRepository,
    private readonly metrics: MetricsService,
    private readonly clock: Clock,
    @Inject(API_CONFIG) private readonly config: ApiConfig,
  ) {}

  async onModuleInit(): Promise<void> {
    const reconcile = () =>
      this.reconcileAll().catch((e: unknown) => this.logger.warn(`reconcile: ${String(e)}`));
    await reconcile();
    this.reconcileTimer = setInterval(
      () => void reconcile(),
      this.config.RECONCILE_INTERVAL_S * 1000,
    );
    this.reconcileTimer.unref();
  }

  onModuleDestroy(): void {
    clearInterval(this.reconcileTimer);
  }

  /**
   * Reserves `tokens` for the request within the tenant's limits, or throws the 429; the
   * scheduler's room check (if any) is released when it does.
   */
  async reserve(
    tenantId: string,
    requestId: string,
    limits: TenantLimits,
    tokens: number,
    room: RoomCheck | null,
  ): Promise<RateHeaders> {
    try {
      return await this.quota.admit(tenantId, requestId, limits, tokens);
    } catch (e) {
      room?.release();
      if (e instanceof ApiError && e.status === 429) {
        this.metrics.rateLimited.inc({ ...this.metrics.tenant(tenantId), code: e.code });
        await this.quota.countRefusal(tenantId, e.code ?? 'rate_limit_exceeded');
      }
      throw e;
    }
  }

  /** Settles the request's reservation to the tokens it used (0: gives it all back). */
  settle(requestId: string, usedTokens: number): Promise<boolean> {
    return this.quota.settle(requestId, usedTokens);
  }

  /** Monthly usage and concurrency from PostgreSQL into the quota counters. */
  async reconcileAll(): Promise<void> {
    const since = monthStart(this.clock.nowMs());
    const mismatched = new Set<string>();
    for (const { id } of await this.repo.tenantIds()) {
      const { used, inFlight } = await this.repo.monthUsage(id, since);
      // A count that disagrees twice in a row is a leak (a replica died holding a slot),
      // not a request caught between Redis and PostgreSQL.
      const r = await this.quota.reconcile(id, used, inFlight, this.concurrencyMismatch.has(id));
      if (!r.monthSet && r.concurrency !== inFlight) mismatched.add(id);
    }
    this.concurrencyMismatch = mismatched;
  }
}
