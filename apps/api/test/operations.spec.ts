import {
  adminMeSchema,
  apiKeyViewSchema,
  auditPageSchema,
  createdApiKeySchema,
  listOf,
  loginResponseSchema,
  metricsReportSchema,
  planViewSchema,
  refusalsReportSchema,
  tenantViewSchema,
  usageReportSchema,
} from '@pipedec/contracts';
import { freePort } from '@pipedec/testkit/local-cluster';
import { createApp } from '../src/app.js';
import { MetricsPort } from '../src/metrics/metrics-port.js';
import { FakeHead } from './fake-head.js';
import { ADMIN, adminLogin, call, errorOf, MODEL, startTestApi, type TestApi } from './test-api.js';

let api: TestApi;
let head: FakeHead;
const METRICS_TOKEN = 'metrics-token-0123456789';

beforeAll(async () => {
  api = await startTestApi({ METRICS_TOKEN, METRICS_TENANT_LABELS: 'true' });
  head = new FakeHead(api.prefix);
}, 120_000);
afterAll(async () => {
  await head?.close();
  await api?.close();
});

describe('operations', () => {
  it('exports per-tenant counters, latency histograms and queue depth', async () => {
    const res = await call(api, 'POST', '/v1/completions', {
      token: api.demoKey,
      body: { model: MODEL, prompt: 'metrics', max_tokens: 3 },
    });
    expect(res.status).toBe(200);
    const text = await (
      await fetch(`${api.url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } })
    ).text();
    expect(text).toContain(
      `pipedec_tokens_total{tenant="${api.demoTenantId}",kind="completion"} 3`,
    );
    expect(text).toContain(
      `pipedec_generation_requests_total{tenant="${api.demoTenantId}",status="succeeded"} 1`,
    );
    expect(text).toMatch(/pipedec_time_to_first_token_seconds_count 1/);
    expect(text).toMatch(/pipedec_queue_depth\{where="fair"\} 0/);
  });

  it('serves /metrics on the public port only with METRICS_TOKEN (#18: open before)', async () => {
    const none = await fetch(`${api.url}/metrics`);
    expect(none.status).toBe(401);
    const wrong = await fetch(`${api.url}/metrics`, {
      headers: { authorization: 'Bearer metrics-token-0123456780' },
    });
    expect(wrong.status).toBe(401);
    expect(((await wrong.json()) as { error: { code: string } }).error.code).toBe(
      'invalid_metrics_token',
    );
    const right = await fetch(`${api.url}/metrics`, {
      headers: { authorization: `Bearer ${METRICS_TOKEN}` },
    });
    expect(right.status).toBe(200);
  });

  it('reports usage, latency and cost per tenant and over time to admins', async () => {
    const admin = await adminLogin(api);
    const overview = await call<{
      tenants: Record<string, number | string>[];
      series: Record<string, number>[];
    }>(api, 'GET', '/admin/usage?granularity=hour', { token: admin });
    expect(overview.status).toBe(200);
    const mine = overview.body.tenants.find((t) => t.tenantId === api.demoTenantId)!;
    expect(mine.requests).toBe(1);
    expect(mine.completionTokens).toBe(3);
    expect(Number(mine.costMicros)).toBeGreaterThan(0);
    expect(mine.avgTotalLatencyMs).not.toBeNull();
    expect(overview.body.series).toHaveLength(1);
    expect(overview.body.series[0].requests).toBe(1);
    const one = await call(api, 'GET', `/admin/tenants/${api.demoTenantId}/usage?granularity=day`, {
      token: admin,
    });
    expect((one.body.series as unknown[]).length).toBe(1);
    const metrics = await call(
      api,
      'GET',
      `/admin/metrics?granularity=day&tenantId=${api.demoTenantId}`,
      {
        token: admin,
      },
    );
    expect(metrics.status).toBe(200);
    const report = metricsReportSchema.parse(metrics.body);
    expect(report.series).toHaveLength(1);
    expect(report.series[0]).toMatchObject({ requests: 1, completionTokens: 3, failedRequests: 0 });
    expect(report.series[0].ttftP50Ms).toBeGreaterThanOrEqual(0);
    expect(report.series[0].ttftP95Ms).toBeGreaterThanOrEqual(report.series[0].ttftP50Ms!);
    const none = await call(api, 'GET', `/admin/metrics?tenantId=${crypto.randomUUID()}`, {
      token: admin,
    });
    expect(metricsReportSchema.parse(none.body).series).toEqual([]);
    const bad = await call(api, 'GET', '/admin/usage?granularity=week', { token: admin });
    expect(bad.status).toBe(400);
  });

  it('answers in the shapes @pipedec/contracts declares (the dashboard parses with them)', async () => {
    const login = await call(api, 'POST', '/admin/login', { body: ADMIN });
    const { token } = loginResponseSchema.parse(login.body);
    const get = async (path: string) => {
      const res = await call(api, 'GET', path, { token });
      expect({ path, status: res.status }).toEqual({ path, status: 200 });
      return res.body;
    };
    adminMeSchema.parse(await get('/admin/me'));
    const tenants = listOf(tenantViewSchema).parse(await get('/admin/tenants'));
    expect(tenants.data.length).toBeGreaterThan(0);
    tenantViewSchema.parse(await get(`/admin/tenants/${api.demoTenantId}`));
    listOf(planViewSchema).parse(await get('/admin/plans'));
    const keys = listOf(apiKeyViewSchema).parse(
      await get(`/admin/tenants/${api.demoTenantId}/keys`),
    );
    expect(keys.data.length).toBeGreaterThan(0);
    const created = await call(api, 'POST', `/admin/tenants/${api.demoTenantId}/keys`, {
      token,
      body: { name: 'contract', scopes: ['read-usage'] },
    });
    createdApiKeySchema.parse(created.body);
    usageReportSchema.parse(await get(`/admin/tenants/${api.demoTenantId}/usage`));
    metricsReportSchema.parse(await get('/admin/metrics'));
    refusalsReportSchema.parse(await get('/admin/refusals'));
    auditPageSchema.parse(await get('/admin/audit'));
    await call(api, 'POST', '/admin/logout', { token });
  });

  it("shows admins a tenant's request with its decoding choice and timesteps", async () => {
    const admin = await adminLogin(api);
    const done = await call(api, 'POST', '/v1/completions', {
      token: api.demoKey,
      body: { model: MODEL, prompt: 'stats', max_tokens: 3 },
    });
    expect(done.status).toBe(200);
    const id = String(done.body.id).replace(/^cmpl-/, '');
    const seen = await call(api, 'GET', `/admin/tenants/${api.demoTenantId}/requests/${id}`, {
      token: admin,
    });
    expect(seen.status).toBe(200);
    expect(seen.body).toMatchObject({ id, status: 'succeeded', usage: { completion_tokens: 3 } });
    expect((seen.body.stats as { timesteps: number }).timesteps).toBeGreaterThan(0);
    expect(seen.body).toHaveProperty('decoding'); // auto's choice; null when a method was named
    expect(seen.body).toHaveProperty('method');
    // Another tenant's id in the path finds nothing.
    const other = await call(api, 'GET', `/admin/tenants/${crypto.randomUUID()}/requests/${id}`, {
      token: admin,
    });
    expect(other.status).toBe(404);
  });

  it('serves metrics per minute for the 15 min and 1 h views, over at most a day', async () => {
    const admin = await adminLogin(api);
    const from = new Date(Date.now() - 15 * 60_000).toISOString();
    const res = await call(
      api,
      'GET',
      `/admin/metrics?granularity=minute&from=${from}&tenantId=${api.demoTenantId}`,
      { token: admin },
    );
    expect(res.status).toBe(200);
    const report = metricsReportSchema.parse(res.body);
    expect(report.series.length).toBeGreaterThan(0);
    for (const p of report.series) {
      expect(new Date(p.bucketStart).getUTCSeconds()).toBe(0);
      expect(Date.parse(p.bucketStart)).toBeGreaterThanOrEqual(Date.parse(from) - 60_000);
    }
    const twoDays = new Date(Date.now() - 48 * 3600_000).toISOString();
    for (const q of [`granularity=minute&from=${twoDays}`, 'granularity=minute']) {
      const bad = await call(api, 'GET', `/admin/metrics?${q}`, { token: admin });
      expect(bad.status).toBe(400);
      expect(errorOf(bad).param).toBe('granularity');
    }
  });

  it('bills each request at the prices of its time, after a mid-month price change', async () => {
    const admin = await adminLogin(api);
    const complete = async (prompt: string) =>
      expect(
        (
          await call(api, 'POST', '/v1/completions', {
            token: api.demoKey,
            body: { model: MODEL, prompt, max_tokens: 2 },
          })
        ).status,
      ).toBe(200);
    const usage = async () =>
      usageReportSchema.parse(
        (await call(api, 'GET', `/admin/tenants/${api.demoTenantId}/usage`, { token: admin })).body,
      ).totals;
    const before = await usage();
    expect(before.priceSegments).toHaveLength(1);
    const old = before.priceSegments[0];
    // Whole micro-dollars per token at the new prices, so the new segment multiplies out exactly.
    const changed = await call(api, 'PATCH', '/admin/plans/demo', {
      token: admin,
      body: { priceInputPer1kMicros: 7_000, priceOutputPer1kMicros: 11_000 },
    });
    expect(changed.status).toBe(200);
    await complete('after the change');
    const after = await usage();
    expect(after.priceSegments).toHaveLength(2);
    // The old requests keep their prices; the new one is billed at the new ones.
    expect(after.priceSegments[0]).toEqual(old);
    const fresh = after.priceSegments[1];
    expect(fresh).toMatchObject({
      inputPer1kMicros: 7_000,
      outputPer1kMicros: 11_000,
      requests: 1,
    });
    expect(fresh.costMicros).toBe(fresh.promptTokens * 7 + fresh.completionTokens * 11);
    const sum = (k: 'requests' | 'promptTokens' | 'completionTokens' | 'costMicros') =>
      after.priceSegments.reduce((a, s) => a + s[k], 0);
    expect(sum('requests')).toBe(after.requests);
    expect(sum('promptTokens')).toBe(after.promptTokens);
    expect(sum('completionTokens')).toBe(after.completionTokens);
    expect(sum('costMicros')).toBe(after.costMicros);
  });
});

// Last: it sends a request of its own, which the usage counts above would see.
describe('metrics on a port of their own', () => {
  it('without a token refuses the public port, serves METRICS_PORT, and labels no tenant by default', async () => {
    const port = await freePort();
    const app = await createApp({
      ...api.config,
      METRICS_TOKEN: undefined,
      METRICS_TENANT_LABELS: false,
      METRICS_PORT: port,
    });
    try {
      await app.listen(0, '127.0.0.1');
      const server = app.getHttpServer() as import('node:http').Server;
      const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
      const res = await call({ url }, 'POST', '/v1/completions', {
        token: api.demoKey,
        body: { model: MODEL, prompt: 'private metrics', max_tokens: 2 },
      });
      expect(res.status).toBe(200);
      const publicPort = await fetch(`${url}/metrics`);
      expect(publicPort.status).toBe(403);
      expect(app.get(MetricsPort).port).toBe(port);
      const scraped = await fetch(`http://127.0.0.1:${port}/metrics`);
      expect(scraped.status).toBe(200);
      const text = await scraped.text();
      expect(text).toContain('pipedec_tokens_total{kind="completion"} 2');
      expect(text).not.toContain(api.demoTenantId);
      expect((await fetch(`http://127.0.0.1:${port}/admin/tenants`)).status).toBe(404);
    } finally {
      await app.close();
    }
  });
});
