import { Injectable } from '@nestjs/common';
import type {
  MetricsQuery,
  MetricsReport,
  RefusalsQuery,
  RefusalsReport,
  UsageQuery,
} from '@pipedec/contracts';
import { QuotaService } from '../quotas/quota.service.js';
import { Clock } from '../infra/clock.js';
import { UsageRepository } from './usage.repository.js';

@Injectable()
export class UsageService {
  constructor(
    private readonly repo: UsageRepository,
    private readonly clock: Clock,
    private readonly quota: QuotaService,
  ) {}

  /** Refused admissions per tenant and reason over [from, to) (default: this month). */
  async refusals(query: RefusalsQuery): Promise<RefusalsReport> {
    const { from, to } = this.range(query);
    return {
      from: from.toISOString(),
      to: to.toISOString(),
      refusals: await this.quota.refusals(from, to, query.tenantId),
    };
  }

  /** Every tenant's totals and the whole service's series, for the dashboard. */
  async overview(query: UsageQuery) {
    const { from, to } = this.range(query);
    const [tenants, series] = await Promise.all([
      this.repo.totalsPerTenantAcrossTenants(from, to),
      this.repo.seriesAcrossTenants(query.granularity, from, to),
    ]);
    return {
      from: from.toISOString(),
      to: to.toISOString(),
      tenants,
      series: series.map((r) => {
        const requests = r._sum.requests ?? 0;
        return {
          bucketStart: r.bucketStart.toISOString(),
          requests,
          failedRequests: r._sum.failedRequests ?? 0,
          promptTokens: Number(r._sum.promptTokens ?? 0n),
          completionTokens: Number(r._sum.completionTokens ?? 0n),
          costMicros: Number(r._sum.costMicros ?? 0n),
          avgLatencyMs: requests ? Number(r._sum.totalLatencyMs ?? 0n) / requests : null,
          avgTimeToFirstTokenMs: requests
            ? Number(r._sum.timeToFirstTokenMsSum ?? 0n) / requests
            : null,
          stageSeconds: r._sum.stageSeconds ?? 0,
        };
      }),
    };
  }

  /** Latency percentiles, volume and cost over time, for all tenants or one. */
  async metrics(query: MetricsQuery): Promise<MetricsReport> {
    const { from, to } = this.range(query);
    return {
      from: from.toISOString(),
      to: to.toISOString(),
      series: await this.repo.percentileSeries(query.granularity, from, to, query.tenantId),
    };
  }

  private range(query: { from?: string; to?: string }): { from: Date; to: Date } {
    const now = this.clock.now();
    const from = query.from
      ? new Date(query.from)
      : new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1));
    const to = query.to ? new Date(query.to) : new Date(now.getTime() + 1);
    return { from, to };
  }

  /** Totals over [from, to) (default: this calendar month, UTC) and the rollup series. */
  async report(tenantId: string, query: UsageQuery) {
    const { from, to } = this.range(query);
    const [totals, rollups] = await Promise.all([
      this.repo.totals(tenantId, from, to),
      this.repo.rollups(tenantId, query.granularity, from, to),
    ]);
    return {
      tenantId,
      from: from.toISOString(),
      to: to.toISOString(),
      totals,
      series: rollups.map((r) => ({
        bucketStart: r.bucketStart.toISOString(),
        requests: r.requests,
        failedRequests: r.failedRequests,
        promptTokens: Number(r.promptTokens),
        completionTokens: Number(r.completionTokens),
        costMicros: Number(r.costMicros),
        avgLatencyMs: r.requests ? Number(r.totalLatencyMs) / r.requests : null,
        avgTimeToFirstTokenMs: r.requests ? Number(r.timeToFirstTokenMsSum) / r.requests : null,
        stageSeconds: r.stageSeconds,
      })),
    };
  }
}
