import type { INestApplication } from '@nestjs/common';
import { CacheInvalidation } from '../src/infra/cache-invalidation.js';
import {
  adminLogin,
  call,
  errorOf,
  MODEL,
  moveClock,
  startReplica,
  startTestApi,
  type TestApi,
  waitFor,
} from './test-api.js';

const json = (v: unknown) =>
  JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? x.toString() : x));

let api: TestApi;
let admin: string;

beforeAll(async () => {
  api = await startTestApi();
  admin = await adminLogin(api);
  // Keys are cached from here on (a replica that cannot hear changes caches nothing).
  await waitFor(() => (api.app.get(CacheInvalidation).generation !== null ? true : undefined));
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
    // The use is recorded after the reply, off the request's path: wait for the record.
    await waitFor(async () => {
      const used = await api.prisma.apiKey.findUniqueOrThrow({ where: { id } });
      return used.lastUsedAt ?? undefined;
    }, 5_000);
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

  it('revokes immediately, though the key was cached', async () => {
    const created = await call(api, 'POST', `/admin/tenants/${api.demoTenantId}/keys`, {
      token: admin,
      body: { name: 'to-revoke', scopes: ['read-usage'] },
    });
    const { id, secret } = created.body as { id: string; secret: string };
    expect((await whoami(secret)).status).toBe(200);
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
        expiresAt: new Date(Date.now() + 60_000).toISOString(),
      },
    });
    const secret = created.body.secret as string;
    expect((await whoami(secret)).status).toBe(200);
    const restore = moveClock(api.app, 61_000);
    try {
      expect((await whoami(secret)).status).toBe(401);
    } finally {
      restore();
    }
    // Back at the real time the key works again: it was the clock that expired it.
    expect((await whoami(secret)).status).toBe(200);
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

describe('changes through the admin API apply on the very next request, on every replica', () => {
  let replica: { url: string; app: INestApplication };
  let tenantId: string;

  beforeAll(async () => {
    replica = await startReplica(api);
    await waitFor(() =>
      replica.app.get(CacheInvalidation).generation !== null ? true : undefined,
    );
    const t = await call(api, 'POST', '/admin/tenants', {
      token: admin,
      body: { name: 'replicated', plan: 'demo' },
    });
    tenantId = t.body.id as string;
  });
  afterAll(async () => {
    await replica?.app.close();
  });

  const newKey = async (scopes = ['read-usage']) => {
    const created = await call(api, 'POST', `/admin/tenants/${tenantId}/keys`, {
      token: admin,
      body: { name: 'replicated', scopes },
    });
    return created.body as { id: string; secret: string };
  };
  /** Authenticated on both replicas, twice: each has the key cached. */
  const useEverywhere = async (secret: string) => {
    for (const url of [api.url, replica.url, api.url, replica.url]) {
      expect((await call({ url }, 'GET', '/v1/usage', { token: secret })).status).toBe(200);
    }
  };

  it('a revoked key is refused by both replicas', async () => {
    const { id, secret } = await newKey();
    await useEverywhere(secret);
    const revoked = await call(api, 'POST', `/admin/tenants/${tenantId}/keys/${id}/revoke`, {
      token: admin,
    });
    expect(revoked.status).toBe(201);
    expect((await call(replica, 'GET', '/v1/usage', { token: secret })).status).toBe(401);
    expect((await whoami(secret)).status).toBe(401);
  });

  it("a rotated key's old secret is refused by both replicas", async () => {
    const { id, secret } = await newKey();
    await useEverywhere(secret);
    const rotated = await call(api, 'POST', `/admin/tenants/${tenantId}/keys/${id}/rotate`, {
      token: admin,
      body: { gracePeriodSeconds: 0 },
    });
    expect((await call(replica, 'GET', '/v1/usage', { token: secret })).status).toBe(401);
    expect((await whoami(secret)).status).toBe(401);
    const fresh = rotated.body.secret as string;
    expect((await call(replica, 'GET', '/v1/usage', { token: fresh })).status).toBe(200);
  });

  it("a lower limit applies to the tenant's next request on the other replica", async () => {
    const { secret } = await newKey(['generate']);
    const submit = (maxTokens: number) =>
      call(replica, 'POST', '/v1/jobs', {
        token: secret,
        body: { model: MODEL, prompt: 'limits', max_tokens: maxTokens },
      });
    expect((await submit(8)).status).toBe(202); // the replica has the tenant's limits cached
    const changed = await call(api, 'PATCH', `/admin/tenants/${tenantId}`, {
      token: admin,
      body: { maxOutputTokens: 4 },
    });
    expect(changed.status).toBe(200);
    const refused = await submit(8);
    expect(refused.status).toBe(400);
    expect(errorOf(refused).code).toBe('max_tokens_too_large');
  });

  it("a suspended tenant's keys are refused by both replicas", async () => {
    const { secret } = await newKey();
    await useEverywhere(secret);
    const suspended = await call(api, 'PATCH', `/admin/tenants/${tenantId}`, {
      token: admin,
      body: { status: 'suspended' },
    });
    expect(suspended.status).toBe(200);
    expect((await call(replica, 'GET', '/v1/usage', { token: secret })).status).toBe(401);
    expect((await whoami(secret)).status).toBe(401);
  });
});
