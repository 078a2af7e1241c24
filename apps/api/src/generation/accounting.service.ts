import { Injectable } from '@nestjs/common';
import { REQUEST_KEYS_TTL_S } from '@pipedec/contracts';
import { Clock } from '../infra/clock.js';
import { MetricsService } from '../metrics/metrics.service.js';
import { TenantsService } from '../tenants/tenants.service.js';
import { EventReader } from './event-reader.js';
import { outcomeOf } from './outcome.js';
import { RequestsRepository } from './requests.repository.js';
import { ReservationService } from './reservation.service.js';

/**
 * Records each request's usage, timings and cost exactly once, when its stream holds the
 * terminal record, and settles its quota reservation. Called by whoever sees the end first
 * (the client's relay, the sweeper, any replica); the conditional update makes the rest no-ops.
 * Finding the requests nobody accounted is AccountingSweeper's; the reservation itself is
 * ReservationService's.
 */
@Injectable()
export class AccountingService {
  constructor(
    private readonly repo: RequestsRepository,
    private readonly events: EventReader,
    private readonly reservation: ReservationService,
    private readonly tenants: TenantsService,
    private readonly metrics: MetricsService,
    private readonly clock: Clock,
  ) {}

  /** Accounts the request if it has ended; true if this call did it. */
  async finalize(tenantId: string, requestId: string): Promise<boolean> {
    const request = await this.repo.accountingView(tenantId, requestId);
    if (!request || request.accounted) return false;
    const entries = await this.events.all(requestId);
    const { pricing } = await this.tenants.context(tenantId);
    const outcome = outcomeOf(
      request,
      entries.map((e) => e.event),
      pricing,
    );
    if (!outcome) return false;
    const at = outcome.finishedAt;
    const hour = new Date(Math.floor(at.getTime() / 3_600_000) * 3_600_000);
    const day = new Date(Date.UTC(at.getUTCFullYear(), at.getUTCMonth(), at.getUTCDate()));
    const first = await this.repo.finalize(tenantId, requestId, outcome, hour, day);
    if (!first) return false;
    await this.reservation.settle(requestId, outcome.promptTokens + outcome.completionTokens);
    const tenant = this.metrics.tenant(tenantId);
    this.metrics.generationRequests.inc({ ...tenant, status: outcome.status });
    this.metrics.tokens.inc({ ...tenant, kind: 'prompt' }, outcome.promptTokens);
    this.metrics.tokens.inc({ ...tenant, kind: 'completion' }, outcome.completionTokens);
    this.metrics.costMicros.inc(tenant, Number(outcome.costMicros));
    this.metrics.latency.observe(outcome.totalLatencyMs / 1000);
    if (outcome.timeToFirstTokenMs !== null)
      this.metrics.ttft.observe(outcome.timeToFirstTokenMs / 1000);
    if (outcome.timePerOutputTokenMs !== null)
      this.metrics.tpot.observe(outcome.timePerOutputTokenMs / 1000);
    return true;
  }

  /** Ends a request that never produced a terminal record (lost or failed job), then accounts it. */
  async failAndFinalize(
    tenantId: string,
    requestId: string,
    code: string,
    message: string,
  ): Promise<void> {
    await this.events.append(
      requestId,
      { type: 'error', code, message, retryable: false, at: this.clock.nowMs() },
      REQUEST_KEYS_TTL_S,
    );
    await this.finalize(tenantId, requestId);
  }
}
