import { Injectable } from '@nestjs/common';
import type { RollupGranularity } from '@pipedec/db';
import { Database } from '../infra/prisma.provider.js';

/** Usage reads. The tenant id is a required argument of every query. */
@Injectable()
export class UsageRepository {
  constructor(private readonly db: Database) {}

  async totals(tenantId: string, from: Date, to: Date) {
    const agg = await this.db.client.generationRequest.aggregate({
      where: { tenantId, accountedAt: { not: null }, queuedAt: { gte: from, lt: to } },
      _count: { _all: true },
      _sum: { promptTokens: true, completionTokens: true, costMicros: true },
      _avg: { totalLatencyMs: true, timeToFirstTokenMs: true, timePerOutputTokenMs: true },
    });
    return {
      requests: agg._count._all,
      promptTokens: agg._sum.promptTokens ?? 0,
      completionTokens: agg._sum.completionTokens ?? 0,
      costMicros: Number(agg._sum.costMicros ?? 0n),
      avgTotalLatencyMs: agg._avg.totalLatencyMs,
      avgTimeToFirstTokenMs: agg._avg.timeToFirstTokenMs,
      avgTimePerOutputTokenMs: agg._avg.timePerOutputTokenMs,
    };
  }

  rollups(tenantId: string, granularity: RollupGranularity, from: Date, to: Date) {
    return this.db.client.usageRollup.findMany({
      where: { tenantId, granularity, bucketStart: { gte: from, lt: to } },
      orderBy: { bucketStart: 'asc' },
    });
  }

  /** Admin overview, deliberately across tenants: totals per tenant over [from, to). */
  async totalsPerTenantAcrossTenants(from: Date, to: Date) {
    const rows = await this.db.client.generationRequest.groupBy({
      by: ['tenantId'],
      where: { accountedAt: { not: null }, queuedAt: { gte: from, lt: to } },
      _count: { _all: true },
      _sum: { promptTokens: true, completionTokens: true, costMicros: true },
      _avg: { totalLatencyMs: true, timeToFirstTokenMs: true, timePerOutputTokenMs: true },
    });
    return rows.map((r) => ({
      tenantId: r.tenantId,
      requests: r._count._all,
      promptTokens: r._sum.promptTokens ?? 0,
      completionTokens: r._sum.completionTokens ?? 0,
      costMicros: Number(r._sum.costMicros ?? 0n),
      avgTotalLatencyMs: r._avg.totalLatencyMs,
      avgTimeToFirstTokenMs: r._avg.timeToFirstTokenMs,
      avgTimePerOutputTokenMs: r._avg.timePerOutputTokenMs,
    }));
  }

  /** Admin overview, deliberately across tenants: the rollup series summed over tenants. */
  seriesAcrossTenants(granularity: RollupGranularity, from: Date, to: Date) {
    return this.db.client.usageRollup.groupBy({
      by: ['bucketStart'],
      where: { granularity, bucketStart: { gte: from, lt: to } },
      _sum: {
        requests: true,
        failedRequests: true,
        promptTokens: true,
        completionTokens: true,
        costMicros: true,
        totalLatencyMs: true,
        timeToFirstTokenMsSum: true,
        stageSeconds: true,
      },
      orderBy: { bucketStart: 'asc' },
    });
  }
}
