// RequestsRepository's accounting against a real PostgreSQL: the outcome lands on the row
// field for field (timestamps in UTC), the hourly and daily rollups grow once, and of several
// replicas finalizing the same request at once exactly one does it.
import type { SpeculativeStats } from '@pipedec/contracts';
import { createTestDatabase, type TestDatabase } from '@pipedec/testkit';
import { parseApiConfig } from '../src/config/api-config.js';
import { Database } from '../src/infra/prisma.provider.js';
import { RequestsRepository, type Outcome } from '../src/generation/requests.repository.js';

let testDb: TestDatabase;
let db: Database;
let repo: RequestsRepository;
let tenantId: string;

beforeAll(async () => {
  testDb = await createTestDatabase();
  db = new Database(parseApiConfig({ DATABASE_URL: testDb.url }));
  repo = new RequestsRepository(db);
  const plan = await db.client.plan.create({
    data: {
      name: 'p',
      requestsPerMinute: 60,
      tokensPerMinute: 1000,
      tokensPerMonth: 100_000n,
      concurrentRequests: 2,
      maxPromptTokens: 100,
      maxOutputTokens: 100,
      priceInputPer1kMicros: 1n,
      priceOutputPer1kMicros: 1n,
    },
  });
  tenantId = (await db.client.tenant.create({ data: { name: 't', planId: plan.id } })).id;
}, 60_000);
afterAll(async () => {
  await db.onModuleDestroy();
  await testDb.drop();
});

const queuedAt = new Date('2026-11-27T10:59:59.123Z');
const hour = new Date('2026-11-27T10:00:00Z');
const day = new Date('2026-11-27T00:00:00Z');

async function admitted(): Promise<string> {
  const id = crypto.randomUUID();
  await repo.create(tenantId, {
    id,
    apiKeyId: crypto.randomUUID(),
    model: 'm',
    method: 'pipedec',
    parameters: { maxTokens: 8 },
    promptTokens: 5,
    reservedTokens: 13,
    queuedAt,
  });
  return id;
}

function jobStats(over: Partial<SpeculativeStats> = {}): SpeculativeStats {
  return {
    timesteps: 12,
    tokensPerTimestep: 0.75,
    draftedTokens: 20,
    acceptedTokens: 6,
    verifiedTokens: 8,
    hitRate: 0.75,
    stageSeconds: 0.5,
    time: { wallMs: 200, draftMs: 20, stageComputeMs: 120, transferMs: 40 },
    ...over,
  };
}

function outcome(over: Partial<Outcome> = {}): Outcome {
  return {
    status: 'succeeded',
    finishReason: 'length',
    errorCode: null,
    promptTokens: 5,
    completionTokens: 8,
    startedAt: new Date('2026-11-27T10:59:59.200Z'),
    firstTokenAt: new Date('2026-11-27T10:59:59.250Z'),
    finishedAt: new Date('2026-11-27T10:59:59.400Z'),
    timeToFirstTokenMs: 127,
    timePerOutputTokenMs: 21.5,
    totalLatencyMs: 277,
    timesteps: 12,
    hitRate: 0.75,
    stageSeconds: 0.5,
    costMicros: 14_500n,
    billedInputPer1kMicros: 1_500_000n,
    billedOutputPer1kMicros: 875_000n,
    pipelineId: 'p1',
    decoding: null,
    stats: jobStats(),
    ...over,
  };
}

describe('RequestsRepository accounting', () => {
  it('reads back what accounting needs, then writes every field of the outcome once', async () => {
    const id = await admitted();
    expect(await repo.accountingView(tenantId, id)).toEqual({
      queuedAt,
      promptTokens: 5,
      accounted: false,
    });
    expect(await repo.accountingView(crypto.randomUUID(), id)).toBeNull(); // another tenant
    const o = outcome();
    expect(await repo.finalize(tenantId, id, o, hour, day)).toBe(true);
    expect(await repo.finalize(tenantId, id, o, hour, day)).toBe(false);
    const row = await db.client.generationRequest.findUniqueOrThrow({ where: { id } });
    expect(row).toMatchObject({ ...o, accountedAt: o.finishedAt, queuedAt });
    expect((await repo.accountingView(tenantId, id))?.accounted).toBe(true);
  });

  it("pools a pipeline's recent statistics: sums first, then the ratios", async () => {
    const pd = await admitted();
    const pp = await admitted();
    await repo.finalize(tenantId, pd, outcome({ pipelineId: 'pool' }), hour, day);
    const ppStats = jobStats({
      timesteps: 28,
      tokensPerTimestep: 0.25,
      draftedTokens: 0,
      acceptedTokens: 0,
      verifiedTokens: 0,
      hitRate: null,
      time: { wallMs: 300, draftMs: 0, stageComputeMs: 100, transferMs: 150 },
    });
    await repo.finalize(
      tenantId,
      pp,
      outcome({ pipelineId: 'pool', timesteps: 28, hitRate: null, stats: ppStats }),
      hour,
      day,
    );
    const pooled = await repo.recentPipelineStats('pool', 10);
    expect(pooled).toMatchObject({
      requests: 2,
      timesteps: 40,
      // PP drafted nothing: the hit rate is the drafting request's alone, not halved.
      hitRate: 0.75,
      time: { wallMs: 500, draftMs: 20, stageComputeMs: 220, transferMs: 190 },
    });
    expect(pooled.tokensPerTimestep).toBeCloseTo((0.75 * 12 + 0.25 * 28) / 40, 9);
    expect(await repo.recentPipelineStats('none', 10)).toMatchObject({
      requests: 0,
      hitRate: null,
      time: null,
    });
  });

  it('adds each request to its hour and day once, failures counted apart', async () => {
    const before = await db.client.usageRollup.findMany({ where: { tenantId } });
    const a = await admitted();
    const b = await admitted();
    await repo.finalize(tenantId, a, outcome(), hour, day);
    await repo.finalize(
      tenantId,
      b,
      outcome({
        status: 'failed',
        errorCode: 'job_failed',
        finishReason: null,
        completionTokens: 2,
        firstTokenAt: null,
        timeToFirstTokenMs: null,
        timePerOutputTokenMs: null,
        stageSeconds: null,
        costMicros: 3n,
      }),
      hour,
      day,
    );
    const rollups = await db.client.usageRollup.findMany({ where: { tenantId } });
    for (const granularity of ['hour', 'day'] as const) {
      const was = before.find((r) => r.granularity === granularity);
      const now = rollups.find((r) => r.granularity === granularity)!;
      expect(now.bucketStart).toEqual(granularity === 'hour' ? hour : day);
      expect(now.requests - (was?.requests ?? 0)).toBe(2);
      expect(now.failedRequests - (was?.failedRequests ?? 0)).toBe(1);
      expect(now.completionTokens - (was?.completionTokens ?? 0n)).toBe(10n);
      expect(now.costMicros - (was?.costMicros ?? 0n)).toBe(14_503n);
      expect(now.timeToFirstTokenMsSum - (was?.timeToFirstTokenMsSum ?? 0n)).toBe(127n);
      expect(now.stageSeconds - (was?.stageSeconds ?? 0)).toBeCloseTo(0.5);
    }
  });

  it('of eight replicas finalizing one request at once, one accounts it', async () => {
    const id = await admitted();
    const day2 = new Date('2026-11-28T00:00:00Z');
    const hour2 = new Date('2026-11-28T10:00:00Z');
    const results = await Promise.all(
      Array.from({ length: 8 }, () => repo.finalize(tenantId, id, outcome(), hour2, day2)),
    );
    expect(results.filter(Boolean)).toHaveLength(1);
    const rollup = await db.client.usageRollup.findFirstOrThrow({
      where: { tenantId, granularity: 'day', bucketStart: day2 },
    });
    expect(rollup.requests).toBe(1);
  });
});
