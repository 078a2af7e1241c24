import { Injectable } from '@nestjs/common';
import type { DecodingMethod, Prisma, RequestStatus } from '@pipedec/db';
import { Database } from '../infra/prisma.provider.js';

export interface NewRequest {
  id: string;
  apiKeyId: string;
  model: string;
  method: DecodingMethod;
  parameters: Prisma.InputJsonObject;
  promptTokens: number;
  reservedTokens: number;
  queuedAt: Date;
}

export interface Outcome {
  status: RequestStatus;
  finishReason: string | null;
  errorCode: string | null;
  promptTokens: number;
  completionTokens: number;
  startedAt: Date | null;
  firstTokenAt: Date | null;
  finishedAt: Date;
  timeToFirstTokenMs: number | null;
  timePerOutputTokenMs: number | null;
  totalLatencyMs: number;
  timesteps: number | null;
  hitRate: number | null;
  stageSeconds: number | null;
  costMicros: bigint;
  pipelineId: string | null;
}

/** Generation requests. Every method takes the tenant id; no query crosses tenants. */
@Injectable()
export class RequestsRepository {
  constructor(private readonly db: Database) {}

  /**
   * Records an admitted request. Plain pg, no Prisma: it runs on every admission, while the
   * head picks the job up on the same cores.
   */
  async create(tenantId: string, r: NewRequest): Promise<void> {
    await this.db.pool.query(
      `INSERT INTO "GenerationRequest"
         ("id", "tenantId", "apiKeyId", "status", "model", "method", "parameters",
          "promptTokens", "reservedTokens", "queuedAt")
       VALUES ($1::uuid, $2::uuid, $3::uuid, 'queued', $4, $5::"DecodingMethod", $6::jsonb,
               $7, $8, ($9::timestamptz AT TIME ZONE 'UTC'))`,
      [
        r.id,
        tenantId,
        r.apiKeyId,
        r.model,
        r.method,
        JSON.stringify(r.parameters),
        r.promptTokens,
        r.reservedTokens,
        r.queuedAt.toISOString(),
      ],
    );
  }

  find(tenantId: string, requestId: string) {
    return this.db.client.generationRequest.findFirst({ where: { id: requestId, tenantId } });
  }

  /** Whether the tenant has this request (a stream subscription, just after admission). */
  async exists(tenantId: string, requestId: string): Promise<boolean> {
    const { rowCount } = await this.db.pool.query(
      `SELECT 1 FROM "GenerationRequest" WHERE "id" = $1::uuid AND "tenantId" = $2::uuid`,
      [requestId, tenantId],
    );
    return rowCount === 1;
  }

  /** Requests admitted but not accounted yet (the sweeper's work list). */
  unaccounted(olderThan: Date, limit: number) {
    return this.db.client.generationRequest.findMany({
      where: { accountedAt: null, queuedAt: { lt: olderThan } },
      select: { id: true, tenantId: true },
      take: limit,
      orderBy: { queuedAt: 'asc' },
    });
  }

  /**
   * Writes the outcome and the hourly and daily rollups in one transaction, only if the
   * request was not accounted yet. Returns false when another caller (a replica, a retry)
   * got there first: accounting happens exactly once.
   */
  async finalize(
    tenantId: string,
    requestId: string,
    o: Outcome,
    hour: Date,
    day: Date,
  ): Promise<boolean> {
    return this.db.client.$transaction(async (tx) => {
      const { count } = await tx.generationRequest.updateMany({
        where: { id: requestId, tenantId, accountedAt: null },
        data: { ...o, accountedAt: o.finishedAt },
      });
      if (count === 0) return false;
      for (const [granularity, bucketStart] of [
        ['hour', hour],
        ['day', day],
      ] as const) {
        const inc = {
          requests: { increment: 1 },
          failedRequests: { increment: o.status === 'failed' ? 1 : 0 },
          promptTokens: { increment: BigInt(o.promptTokens) },
          completionTokens: { increment: BigInt(o.completionTokens) },
          costMicros: { increment: o.costMicros },
          totalLatencyMs: { increment: BigInt(o.totalLatencyMs) },
          timeToFirstTokenMsSum: { increment: BigInt(o.timeToFirstTokenMs ?? 0) },
          stageSeconds: { increment: o.stageSeconds ?? 0 },
        };
        await tx.usageRollup.upsert({
          where: { tenantId_granularity_bucketStart: { tenantId, granularity, bucketStart } },
          create: {
            tenantId,
            granularity,
            bucketStart,
            requests: 1,
            failedRequests: o.status === 'failed' ? 1 : 0,
            promptTokens: BigInt(o.promptTokens),
            completionTokens: BigInt(o.completionTokens),
            costMicros: o.costMicros,
            totalLatencyMs: BigInt(o.totalLatencyMs),
            timeToFirstTokenMsSum: BigInt(o.timeToFirstTokenMs ?? 0),
            stageSeconds: o.stageSeconds ?? 0,
          },
          update: inc,
        });
      }
      return true;
    });
  }

  /** For quota reconciliation: tokens of this month's finished requests and open reservations. */
  async monthUsage(tenantId: string, since: Date) {
    const [done, open] = await Promise.all([
      this.db.client.generationRequest.aggregate({
        where: { tenantId, accountedAt: { not: null, gte: since } },
        _sum: { promptTokens: true, completionTokens: true },
      }),
      this.db.client.generationRequest.aggregate({
        where: { tenantId, accountedAt: null },
        _sum: { reservedTokens: true },
        _count: { _all: true },
      }),
    ]);
    return {
      used:
        (done._sum.promptTokens ?? 0) +
        (done._sum.completionTokens ?? 0) +
        (open._sum.reservedTokens ?? 0),
      inFlight: open._count._all,
    };
  }

  /** Pipeline view, deliberately across tenants: speculative statistics of recent requests. */
  async recentPipelineStats(pipelineId: string, limit: number) {
    const rows = await this.db.client.generationRequest.findMany({
      where: { pipelineId, accountedAt: { not: null }, timesteps: { gt: 0 } },
      orderBy: { finishedAt: 'desc' },
      take: limit,
      select: { hitRate: true, timesteps: true, completionTokens: true },
    });
    if (rows.length === 0) return { hitRate: null, tokensPerTimestep: null };
    const steps = rows.reduce((s, r) => s + (r.timesteps ?? 0), 0);
    const tokens = rows.reduce((s, r) => s + r.completionTokens, 0);
    const rates = rows.filter((r) => r.hitRate !== null).map((r) => r.hitRate!);
    return {
      hitRate: rates.length ? rates.reduce((a, b) => a + b, 0) / rates.length : null,
      tokensPerTimestep: steps > 0 ? tokens / steps : null,
    };
  }

  tenantIds() {
    return this.db.client.tenant.findMany({ select: { id: true } });
  }
}
