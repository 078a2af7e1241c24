import { randomUUID } from 'node:crypto';
import type { GenerationJob } from '@pipedec/contracts';
import { deleteRedisPrefix } from '@pipedec/testkit';
import { ReservationService } from '../src/generation/reservation.service.js';
import { AccountingSweeper } from '../src/generation/accounting-sweeper.js';
import { FairScheduler } from '../src/generation/fair-scheduler.js';
import { RequestsRepository } from '../src/generation/requests.repository.js';
import { FakeHead, fakeOutput } from './fake-head.js';
import {
  adminLogin,
  call,
  MODEL,
  moveClock,
  startTestApi,
  type TestApi,
  waitFor,
} from './test-api.js';

let api: TestApi;
let admin: string;

beforeAll(async () => {
  // Jobs that ended a second ago with no row are recorded from the job (30 s by default).
  // A job waiting for its retry fails after 6 s without a whole pipeline (30 s by default).
  api = await startTestApi({ UNRECORDED_AFTER_S: '1', PIPELINE_WAIT_S: '6' });
  admin = await adminLogin(api);
}, 120_000);
afterAll(async () => {
  await api?.close();
});

async function tenantKey(
  name: string,
  plan = 'demo',
  limits: { concurrentRequests?: number } = {},
): Promise<{ tenantId: string; key: string }> {
  const t = await call(api, 'POST', '/admin/tenants', {
    token: admin,
    body: { name, plan, concurrentRequests: 50, requestsPerMinute: 500, ...limits },
  });
  const k = await call(api, 'POST', `/admin/tenants/${t.body.id}/keys`, {
    token: admin,
    body: { name: 'k', scopes: ['generate'] },
  });
  return { tenantId: t.body.id as string, key: k.body.secret as string };
}

/**
 * Whole sweeper passes now, instead of sleeping through its timer. During them the api's
 * clock runs UNRECORDED_AFTER_S (1 s) ahead, so jobs that have ended count as old enough to be
 * checked for a missing row: the sweeper then has checked up to the real time, never past it
 * (jobs that end later are still checked). Then the clock is real again, so later tests'
 * deadlines (PIPELINE_WAIT_S) are not shortened.
 */
async function sweeperPasses(n: number): Promise<void> {
  const restore = moveClock(api.app, 1000);
  try {
    for (let i = 0; i < n; i++) await api.app.get(AccountingSweeper).sweepNow();
  } finally {
    restore();
  }
}

/** The request's row, once it is accounted. */
function accounted(id: string) {
  return waitFor(async () => {
    const r = await api.prisma.generationRequest.findUnique({ where: { id } });
    return r?.accountedAt ? r : undefined;
  });
}

describe('fairness between tenants', () => {
  it("one tenant's burst does not starve another", async () => {
    const a = await tenantKey('bursty');
    const b = await tenantKey('quiet');
    const submit = async (key: string) =>
      (
        await call(api, 'POST', '/v1/jobs', {
          token: key,
          body: { model: MODEL, prompt: 'f', max_tokens: 4 },
        })
      ).body.id as string;
    // The burst is queued before any head runs, then the quiet tenant arrives.
    const burst: string[] = [];
    for (let i = 0; i < 12; i++) burst.push(await submit(a.key));
    const quiet: string[] = [];
    for (let i = 0; i < 3; i++) quiet.push(await submit(b.key));
    const head = new FakeHead(api.prefix, { tokenDelayMs: 5 });
    try {
      await waitFor(() => Promise.resolve(head.started.length === 15 ? true : undefined));
      const positions = quiet.map((id) => head.started.indexOf(id));
      // First come, first served would start them at 12, 13, 14.
      expect(Math.max(...positions)).toBeLessThan(10);
      expect(head.started.filter((id) => burst.includes(id))).toHaveLength(12);
    } finally {
      await head.close();
    }
  }, 60_000);
});

describe('priority by plan', () => {
  it('serves a higher plan more often when both tenants have work waiting', async () => {
    const gold = {
      name: 'gold',
      priority: 10,
      requestsPerMinute: 600,
      tokensPerMinute: 100_000,
      tokensPerMonth: 10_000_000,
      concurrentRequests: 50,
      maxPromptTokens: 1024,
      maxOutputTokens: 256,
      priceInputPer1kMicros: 1000,
      priceOutputPer1kMicros: 3000,
    };
    expect((await call(api, 'POST', '/admin/plans', { token: admin, body: gold })).status).toBe(
      201,
    );
    const low = await tenantKey('low');
    const high = await tenantKey('high', 'gold');
    const submit = async (key: string) =>
      (
        await call(api, 'POST', '/v1/jobs', {
          token: key,
          body: { model: MODEL, prompt: 'p', max_tokens: 2 },
        })
      ).body.id as string;
    const lows: string[] = [];
    const highs: string[] = [];
    for (let i = 0; i < 8; i++) lows.push(await submit(low.key));
    for (let i = 0; i < 8; i++) highs.push(await submit(high.key));
    const head = new FakeHead(api.prefix, { tokenDelayMs: 2 });
    try {
      await waitFor(() => Promise.resolve(head.started.length === 16 ? true : undefined));
      const mean = (ids: string[]) =>
        ids.reduce((s, id) => s + head.started.indexOf(id), 0) / ids.length;
      // Submitted last, the gold tenant's jobs still run earlier on average.
      expect(mean(highs)).toBeLessThan(mean(lows));
    } finally {
      await head.close();
    }
  }, 90_000);
});

describe('accounting exactly once', () => {
  it('refuses a request whose record cannot be written, and takes its job back', async () => {
    // No head runs: a job that got queued stays where the admission left it.
    const { tenantId, key } = await tenantKey('unrecorded');
    // PostgreSQL refuses this tenant's request rows, as it would when full or failing.
    await api.prisma.$executeRawUnsafe(
      `ALTER TABLE "GenerationRequest" ADD CONSTRAINT "refuse_unrecorded" CHECK ("tenantId" <> '${tenantId}'::uuid)`,
    );
    try {
      const res = await call(api, 'POST', '/v1/jobs', {
        token: key,
        body: { model: MODEL, prompt: 'never recorded', max_tokens: 5 },
      });
      expect(res.status).toBe(500);
    } finally {
      await api.prisma.$executeRawUnsafe(
        `ALTER TABLE "GenerationRequest" DROP CONSTRAINT "refuse_unrecorded"`,
      );
    }
    const queue = api.app.get(FairScheduler).queue;
    const jobs = await queue.getJobs(['waiting', 'prioritized', 'delayed', 'active']);
    expect(jobs.filter((j) => (j.data as GenerationJob).tenantId === tenantId)).toEqual([]);
    expect(await api.redis.llen(`${api.prefix}fair:t:${tenantId}`)).toBe(0);
    // The reservation is given back: no slot held, nothing counted against the month.
    expect(Number(await api.redis.get(`${api.prefix}quota:${tenantId}:concurrency`))).toBe(0);
    const month = await api.redis.keys(`${api.prefix}quota:${tenantId}:month:*`);
    expect(await api.redis.mget(...month)).toEqual(month.map(() => '0'));
  });

  it('records a retried request once, with the tokens the client saw', async () => {
    const head = new FakeHead(api.prefix, { failFirstAttemptAfter: 3, tokenDelayMs: 2 });
    try {
      const { tenantId, key } = await tenantKey('retried');
      const res = await call(api, 'POST', '/v1/completions', {
        token: key,
        body: { model: MODEL, prompt: 'retry', max_tokens: 8, seed: 11 },
      });
      expect(res.status).toBe(200);
      const choice = (res.body.choices as { text: string }[])[0];
      expect(choice.text).toBe(fakeOutput(11, 8));
      const id = (res.body.id as string).replace(/^cmpl-/, '');
      const stream = await api.redis.xrange(`${api.prefix}req:${id}:events`, '-', '+');
      expect(stream.filter(([, f]) => f[1].includes('"started"'))).toHaveLength(2);

      await sweeperPasses(2); // the sweeper passes over it too
      const rows = await api.prisma.generationRequest.findMany({ where: { tenantId } });
      expect(rows).toHaveLength(1);
      expect(rows[0]).toMatchObject({ status: 'succeeded', completionTokens: 8 });
      const rollups = await api.prisma.usageRollup.findMany({ where: { tenantId } });
      expect(
        rollups.map((r) => [r.granularity, r.requests, Number(r.completionTokens)]).sort(),
      ).toEqual([
        ['day', 1, 8],
        ['hour', 1, 8],
      ]);
    } finally {
      await head.close();
    }
  }, 90_000);

  it('bills the tokens delivered when a client cancels a job waiting for its retry', async () => {
    // The first attempt streams 4 tokens and fails on a broken pipeline; the retry waits in
    // the queue; the client gives up and cancels (as a dropped SSE stream does). Before, the
    // cancel ended it with a zero usage record: 0 tokens billed for 4 delivered.
    const head = new FakeHead(api.prefix, {
      failFirstAttemptAfter: 4,
      pauseAfterFailure: true,
      tokenDelayMs: 2,
    });
    try {
      const { key } = await tenantKey('cancel-waiting-retry');
      const sub = await call(api, 'POST', '/v1/jobs', {
        token: key,
        body: { model: MODEL, prompt: 'broken', max_tokens: 20, seed: 5 },
      });
      const id = sub.body.id as string;
      await waitFor(async () => {
        const events = await api.redis.xrange(`${api.prefix}req:${id}:events`, '-', '+');
        return events.some(([, f]) => f[1].includes('"retryable":true')) ? true : undefined;
      });
      const cancel = await call(api, 'POST', `/v1/jobs/${id}/cancel`, { token: key });
      expect(cancel.body).toMatchObject({ status: 'cancelled' });
      const row = await accounted(id);
      expect(row).toMatchObject({ status: 'cancelled', completionTokens: 4 });
      expect(row.promptTokens).toBeGreaterThan(0);
      const status = await call(api, 'GET', `/v1/jobs/${id}`, { token: key });
      expect(status.body.output).toBe(fakeOutput(5, 4));
      expect(status.body.usage).toMatchObject({ completion_tokens: 4 });
    } finally {
      await head.close();
    }
  }, 90_000);

  it('keeps a streaming client informed while its job waits for a retry on a broken pipeline', async () => {
    // Before, the stream went silent until the client gave up (179 s in #18).
    const head = new FakeHead(api.prefix, {
      failFirstAttemptAfter: 2,
      pauseAfterFailure: true,
      tokenDelayMs: 2,
    });
    const abort = new AbortController();
    try {
      const { key } = await tenantKey('keepalive');
      const res = await fetch(`${api.url}/v1/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: MODEL, prompt: 'k', max_tokens: 20, stream: true }),
        signal: abort.signal,
      });
      const reader = (res.body as ReadableStream<Uint8Array>).getReader();
      const decoder = new TextDecoder();
      let text = '';
      let failedAt = 0;
      const heard: number[] = [];
      while (heard.length < 2) {
        const { value, done } = await reader.read();
        if (done) break;
        text += decoder.decode(value);
        if (!failedAt && text.includes(': STAGE_LOST: retrying')) failedAt = Date.now();
        if (failedAt && decoder.decode(value).includes(': keep-alive')) {
          heard.push(Date.now());
        }
      }
      expect(failedAt).toBeGreaterThan(0);
      expect(heard).toHaveLength(2);
      // Something reaches the client within 5 s of the failure, and every 5 s after.
      expect(heard[0] - failedAt).toBeLessThan(5000);
      expect(heard[1] - heard[0]).toBeLessThan(5000);
    } finally {
      abort.abort();
      await head.close();
    }
  }, 90_000);

  it('fails a job no whole pipeline takes within PIPELINE_WAIT_S, billing what was delivered', async () => {
    // Before, the retry waited in the queue for ever and the request stayed open.
    const head = new FakeHead(api.prefix, {
      failFirstAttemptAfter: 3,
      pauseAfterFailure: true,
      tokenDelayMs: 2,
    });
    try {
      const { key } = await tenantKey('no-pipeline');
      const res = await call(api, 'POST', '/v1/completions', {
        token: key,
        body: { model: MODEL, prompt: 'wait', max_tokens: 20, seed: 3 },
      });
      expect(res.status).toBe(502);
      expect(res.body).toMatchObject({ error: { code: 'no_pipeline_available' } });
      const id = res.headers.get('x-request-id')!;
      const row = await accounted(id);
      expect(row).toMatchObject({
        status: 'failed',
        errorCode: 'no_pipeline_available',
        completionTokens: 3,
      });
      expect(row.finishedAt!.getTime() - row.queuedAt.getTime()).toBeLessThan(6000 + 5000);
    } finally {
      await head.close();
    }
  }, 90_000);

  it('records a job that failed for good once, as failed, billing what was delivered', async () => {
    const head = new FakeHead(api.prefix, { crashAfter: 2 });
    try {
      const { tenantId, key } = await tenantKey('failing');
      const sub = await call(api, 'POST', '/v1/jobs', {
        token: key,
        body: { model: MODEL, prompt: 'lost', max_tokens: 5 },
      });
      const id = sub.body.id as string;
      const row = await accounted(id);
      expect(row).toMatchObject({ status: 'failed', errorCode: 'job_failed', completionTokens: 2 });
      expect(row.promptTokens).toBeGreaterThan(0);
      const status = await call(api, 'GET', `/v1/jobs/${id}`, { token: key });
      expect(status.body).toMatchObject({ status: 'failed', error: 'job_failed' });
      const rollup = await api.prisma.usageRollup.findFirstOrThrow({
        where: { tenantId, granularity: 'day' },
      });
      expect(rollup.failedRequests).toBe(1);
      expect(rollup.requests).toBe(1);
    } finally {
      await head.close();
    }
  }, 90_000);

  it('accounts a request whose job Redis lost as failed, once, and gives its slot back', async () => {
    // No head runs: the job waits in BullMQ until Redis loses it.
    const { tenantId, key } = await tenantKey('lost-job', 'demo', { concurrentRequests: 1 });
    const body = { model: MODEL, prompt: 'gone', max_tokens: 5 };
    const sub = await call(api, 'POST', '/v1/jobs', { token: key, body });
    expect(sub.status).toBe(202);
    const id = sub.body.id as string;
    expect((await call(api, 'POST', '/v1/jobs', { token: key, body })).status).toBe(429);
    // What a restart of a Redis without persistence does to it: the job is gone.
    const queue = api.app.get(FairScheduler).queue;
    const job = await waitFor(async () => (await queue.getJob(id)) ?? undefined);
    await job.remove();

    const row = await accounted(id);
    // It never started: nothing is billed.
    expect(row).toMatchObject({
      status: 'failed',
      errorCode: 'job_lost',
      promptTokens: 0,
      completionTokens: 0,
      costMicros: 0n,
    });
    const status = await call(api, 'GET', `/v1/jobs/${id}`, { token: key });
    expect(status.body).toMatchObject({ status: 'failed', error: 'job_lost' });
    // The slot it held is free again.
    const next = await call(api, 'POST', '/v1/jobs', { token: key, body });
    expect(next.status).toBe(202);
    await call(api, 'DELETE', `/v1/jobs/${next.body.id as string}`, { token: key });
    await sweeperPasses(2); // more sweeper passes: still accounted once
    const rollup = await api.prisma.usageRollup.findFirstOrThrow({
      where: { tenantId, granularity: 'day' },
    });
    expect(rollup).toMatchObject({ requests: 2, failedRequests: 1 });
  }, 90_000);

  it('accounts newer requests while more than a page of older ones still wait', async () => {
    // 201 requests of one tenant, an hour old, still waiting in the fair lists: more than
    // the sweeper reads in one pass.
    const { tenantId: backlog } = await tenantKey('backlog');
    const waiting = Array.from({ length: 201 }, () => randomUUID());
    await api.prisma.generationRequest.createMany({
      data: waiting.map((id) => ({
        id,
        tenantId: backlog,
        model: MODEL,
        method: 'pipedec' as const,
        parameters: {},
        promptTokens: 1,
        reservedTokens: 2,
        queuedAt: new Date(Date.now() - 3_600_000),
      })),
    });
    const jobsKey = `${api.prefix}fair:jobs`;
    await api.redis.hset(jobsKey, Object.fromEntries(waiting.map((id) => [id, '{}'])));
    const head = new FakeHead(api.prefix, { tokenDelayMs: 1 });
    try {
      // A job nobody streams: only the sweeper accounts it.
      const { key } = await tenantKey('behind-backlog');
      const sub = await call(api, 'POST', '/v1/jobs', {
        token: key,
        body: { model: MODEL, prompt: 'behind', max_tokens: 3 },
      });
      const id = sub.body.id as string;
      const row = await accounted(id);
      expect(row).toMatchObject({ status: 'succeeded', completionTokens: 3 });
      // The waiting ones are left alone.
      const open = await api.prisma.generationRequest.count({
        where: { tenantId: backlog, accountedAt: null },
      });
      expect(open).toBe(201);
    } finally {
      await head.close();
      await api.redis.hdel(jobsKey, ...waiting);
      await api.prisma.generationRequest.deleteMany({ where: { tenantId: backlog } });
    }
  }, 90_000);

  it('after Redis loses every key (a restart without persistence), accounts what it lost and restores the quotas from PostgreSQL', async () => {
    const { tenantId, key } = await tenantKey('redis-restart', 'demo', { concurrentRequests: 2 });
    const body = { model: MODEL, prompt: 'restart', max_tokens: 4 };
    // One request finishes and is billed; two then wait in the queue (no head runs).
    const head = new FakeHead(api.prefix, { tokenDelayMs: 1 });
    try {
      expect((await call(api, 'POST', '/v1/completions', { token: key, body })).status).toBe(200);
    } finally {
      await head.close();
    }
    const waiting: string[] = [];
    for (let i = 0; i < 2; i++) {
      const sub = await call(api, 'POST', '/v1/jobs', { token: key, body });
      expect(sub.status).toBe(202);
      waiting.push(sub.body.id as string);
    }
    expect((await call(api, 'POST', '/v1/jobs', { token: key, body })).status).toBe(429);

    await deleteRedisPrefix(api.redis, api.prefix);

    const rows = await waitFor(async () => {
      const r = await api.prisma.generationRequest.findMany({ where: { id: { in: waiting } } });
      return r.every((x) => x.accountedAt) ? r : undefined;
    });
    expect(rows.map((r) => [r.status, r.errorCode, r.promptTokens, r.completionTokens])).toEqual([
      ['failed', 'job_lost', 0, 0],
      ['failed', 'job_lost', 0, 0],
    ]);
    // Reconciliation sets the month's usage from PostgreSQL again: only the billed request.
    await api.app.get(ReservationService).reconcileAll();
    const billed = await api.prisma.generationRequest.findFirstOrThrow({
      where: { tenantId, status: 'succeeded' },
    });
    const month = await api.redis.keys(`${api.prefix}quota:${tenantId}:month:*`);
    expect(month).toHaveLength(1);
    expect(Number(await api.redis.get(month[0]))).toBe(
      billed.promptTokens + billed.completionTokens,
    );
    // Both slots are free.
    for (let i = 0; i < 2; i++) {
      const sub = await call(api, 'POST', '/v1/jobs', { token: key, body });
      expect(sub.status).toBe(202);
      await call(api, 'DELETE', `/v1/jobs/${sub.body.id as string}`, { token: key });
    }
  }, 90_000);

  it('records and bills a job whose replica died between queueing it and recording it', async () => {
    const { tenantId, key } = await tenantKey('unrecorded-crash', 'demo', {
      concurrentRequests: 1,
    });
    // The replica dies after the job is queued, before its row is written: the insert never
    // returns, and the client gives up on the request.
    const repo = api.app.get(RequestsRepository);
    const create = repo.create.bind(repo);
    repo.create = () => new Promise<void>(() => undefined);
    const client = new AbortController();
    const head = new FakeHead(api.prefix, { tokenDelayMs: 1 });
    let id: string;
    try {
      void fetch(`${api.url}/v1/jobs`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: MODEL, prompt: 'crash', max_tokens: 3, seed: 5 }),
        signal: client.signal,
      }).catch(() => undefined);
      id = await waitFor(() => head.started.find(Boolean));
      const queue = api.app.get(FairScheduler).queue;
      await waitFor(async () => (await queue.getJob(id))?.finishedOn);
    } finally {
      client.abort();
      repo.create = create;
      await head.close();
    }
    const row = await accounted(id);
    expect(row).toMatchObject({
      tenantId,
      apiKeyId: null,
      status: 'succeeded',
      completionTokens: 3,
    });
    expect(row.promptTokens).toBeGreaterThan(0);
    expect(Number(row.costMicros)).toBeGreaterThan(0);
    // Its slot is free again, and later looks do not bill it twice.
    const next = await call(api, 'POST', '/v1/jobs', {
      token: key,
      body: { model: MODEL, prompt: 'after', max_tokens: 2 },
    });
    expect(next.status).toBe(202);
    await call(api, 'DELETE', `/v1/jobs/${next.body.id as string}`, { token: key });
    await sweeperPasses(2);
    const rollup = await api.prisma.usageRollup.findFirstOrThrow({
      where: { tenantId, granularity: 'day' },
    });
    expect(rollup.requests).toBe(2);
  }, 90_000);
});
