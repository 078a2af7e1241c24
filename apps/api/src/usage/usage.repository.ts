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
}
