// Idempotency-Key on request creation (#18): a client that retries a POST whose answer it
// never got (its connection dropped) with the same key and body gets the same request, billed
// once; concurrent retries too; the same key with another body is a 409; a bad key is a 400
// naming the header. Real PostgreSQL and Redis, the fake head (test/fake-head.ts).
import { FakeHead } from './fake-head.js';
import { call, errorOf, MODEL, startTestApi, type TestApi } from './test-api.js';

let api: TestApi;
let head: FakeHead;

beforeAll(async () => {
  api = await startTestApi();
  head = new FakeHead(api.prefix, { tokenDelayMs: 5, concurrency: 2 });
}, 120_000);
afterAll(async () => {
  await head?.close();
  await api?.close();
});

async function post(path: string, body: unknown, key?: string) {
  const headers: Record<string, string> = {
    authorization: `Bearer ${api.demoKey}`,
    'content-type': 'application/json',
  };
  if (key !== undefined) headers['idempotency-key'] = key;
  const res = await fetch(api.url + path, { method: 'POST', headers, body: JSON.stringify(body) });
  return { res, body: (await res.json()) as Record<string, unknown> };
}

const rows = () => api.prisma.generationRequest.count({ where: { tenantId: api.demoTenantId } });

describe('Idempotency-Key', () => {
  it('answers a retried completion with the same request, billed once', async () => {
    const body = { model: MODEL, prompt: 'once', max_tokens: 5, seed: 1 };
    const before = await rows();
    const first = await post('/v1/completions', body, 'retry-1');
    const again = await post('/v1/completions', body, 'retry-1');
    expect(first.res.status).toBe(200);
    expect(again.res.status).toBe(200);
    // Before: a second request with its own id, billed again.
    expect(again.res.headers.get('x-request-id')).toBe(first.res.headers.get('x-request-id'));
    expect(again.res.headers.get('idempotent-replayed')).toBe('true');
    expect(again.body.choices).toEqual(first.body.choices);
    expect(again.body.usage).toEqual(first.body.usage);
    expect(await rows()).toBe(before + 1);
    // Without a key, the same body is a new request.
    const other = await post('/v1/completions', body);
    expect(other.res.headers.get('x-request-id')).not.toBe(first.res.headers.get('x-request-id'));
  });

  it('gives concurrent retries one request', async () => {
    const body = { model: MODEL, prompt: 'together', max_tokens: 3, seed: 2 };
    const before = await rows();
    const all = await Promise.all(
      Array.from({ length: 6 }, () => post('/v1/jobs', body, 'concurrent-1')),
    );
    const ids = new Set(all.map((r) => r.body.id));
    expect(all.map((r) => r.res.status)).toEqual(Array(6).fill(202));
    expect(ids.size).toBe(1);
    expect(await rows()).toBe(before + 1);
  });

  it('refuses the same key with another body or endpoint (409), and a malformed key (400)', async () => {
    const body = { model: MODEL, prompt: 'first body', max_tokens: 2, seed: 3 };
    expect((await post('/v1/jobs', body, 'reused-1')).res.status).toBe(202);
    const changed = await post('/v1/jobs', { ...body, prompt: 'second body' }, 'reused-1');
    expect(changed.res.status).toBe(409);
    expect(changed.body.error).toMatchObject({ code: 'idempotency_key_reused' });
    const elsewhere = await post('/v1/completions', body, 'reused-1');
    expect(elsewhere.res.status).toBe(409);
    const noKey = await call(api, 'POST', '/v1/jobs', { token: api.demoKey, body });
    expect(noKey.status).toBe(202);
    const long = await post('/v1/jobs', body, 'k'.repeat(256));
    expect(long.res.status).toBe(400);
    expect(errorOf({ status: 400, headers: long.res.headers, body: long.body })).toMatchObject({
      code: 'invalid_idempotency_key',
      param: 'Idempotency-Key',
    });
  });
});
