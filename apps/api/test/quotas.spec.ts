import { ReservationService } from '../src/generation/reservation.service.js';
import { Clock } from '../src/infra/clock.js';
import { FakeHead, fakeOutput } from './fake-head.js';
import {
  adminLogin,
  call,
  errorOf,
  MODEL,
  startTestApi,
  type TestApi,
  waitFor,
} from './test-api.js';

let api: TestApi;
let head: FakeHead;
let admin: string;

beforeAll(async () => {
  api = await startTestApi();
  head = new FakeHead(api.prefix, { concurrency: 4, tokenDelayMs: 1 });
  admin = await adminLogin(api);
}, 120_000);
afterAll(async () => {
  await head?.close();
  await api?.close();
});

async function tenantWithKey(name: string, overrides: Record<string, number>) {
  const t = await call(api, 'POST', '/admin/tenants', {
    token: admin,
    body: { name, plan: 'demo', ...overrides },
  });
  expect(t.status).toBe(201);
  const k = await call(api, 'POST', `/admin/tenants/${t.body.id}/keys`, {
    token: admin,
    body: { name: 'k', scopes: ['generate', 'read-usage'] },
  });
  return { tenantId: t.body.id as string, key: k.body.secret as string };
}

async function monthTokensInDb(tenantId: string): Promise<number> {
  const agg = await api.prisma.generationRequest.aggregate({
    where: { tenantId, accountedAt: { not: null } },
    _sum: { promptTokens: true, completionTokens: true },
  });
  return (agg._sum.promptTokens ?? 0) + (agg._sum.completionTokens ?? 0);
}

async function monthCounter(tenantId: string): Promise<number> {
  const keys = await api.redis.keys(`${api.prefix}quota:${tenantId}:month:*`);
  expect(keys).toHaveLength(1);
  return Number(await api.redis.get(keys[0]));
}

describe('token quota under concurrency', () => {
  it('50 concurrent requests never exceed a small monthly token quota', async () => {
    const quota = 300;
    const { tenantId, key } = await tenantWithKey('burst', {
      tokensPerMonth: quota,
      tokensPerMinute: 100_000,
      requestsPerMinute: 1000,
      concurrentRequests: 100,
    });
    const body = { model: MODEL, prompt: 'quota', max_tokens: 20, seed: 1 };
    const replies = await Promise.all(
      Array.from({ length: 50 }, () => call(api, 'POST', '/v1/completions', { token: key, body })),
    );
    const ok = replies.filter((r) => r.status === 200);
    const limited = replies.filter((r) => r.status === 429);
    expect(ok.length + limited.length).toBe(50);
    expect(ok.length).toBeGreaterThan(0);
    const used = ok.reduce(
      (s, r) => s + (r.body.usage as { total_tokens: number }).total_tokens,
      0,
    );
    expect(used).toBeLessThanOrEqual(quota);
    for (const r of limited) {
      expect(errorOf(r)).toMatchObject({
        type: 'rate_limit_error',
        code: 'monthly_quota_exceeded',
      });
      expect(Number(r.headers.get('retry-after'))).toBeGreaterThan(0);
      expect(r.headers.get('x-ratelimit-limit-tokens-month')).toBe(String(quota));
    }
    expect(ok[0].headers.get('x-ratelimit-remaining-requests')).not.toBeNull();
    // The record of truth agrees, and the counter was settled to actual use.
    expect(await monthTokensInDb(tenantId)).toBe(used);
    expect(await monthCounter(tenantId)).toBe(used);
  }, 60_000);

  it('settles a reservation to actual use when a request stops early', async () => {
    const { tenantId, key } = await tenantWithKey('early-stop', {});
    const res = await call(api, 'POST', '/v1/completions', {
      token: key,
      body: { model: MODEL, prompt: 'stop early', max_tokens: 50, seed: 0, stop: 'h' },
    });
    expect(res.status).toBe(200);
    const usage = res.body.usage as { total_tokens: number; completion_tokens: number };
    expect(usage.completion_tokens).toBeLessThan(50);
    expect(await monthCounter(tenantId)).toBe(usage.total_tokens);
  });

  it('limits concurrent requests and requests per minute with 429 + Retry-After', async () => {
    const { key } = await tenantWithKey('rpm', { requestsPerMinute: 3, concurrentRequests: 100 });
    const body = { model: MODEL, prompt: 'r', max_tokens: 1 };
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) {
      const r = await call(api, 'POST', '/v1/completions', { token: key, body });
      statuses.push(r.status);
      if (r.status === 429) expect(errorOf(r).code).toBe('rate_limit_exceeded');
    }
    expect(statuses).toEqual([200, 200, 200, 429]);

    const conc = await tenantWithKey('conc', { concurrentRequests: 1 });
    const slow = call(api, 'POST', '/v1/completions', {
      token: conc.key,
      body: { model: MODEL, prompt: 's', max_tokens: 150 },
    });
    // The first request holds the tenant's one slot once the head has started it.
    const first = await waitFor(() =>
      api.prisma.generationRequest
        .findFirst({ where: { tenantId: conc.tenantId } })
        .then((r) => r ?? undefined),
    );
    await waitFor(() => (head.started.includes(first.id) ? true : undefined));
    const second = await call(api, 'POST', '/v1/completions', { token: conc.key, body });
    expect(second.status).toBe(429);
    expect(errorOf(second).code).toBe('concurrency_limit_exceeded');
    expect(second.headers.get('retry-after')).toBe('1');
    expect((await slow).status).toBe(200);
    // The slot is free again once the first request ended.
    expect((await call(api, 'POST', '/v1/completions', { token: conc.key, body })).status).toBe(
      200,
    );
  }, 90_000);

  it('counts requests per minute over any 60 s: across a minute boundary 5/min admits 5, not 10', async () => {
    const { key } = await tenantWithKey('sliding', {
      requestsPerMinute: 5,
      tokensPerMinute: 100_000,
      concurrentRequests: 100,
    });
    const body = { model: MODEL, prompt: 'w', max_tokens: 1 };
    // The api's clock is held at each request's time; the minute boundary is the last one
    // passed, so the clock never runs ahead of real time (the sweeper would see stale jobs).
    const b = Math.floor(Date.now() / 60_000) * 60_000;
    const clock = api.app.get(Clock);
    let now = b;
    clock.nowMs = () => now;
    clock.now = () => new Date(now);
    const at = (ms: number, n = 1) => Array.from({ length: n }, () => b + ms);
    const schedule = [
      ...at(-500, 5), // the first window's end
      ...at(500, 5), // 1 s later, in the next minute: a fixed window admitted all five
      ...at(30_000),
      ...at(59_499), // 60 s after the first five less 1 ms: still full
      ...at(59_500, 5), // the first five left the window
      ...at(59_501),
    ];
    const replies: { at: number; status: number; retryAfter: string | null }[] = [];
    try {
      for (const t of schedule) {
        now = t;
        const r = await call(api, 'POST', '/v1/completions', { token: key, body });
        if (r.status === 429) expect(errorOf(r).code).toBe('rate_limit_exceeded');
        replies.push({ at: t - b, status: r.status, retryAfter: r.headers.get('retry-after') });
      }
    } finally {
      delete (clock as Partial<Clock>).now;
      delete (clock as Partial<Clock>).nowMs;
    }
    const admitted = replies.filter((r) => r.status === 200).map((r) => r.at);
    expect(admitted).toEqual([...at(-500, 5), ...at(59_500, 5)].map((t) => t - b));
    // No 60 s span holds more than 5 admissions.
    for (const start of admitted) {
      expect(admitted.filter((t) => t >= start && t < start + 60_000).length).toBeLessThanOrEqual(
        5,
      );
    }
    // Retry-After says when the oldest admission leaves the window.
    expect(replies.find((r) => r.at === 500)!.retryAfter).toBe('59');
    expect(replies.find((r) => r.at === 30_000)!.retryAfter).toBe('30');
    expect(replies.find((r) => r.at === 59_499)!.retryAfter).toBe('1');
    expect(replies.at(-1)).toMatchObject({ status: 429, retryAfter: '60' });
  });

  it('counts tokens per minute over any 60 s, giving back what a request did not use', async () => {
    const { key } = await tenantWithKey('sliding-tokens', {
      requestsPerMinute: 1000,
      tokensPerMinute: 30,
      concurrentRequests: 100,
    });
    const b = Math.floor(Date.now() / 60_000) * 60_000;
    const clock = api.app.get(Clock);
    let now = b;
    clock.nowMs = () => now;
    clock.now = () => new Date(now);
    // 'w' and max_tokens 8 reserve 10 tokens (prompt 2 + 8) and use all of them.
    const send = (at: number, extra: Record<string, unknown> = {}) => {
      now = b + at;
      return call(api, 'POST', '/v1/completions', {
        token: key,
        body: { model: MODEL, prompt: 'w', max_tokens: 8, seed: 5, ...extra },
      });
    };
    try {
      // Reserves 20, stops after a few tokens and gives the rest back to the minute.
      const early = await send(-1000, { max_tokens: 18, stop: fakeOutput(5, 18).slice(2, 3) });
      expect(early.status).toBe(200);
      const used = (early.body.usage as { total_tokens: number }).total_tokens;
      expect(used).toBeLessThanOrEqual(10);
      expect((await send(-500)).status).toBe(200);
      const full = await send(-500);
      expect(full.status).toBe(200);
      expect(full.headers.get('x-ratelimit-remaining-tokens')).toBe(String(30 - used - 20));
      // In the next minute the last 60 s still hold them: refused until the first one leaves.
      const next = await send(500);
      expect(next.status).toBe(429);
      expect(errorOf(next).code).toBe('tokens_per_minute_exceeded');
      expect(next.headers.get('retry-after')).toBe('59');
      expect((await send(58_999)).status).toBe(429);
      expect((await send(59_000)).status).toBe(200);
      const again = await send(59_001);
      expect(again.status).toBe(429);
      expect(again.headers.get('retry-after')).toBe('1');
    } finally {
      delete (clock as Partial<Clock>).now;
      delete (clock as Partial<Clock>).nowMs;
    }
  });

  it('reconciles the monthly counter and concurrency from PostgreSQL', async () => {
    const { tenantId, key } = await tenantWithKey('reconcile', {});
    const res = await call(api, 'POST', '/v1/completions', {
      token: key,
      body: { model: MODEL, prompt: 'count me', max_tokens: 4 },
    });
    const used = (res.body.usage as { total_tokens: number }).total_tokens;
    const month = (await api.redis.keys(`${api.prefix}quota:${tenantId}:month:*`))[0];
    await api.redis.set(month, 999_999); // drifted, e.g. a lost Redis or a crashed replica
    const accounting = api.app.get(ReservationService);
    await accounting.reconcileAll();
    expect(Number(await api.redis.get(month))).toBe(used);

    // A leaked slot (a replica died mid-request): one mismatch could be a request in passing,
    // so the first round leaves both counters; the second repairs them.
    await api.redis.set(month, 999_999);
    await api.redis.set(`${api.prefix}quota:${tenantId}:concurrency`, 7);
    await accounting.reconcileAll();
    expect(Number(await api.redis.get(month))).toBe(999_999);
    await accounting.reconcileAll();
    expect(await api.redis.get(`${api.prefix}quota:${tenantId}:concurrency`)).toBe('0');
    expect(Number(await api.redis.get(month))).toBe(used);
  });
});

describe('refusals', () => {
  it('counts refused requests per tenant and reason for admins', async () => {
    const { tenantId, key } = await tenantWithKey('refused', {
      requestsPerMinute: 1,
      concurrentRequests: 100,
    });
    const body = { model: MODEL, prompt: 'r', max_tokens: 1 };
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++) {
      statuses.push((await call(api, 'POST', '/v1/completions', { token: key, body })).status);
    }
    expect(statuses).toEqual([200, 429, 429]);
    const mine = await call(api, 'GET', `/admin/refusals?tenantId=${tenantId}`, { token: admin });
    expect(mine.status).toBe(200);
    expect(mine.body.refusals).toEqual([{ tenantId, reason: 'rate_limit_exceeded', count: 2 }]);
    // Across tenants: this one among the others refused in this file.
    const all = await call(api, 'GET', '/admin/refusals', { token: admin });
    expect(all.body.refusals).toContainEqual({ tenantId, reason: 'rate_limit_exceeded', count: 2 });
    // A range that ended before them holds none of them.
    const before = await call(
      api,
      'GET',
      `/admin/refusals?tenantId=${tenantId}&to=2020-01-01T00:00:00.000Z&from=2019-12-01T00:00:00.000Z`,
      { token: admin },
    );
    expect(before.body.refusals).toEqual([]);
    const bad = await call(api, 'GET', '/admin/refusals?tenantId=nope', { token: admin });
    expect(bad.status).toBe(400);
  });
});
