import { adminLogin, call, startTestApi, type TestApi } from './test-api.js';

const json = (v: unknown) =>
  JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? x.toString() : x));

let api: TestApi;
let admin: string;

beforeAll(async () => {
  api = await startTestApi();
  admin = await adminLogin(api);
}, 120_000);
afterAll(async () => {
  await api?.close();
});

/** A route that needs a key with scope read-usage. */
const whoami = (token: string) => call(api, 'GET', '/v1/usage', { token });

describe('API key lifecycle', () => {
  it('creates a key shown once, stores only its hash, and authenticates with it', async () => {
    const created = await call(api, 'POST', `/admin/tenants/${api.demoTenantId}/keys`, {
      token: admin,
      body: { name: 'ci', scopes: ['read-usage'] },
    });
    expect(created.status).toBe(201);
    const { id, secret, prefix } = created.body as { id: string; secret: string; prefix: string };
    expect(secret.startsWith(prefix)).toBe(true);

    const row = await api.prisma.apiKey.findUniqueOrThrow({ where: { id } });
    expect(JSON.stringify(row)).not.toContain(secret);
    const audit = await api.prisma.auditLog.findMany({ where: { targetId: id } });
    expect(audit.map((a) => a.action)).toEqual(['api_key.create']);
    expect(json(audit)).not.toContain(secret);

    const listed = await call(api, 'GET', `/admin/tenants/${api.demoTenantId}/keys`, {
      token: admin,
    });
    expect(JSON.stringify(listed.body)).not.toContain(secret);
    expect(JSON.stringify(listed.body)).not.toContain(row.secretHash);

    expect((await whoami(secret)).status).toBe(200);
    await new Promise((r) => setTimeout(r, 100));
    const used = await api.prisma.apiKey.findUniqueOrThrow({ where: { id } });
    expect(used.lastUsedAt).not.toBeNull();
  });

  it('refuses a key without the route scope with 403 and a wrong key with 401', async () => {
    const created = await call(api, 'POST', `/admin/tenants/${api.demoTenantId}/keys`, {
      token: admin,
      body: { name: 'gen-only', scopes: ['generate'] },
    });
    const res = await whoami(created.body.secret as string);
    expect(res.status).toBe(403);
    expect(res.body.error).toMatchObject({ type: 'permission_error', code: 'missing_scope' });
    const bad = await whoami('pd_not-a-real-key');
    expect(bad.status).toBe(401);
    expect(bad.body.error).toMatchObject({ type: 'authentication_error' });
  });

  it('revokes immediately', async () => {
    const created = await call(api, 'POST', `/admin/tenants/${api.demoTenantId}/keys`, {
      token: admin,
      body: { name: 'to-revoke', scopes: ['read-usage'] },
    });
    const { id, secret } = created.body as { id: string; secret: string };
    expect((await whoami(secret)).status).toBe(200);
    const revoked = await call(
      api,
      'POST',
      `/admin/tenants/${api.demoTenantId}/keys/${id}/revoke`,
      {
        token: admin,
      },
    );
    expect(revoked.status).toBe(201);
    expect((await whoami(secret)).status).toBe(401);
  });

  it('rotates with a grace period for the old secret, then without', async () => {
    const created = await call(api, 'POST', `/admin/tenants/${api.demoTenantId}/keys`, {
      token: admin,
      body: { name: 'to-rotate', scopes: ['read-usage'] },
    });
    const { id, secret: first } = created.body as { id: string; secret: string };
    const rotated = await call(
      api,
      'POST',
      `/admin/tenants/${api.demoTenantId}/keys/${id}/rotate`,
      {
        token: admin,
        body: { gracePeriodSeconds: 60 },
      },
    );
    expect(rotated.body.id).toBe(id);
    const second = rotated.body.secret as string;
    expect(second).not.toBe(first);
    expect((await whoami(first)).status).toBe(200);
    expect((await whoami(second)).status).toBe(200);

    const again = await call(api, 'POST', `/admin/tenants/${api.demoTenantId}/keys/${id}/rotate`, {
      token: admin,
      body: { gracePeriodSeconds: 0 },
    });
    const third = again.body.secret as string;
    expect((await whoami(first)).status).toBe(401);
    expect((await whoami(second)).status).toBe(401);
    expect((await whoami(third)).status).toBe(200);
    const actions = await api.prisma.auditLog.findMany({
      where: { targetId: id },
      orderBy: { id: 'asc' },
    });
    expect(actions.map((a) => a.action)).toEqual([
      'api_key.create',
      'api_key.rotate',
      'api_key.rotate',
    ]);
    expect(actions.every((a) => a.actor.startsWith('admin:'))).toBe(true);
    expect(json(actions)).not.toContain(third);
  });

  it('refuses an expired key', async () => {
    const created = await call(api, 'POST', `/admin/tenants/${api.demoTenantId}/keys`, {
      token: admin,
      body: {
        name: 'short',
        scopes: ['read-usage'],
        expiresAt: new Date(Date.now() + 1500).toISOString(),
      },
    });
    const secret = created.body.secret as string;
    expect((await whoami(secret)).status).toBe(200);
    await new Promise((r) => setTimeout(r, 1700));
    expect((await whoami(secret)).status).toBe(401);
  });

  it('never lets a viewer change keys, and keeps secrets out of error bodies', async () => {
    const res = await call(api, 'POST', `/admin/tenants/${api.demoTenantId}/keys`, {
      token: api.demoKey,
      body: { name: 'x', scopes: ['generate'] },
    });
    expect(res.status).toBe(401);
    expect(JSON.stringify(res.body)).not.toContain(api.demoKey);
  });
});
