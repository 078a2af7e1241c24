import { Injectable } from '@nestjs/common';
import { Prisma, type RollupGranularity } from '@pipedec/db';
import { Database } from '../infra/prisma.provider.js';

/** Usage reads. The tenant id is a required argument of every query. */
@Injectable()
export class UsageRepository {
  constructor(private readonly db: Database) {}

  async totals(tenantId: string, from: Date, to: Date) {
    const where = { tenantId, accountedAt: { not: null }, queuedAt: { gte: from, lt: to } };
    const [agg, byPrice] = await Promise.all([
      this.db.client.generationRequest.aggregate({
        where,
        _count: { _all: true },
        _sum: { promptTokens: true, completionTokens: true, costMicros: true },
        _avg: { totalLatencyMs: true, timeToFirstTokenMs: true, timePerOutputTokenMs: true },
      }),
      this.db.client.generationRequest.groupBy({
        by: ['billedInputPer1kMicros', 'billedOutputPer1kMicros'],
        where,
        _count: { _all: true },
        _sum: { promptTokens: true, completionTokens: true, costMicros: true },
        _min: { queuedAt: true },
        _max: { queuedAt: true },
      }),
    ]);
    return {
      requests: agg._count._all,
      promptTokens: agg._sum.promptTokens ?? 0,
      completionTokens: agg._sum.completionTokens ?? 0,
      costMicros: Number(agg._sum.costMicros ?? 0n),
      avgTotalLatencyMs: agg._avg.totalLatencyMs,
      avgTimeToFirstTokenMs: agg._avg.timeToFirstTokenMs,
      avgTimePerOutputTokenMs: agg._avg.timePerOutputTokenMs,
      /** One segment per pair of prices the requests were billed at, oldest first. */
      priceSegments: byPrice
        .map((g) => ({
          inputPer1kMicros: Number(g.billedInputPer1kMicros),
          outputPer1kMicros: Number(g.billedOutputPer1kMicros),
          firstRequestAt: g._min.queuedAt!.toISOString(),
          lastRequestAt: g._max.queuedAt!.toISOString(),
          requests: g._count._all,
          promptTokens: g._sum.promptTokens ?? 0,
          completionTokens: g._sum.completionTokens ?? 0,
          costMicros: Number(g._sum.costMicros ?? 0n),
        }))
        .sort((a, b) => a.firstRequestAt.localeCompare(b.firstRequestAt)),
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

  /**
   * Latency percentiles and totals per bucket, from the requests themselves (rollups keep
   * sums, not distributions). All tenants, or one when `tenantId` is given.
   */
  async percentileSeries(
    granularity: RollupGranularity | 'minute',
    from: Date,
    to: Date,
    tenantId?: string,
  ) {
    const tenant = tenantId ? Prisma.sql`AND "tenantId" = ${tenantId}::uuid` : Prisma.empty;
    const rows = await this.db.client.$queryRaw<
      {
        bucket: Date;
        requests: bigint;
        failed: bigint;
        prompt: bigint | null;
        completion: bigint | null;
        cost: Prisma.Decimal | bigint | null;
        ttft50: number | null;
        ttft95: number | null;
        tpot50: number | null;
        tpot95: number | null;
      }[]
    >`
      SELECT date_trunc(${granularity}, "finishedAt") AS bucket,
             count(*) AS requests,
             count(*) FILTER (WHERE status = 'failed') AS failed,
             sum("promptTokens")::bigint AS prompt,
             sum("completionTokens")::bigint AS completion,
             sum("costMicros")::bigint AS cost,
             percentile_cont(0.5) WITHIN GROUP (ORDER BY "timeToFirstTokenMs") AS ttft50,
             percentile_cont(0.95) WITHIN GROUP (ORDER BY "timeToFirstTokenMs") AS ttft95,
             percentile_cont(0.5) WITHIN GROUP (ORDER BY "timePerOutputTokenMs") AS tpot50,
             percentile_cont(0.95) WITHIN GROUP (ORDER BY "timePerOutputTokenMs") AS tpot95
        FROM "GenerationRequest"
       WHERE "accountedAt" IS NOT NULL AND "finishedAt" >= ${from} AND "finishedAt" < ${to} ${tenant}
       GROUP BY 1
       ORDER BY 1`;
    return rows.map((r) => ({
      bucketStart: new Date(r.bucket).toISOString(),
      requests: Number(r.requests),
      failedRequests: Number(r.failed),
      promptTokens: Number(r.prompt ?? 0),
      completionTokens: Number(r.completion ?? 0),
      costMicros: Number(r.cost ?? 0),
      ttftP50Ms: r.ttft50,
      ttftP95Ms: r.ttft95,
      tpotP50Ms: r.tpot50,
      tpotP95Ms: r.tpot95,
    }));
  }
}
