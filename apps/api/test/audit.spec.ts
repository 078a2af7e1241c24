// GET /admin/audit against the real database: filters by tenant, actor (id or email), action
// (exact or "prefix."), time; pages by id without gaps or repeats; 400 naming a bad filter.
import { startTestApi, adminLogin, call, errorOf, type TestApi } from './test-api.js';

let api: TestApi;
let admin: string;

beforeAll(async () => {
  api = await startTestApi();
  admin = await adminLogin(api);
}, 120_000);
afterAll(async () => {
  await api?.close();
});

interface Entry {
  id: string;
  at: string;
  actor: string;
  actorEmail: string | null;
  action: string;
  tenantId: string | null;
}
type Page = { data: Entry[]; nextBefore: string | null };

const audit = (query: string) => call<Page>(api, 'GET', `/admin/audit?${query}`, { token: admin });

describe('audit log', () => {
  it('filters by tenant, actor, action and time, and pages without gaps', async () => {
    const me = await call<{ id: string; email: string }>(api, 'GET', '/admin/me', {
      token: admin,
    });
    const start = new Date().toISOString();
    const a = await call(api, 'POST', '/admin/tenants', {
      token: admin,
      body: { name: 'audit-a', plan: 'demo' },
    });
    const b = await call(api, 'POST', '/admin/tenants', {
      token: admin,
      body: { name: 'audit-b', plan: 'demo' },
    });
    for (const limit of [10, 20, 30]) {
      const r = await call(api, 'PATCH', `/admin/tenants/${a.body.id}`, {
        token: admin,
        body: { maxOutputTokens: limit },
      });
      expect(r.status).toBe(200);
    }

    const ofA = await audit(`tenantId=${a.body.id}`);
    expect(ofA.status).toBe(200);
    expect(ofA.body.data.map((e) => e.action)).toEqual([
      'tenant.update',
      'tenant.update',
      'tenant.update',
      'tenant.create',
    ]);
    expect(ofA.body.data[0]).toMatchObject({
      actor: `admin:${me.body.id}`,
      actorEmail: me.body.email,
    });

    // By the admin's email (part of it, any case) or its actor id.
    const byEmail = await audit(`actor=${encodeURIComponent(me.body.email.toUpperCase())}`);
    expect(byEmail.body.data.length).toBeGreaterThanOrEqual(5);
    expect(byEmail.body.data.every((e) => e.actor === `admin:${me.body.id}`)).toBe(true);
    expect((await audit('actor=nobody-at-all')).body.data).toEqual([]);

    // Action: exact, or a family by its prefix.
    const creates = await audit(`action=tenant.create&from=${encodeURIComponent(start)}`);
    expect(creates.body.data.map((e) => e.tenantId).sort()).toEqual([a.body.id, b.body.id].sort());
    const family = await audit(`action=tenant.&from=${encodeURIComponent(start)}`);
    expect(family.body.data).toHaveLength(5);

    // Time: nothing before the seed, everything of this test after its start.
    expect((await audit('to=2000-01-01T00:00:00.000Z')).body.data).toEqual([]);

    // Pages of 2 walk the 5 entries of this test once each, newest first, then stop.
    const seen: string[] = [];
    let before: string | null = null;
    for (;;) {
      const page: Page = (
        await audit(`from=${encodeURIComponent(start)}&limit=2${before ? `&before=${before}` : ''}`)
      ).body;
      seen.push(...page.data.map((e) => e.id));
      if (!page.nextBefore) break;
      before = page.nextBefore;
    }
    expect(seen).toEqual(family.body.data.map((e) => e.id));
  });

  it('refuses a bad filter with a 400 naming it', async () => {
    for (const [query, param] of [
      ['tenantId=nope', 'tenantId'],
      ['limit=0', 'limit'],
      ['limit=501', 'limit'],
      ['from=yesterday', 'from'],
      ['before=abc', 'before'],
      ['action=drop%20table', 'action'],
      ['colour=red', null],
    ] as const) {
      const r = await audit(query);
      expect({ query, status: r.status }).toEqual({ query, status: 400 });
      if (param) expect(errorOf(r).param).toBe(param);
    }
  });
});
