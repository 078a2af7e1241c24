import { hashPassword } from '@pipedec/db';
import { ADMIN, adminLogin, call, errorOf, startTestApi, type TestApi } from './test-api.js';

let api: TestApi;

beforeAll(async () => {
  api = await startTestApi({ ADMIN_LOGIN_MAX_ATTEMPTS: '3', ADMIN_SESSION_TTL_S: '60' });
  await api.prisma.adminUser.create({
    data: {
      email: 'viewer@test.local',
      passwordHash: await hashPassword('viewer-password'),
      role: 'viewer',
    },
  });
}, 120_000);
afterAll(async () => {
  await api?.close();
});

describe('admin authentication', () => {
  it('refuses admin routes without a session, and API keys as sessions', async () => {
    expect((await call(api, 'GET', '/admin/tenants')).status).toBe(401);
    expect((await call(api, 'GET', '/admin/tenants', { token: api.demoKey })).status).toBe(401);
  });

  it('lets a viewer read but not change, and writes every change with its actor', async () => {
    const viewer = await call<{ token: string }>(api, 'POST', '/admin/login', {
      body: { email: 'viewer@test.local', password: 'viewer-password' },
    });
    expect((await call(api, 'GET', '/admin/tenants', { token: viewer.body.token })).status).toBe(
      200,
    );
    const denied = await call(api, 'POST', '/admin/tenants', {
      token: viewer.body.token,
      body: { name: 'nope', plan: 'demo' },
    });
    expect(denied.status).toBe(403);
    expect(errorOf(denied).code).toBe('admin_role_required');

    const admin = await adminLogin(api);
    const me = await call(api, 'GET', '/admin/me', { token: admin });
    const created = await call(api, 'POST', '/admin/tenants', {
      token: admin,
      body: { name: 'acme', plan: 'demo', tokensPerMonth: 5000 },
    });
    expect(created.status).toBe(201);
    const updated = await call(api, 'PATCH', `/admin/tenants/${created.body.id}`, {
      token: admin,
      body: { maxOutputTokens: 64 },
    });
    expect((updated.body.limits as { maxOutputTokens: number }).maxOutputTokens).toBe(64);
    const audit = await call<{ data: { action: string; actor: string }[] }>(
      api,
      'GET',
      `/admin/audit?tenantId=${created.body.id}`,
      { token: admin },
    );
    expect(audit.body.data.map((a) => a.action)).toEqual(['tenant.update', 'tenant.create']);
    expect(audit.body.data.every((a) => a.actor === `admin:${me.body.id}`)).toBe(true);
  });

  it('rate-limits failed logins, even with the right password afterwards', async () => {
    for (let i = 0; i < 3; i++) {
      const r = await call(api, 'POST', '/admin/login', {
        body: { email: ADMIN.email, password: 'wrong' },
      });
      expect(r.status).toBe(401);
    }
    const blocked = await call(api, 'POST', '/admin/login', { body: ADMIN });
    expect(blocked.status).toBe(429);
    expect(Number(blocked.headers.get('retry-after'))).toBeGreaterThan(0);
    await api.redis.del(
      `${api.prefix}login:email:${ADMIN.email}`,
      `${api.prefix}login:ip:127.0.0.1`,
    );
    await api.redis.del(`${api.prefix}login:ip:::ffff:127.0.0.1`);
    expect((await call(api, 'POST', '/admin/login', { body: ADMIN })).status).toBe(200);
  });

  it('ends sessions at logout and at expiry', async () => {
    const token = await adminLogin(api);
    expect((await call(api, 'POST', '/admin/logout', { token })).status).toBe(204);
    expect((await call(api, 'GET', '/admin/me', { token })).status).toBe(401);

    const other = await adminLogin(api);
    await api.prisma.adminSession.updateMany({
      where: { revokedAt: null },
      data: { expiresAt: new Date(Date.now() - 1000) },
    });
    expect((await call(api, 'GET', '/admin/me', { token: other })).status).toBe(401);
  });

  it('manages plans: limits and prices follow to tenants, each change audited', async () => {
    const admin = await adminLogin(api);
    const plan = {
      name: 'gold',
      priority: 10,
      requestsPerMinute: 600,
      tokensPerMinute: 100_000,
      tokensPerMonth: 10_000_000,
      concurrentRequests: 16,
      maxPromptTokens: 2048,
      maxOutputTokens: 512,
      priceInputPer1kMicros: 200,
      priceOutputPer1kMicros: 600,
    };
    expect((await call(api, 'POST', '/admin/plans', { token: admin, body: plan })).status).toBe(
      201,
    );
    const dup = await call(api, 'POST', '/admin/plans', { token: admin, body: plan });
    expect(dup.status).toBe(409);
    const t = await call(api, 'POST', '/admin/tenants', {
      token: admin,
      body: { name: 'goldie', plan: 'gold' },
    });
    const upd = await call(api, 'PATCH', '/admin/plans/gold', {
      token: admin,
      body: { priceOutputPer1kMicros: 700, maxOutputTokens: 256 },
    });
    expect(upd.body).toMatchObject({ priceOutputPer1kMicros: 700, maxOutputTokens: 256 });
    const tenant = await call(api, 'GET', `/admin/tenants/${t.body.id}`, { token: admin });
    expect(tenant.body).toMatchObject({
      limits: { maxOutputTokens: 256 },
      prices: { outputPer1kMicros: 700 },
    });
    const audit = await api.prisma.auditLog.findMany({
      where: { targetType: 'plan' },
      orderBy: { id: 'asc' },
    });
    expect(audit.map((a) => a.action)).toEqual(['plan.create', 'plan.update']);
    const unknownField = await call(api, 'PATCH', '/admin/plans/gold', {
      token: admin,
      body: { price: 1 },
    });
    expect(unknownField.status).toBe(400);
    expect(errorOf(unknownField).param).toBe('price');
  });
});
