import { Injectable } from '@nestjs/common';
import type { UsageQuery } from '@pipedec/contracts';
import { Clock } from '../infra/clock.js';
import { UsageRepository } from './usage.repository.js';

@Injectable()
export class UsageService {
  constructor(
    private readonly repo: UsageRepository,
    private readonly clock: Clock,
  ) {}

  /** Totals over [from, to) (default: this calendar month, UTC) and the rollup series. */
  async report(tenantId: string, query: UsageQuery) {
    const now = this.clock.now();
    const from = query.from
      ? new Date(query.from)
      : new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1));
    const to = query.to ? new Date(query.to) : new Date(now.getTime() + 1);
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
