import { hashPassword } from '@pipedec/db';
import type { Server } from 'node:http';
import { createApp } from '../src/app.js';
import { ADMIN, adminLogin, call, errorOf, startTestApi, type TestApi } from './test-api.js';

let api: TestApi;
const FORWARD_SECRET = 'test-forward-secret-0123';
const PASSWORD = 'right-password-1';

async function makeAdmin(email: string) {
  return api.prisma.adminUser.create({
    data: { email, passwordHash: await hashPassword(PASSWORD), role: 'admin' },
  });
}

/** A login as the dashboard makes it: the browser's address forwarded with the secret. */
function login(email: string, password: string, browserAddress: string) {
  return fetch(`${api.url}/admin/login`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'x-pipedec-client-address': browserAddress,
      'x-pipedec-forward-secret': FORWARD_SECRET,
    },
    body: JSON.stringify({ email, password }),
  });
}

beforeAll(async () => {
  api = await startTestApi({
    ADMIN_LOGIN_MAX_ATTEMPTS: '3',
    ADMIN_LOGIN_ACCOUNT_MAX_FAILURES: '8',
    ADMIN_SESSION_TTL_S: '60',
    DASHBOARD_FORWARD_SECRET: FORWARD_SECRET,
  });
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

  it('rate-limits failed logins per email and address, even with the right password', async () => {
    await makeAdmin('pair@test.local');
    for (let i = 0; i < 3; i++) {
      expect((await login('pair@test.local', 'wrong', '203.0.113.1')).status).toBe(401);
    }
    const blocked = await login('pair@test.local', PASSWORD, '203.0.113.1');
    expect(blocked.status).toBe(429);
    expect(Number(blocked.headers.get('retry-after'))).toBeGreaterThan(0);
    // Another browser behind the dashboard is not locked out by the first one's guesses.
    expect((await login('pair@test.local', PASSWORD, '203.0.113.2')).status).toBe(200);
  });

  it('counts concurrent guesses atomically: no more than the limit reach the password check', async () => {
    await makeAdmin('burst@test.local');
    const replies = await Promise.all(
      Array.from({ length: 40 }, () => login('burst@test.local', 'wrong', '203.0.113.9')),
    );
    const statuses = replies.map((r) => r.status);
    expect(statuses.filter((s) => s === 401)).toHaveLength(3);
    expect(statuses.filter((s) => s === 429)).toHaveLength(37);
  });

  it('believes the forwarded address only with the shared secret, and X-Forwarded-For not at all by default', async () => {
    await makeAdmin('spoof@test.local');
    const replies: number[] = [];
    for (let i = 0; i < 5; i++) {
      const res = await fetch(`${api.url}/admin/login`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'x-forwarded-for': `198.51.100.${i}`,
          'x-pipedec-client-address': `198.51.100.${i}`,
          'x-pipedec-forward-secret': 'not-the-secret-at-all',
        },
        body: JSON.stringify({ email: 'spoof@test.local', password: 'wrong' }),
      });
      replies.push(res.status);
    }
    // Every guess counted against the caller's own address (loopback): the fourth is refused.
    expect(replies).toEqual([401, 401, 401, 429, 429]);
  });

  it("a stranger's guesses from many addresses slow the account down without locking its owner out", async () => {
    await makeAdmin('owner@test.local');
    expect((await login('owner@test.local', PASSWORD, '192.0.2.10')).status).toBe(200);
    // ADMIN_LOGIN_ACCOUNT_MAX_FAILURES = 8, spread over addresses so no pair limit is reached.
    for (let i = 0; i < 8; i++) {
      expect((await login('owner@test.local', 'wrong', `198.18.0.${i}`)).status).toBe(401);
    }
    expect((await login('owner@test.local', PASSWORD, '198.18.1.1')).status).toBe(429);
    expect((await login('owner@test.local', PASSWORD, '192.0.2.10')).status).toBe(200);
  });

  it('audits every failed login and every lockout', async () => {
    const { id } = await makeAdmin('audited@test.local');
    for (let i = 0; i < 4; i++) await login('audited@test.local', 'wrong', '203.0.113.77');
    await login('nobody@test.local', 'wrong', '203.0.113.77');
    const rows = await api.prisma.auditLog.findMany({
      where: { actor: 'anonymous:203.0.113.77' },
      orderBy: { id: 'asc' },
    });
    expect(rows.map((r) => [r.action, (r.details as { reason: string }).reason])).toEqual([
      ['admin.login_failed', 'wrong_password'],
      ['admin.login_failed', 'wrong_password'],
      ['admin.login_failed', 'wrong_password'],
      ['admin.login_lockout', 'email_and_address'],
      ['admin.login_failed', 'locked:email_and_address'],
      ['admin.login_failed', 'unknown_email'],
    ]);
    expect(rows[0].targetId).toBe(id);
    expect(JSON.stringify(rows.map((r) => r.details))).not.toContain('"wrong"');
  });

  it('sends no X-Powered-By, and marks the session cookie Secure behind a trusted HTTPS proxy', async () => {
    const plain = await fetch(`${api.url}/admin/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(ADMIN),
    });
    expect(plain.headers.get('x-powered-by')).toBeNull();
    expect(plain.headers.get('set-cookie')).not.toMatch(/secure/i);
    // X-Forwarded-Proto from an untrusted caller changes nothing...
    const spoofed = await fetch(`${api.url}/admin/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-forwarded-proto': 'https' },
      body: JSON.stringify(ADMIN),
    });
    expect(spoofed.headers.get('set-cookie')).not.toMatch(/secure/i);
    // ...and from a proxy TRUST_PROXY names, it makes the cookie Secure.
    const proxied = await createApp({ ...api.config, TRUST_PROXY: 'loopback' });
    await proxied.listen(0, '127.0.0.1');
    try {
      const port = (proxied.getHttpServer() as Server).address() as { port: number };
      const res = await fetch(`http://127.0.0.1:${port.port}/admin/login`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-forwarded-proto': 'https' },
        body: JSON.stringify(ADMIN),
      });
      expect(res.status).toBe(200);
      expect(res.headers.get('set-cookie')).toMatch(/;\s*Secure/i);
    } finally {
      await proxied.close();
    }
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
