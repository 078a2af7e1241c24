import { io, type Socket } from 'socket.io-client';
import type { RequestEvent } from '@pipedec/contracts';
import { FakeHead, fakeOutput } from './fake-head.js';
import { adminLogin, call, MODEL, startTestApi, type TestApi, waitFor } from './test-api.js';

let api: TestApi;
let head: FakeHead;

beforeAll(async () => {
  api = await startTestApi();
  head = new FakeHead(api.prefix, { tokenDelayMs: 15, concurrency: 2 });
}, 120_000);
afterAll(async () => {
  await head?.close();
  await api?.close();
});

function connect(apiKey: string): Socket {
  return io(`${api.url}/v1/stream`, {
    auth: { apiKey },
    transports: ['websocket'],
    reconnectionDelay: 50,
    reconnectionDelayMax: 100,
  });
}

/** Submits a job as the demo tenant; its request id. */
async function submitJob(prompt: string, maxTokens: number, seed?: number): Promise<string> {
  const sub = await call(api, 'POST', '/v1/jobs', {
    token: api.demoKey,
    body: { model: MODEL, prompt, max_tokens: maxTokens, seed },
  });
  expect(sub.status).toBe(202);
  return sub.body.id as string;
}

interface Received {
  id: string;
  event: RequestEvent;
}

async function accounted(id: string) {
  return waitFor(async () => {
    const r = await api.prisma.generationRequest.findUniqueOrThrow({ where: { id } });
    return r.accountedAt ? r : undefined;
  });
}

describe('socket.io streaming', () => {
  it('resumes after a forced disconnect with nothing lost or duplicated', async () => {
    const requestId = await submitJob('socket', 60, 7);
    const socket = connect(api.demoKey);
    const received: Received[] = [];
    let ended = false;
    let reconnects = 0;
    socket.on('event', (m: { requestId: string; id: string; event: RequestEvent }) => {
      received.push({ id: m.id, event: m.event });
    });
    socket.on('end', () => (ended = true));
    const subscribe = () => {
      const lastEventId = received.length > 0 ? received[received.length - 1].id : undefined;
      socket.emit('subscribe', { requestId, lastEventId }, (ack: { ok: boolean }) => {
        expect(ack.ok).toBe(true);
      });
    };
    socket.on('ready', () => {
      reconnects++;
      subscribe();
    });
    await waitFor(() =>
      received.filter((r) => r.event.type === 'token').length >= 5 ? true : undefined,
    );
    socket.io.engine.close(); // the transport drops; the client reconnects by itself
    await waitFor(() => (ended ? true : undefined));
    socket.disconnect();

    expect(reconnects).toBe(2);
    const ids = received.map((r) => r.id);
    expect(new Set(ids).size).toBe(ids.length);
    const stream = await api.redis.xrange(`${api.prefix}req:${requestId}:events`, '-', '+');
    expect(ids).toEqual(stream.map(([id]) => id));
    const text = received.map((r) => (r.event.type === 'token' ? r.event.text : '')).join('');
    expect(text).toBe(fakeOutput(7, 60));
  }, 90_000);

  it('refuses a resume id Redis could not take, naming it, and other followers go on', async () => {
    const requestId = await submitJob('neighbour', 20, 4);
    const socket = connect(api.demoKey);
    await new Promise((r) => socket.once('ready', r));
    const tokens: string[] = [];
    let ended = false;
    socket.on('event', (m: { requestId: string; event: RequestEvent }) => {
      if (m.event.type === 'token') tokens.push(m.event.text);
    });
    socket.on('end', () => (ended = true));
    socket.emit('subscribe', { requestId }, () => undefined);
    const ack = await new Promise<{ ok: boolean; error?: { code: string; message: string } }>(
      (resolve) =>
        socket.emit('subscribe', { requestId, lastEventId: '18446744073709551616-0' }, resolve),
    );
    expect(ack.ok).toBe(false);
    expect(ack.error?.message).toContain('lastEventId');
    await waitFor(() => (ended ? true : undefined));
    socket.disconnect();
    expect(tokens.join('')).toBe(fakeOutput(4, 20));
  });

  it("refuses another tenant's request and a connection without a key", async () => {
    const admin = await adminLogin(api);
    const t = await call(api, 'POST', '/admin/tenants', {
      token: admin,
      body: { name: 'b', plan: 'demo' },
    });
    const k = await call(api, 'POST', `/admin/tenants/${t.body.id}/keys`, {
      token: admin,
      body: { name: 'k', scopes: ['generate'] },
    });
    const mine = await submitJob('mine', 2);
    const socket = connect(k.body.secret as string);
    await new Promise((r) => socket.once('ready', r));
    const ack = await new Promise<{ ok: boolean; error?: { code: string } }>((resolve) =>
      socket.emit('subscribe', { requestId: mine }, resolve),
    );
    expect(ack).toMatchObject({ ok: false, error: { code: 'not_found' } });
    socket.disconnect();

    const anon = io(`${api.url}/v1/stream`, { transports: ['websocket'], reconnection: false });
    const err = await new Promise<{ code: string }>((r) => anon.once('error', r));
    expect(err.code).toBe('invalid_api_key');
    anon.disconnect();
  });
});

describe('socket.io and key changes (#18)', () => {
  /** A tenant of its own with a generate key; its id and secret. */
  async function tenantWithKey(admin: string, name: string) {
    const t = await call(api, 'POST', '/admin/tenants', {
      token: admin,
      body: { name, plan: 'demo' },
    });
    const k = await call(api, 'POST', `/admin/tenants/${t.body.id}/keys`, {
      token: admin,
      body: { name: 'k', scopes: ['generate'] },
    });
    return {
      tenantId: t.body.id as string,
      keyId: k.body.id as string,
      secret: k.body.secret as string,
    };
  }

  /** Resolves with the socket's `error` payload once it is disconnected (rejects after 5 s). */
  function refusal(socket: Socket): Promise<{ code: string }> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('still connected after 5 s')), 5000);
      let error: { code: string } | undefined;
      socket.on('error', (e: { code: string }) => (error = e));
      socket.once('disconnect', () => {
        clearTimeout(timer);
        resolve(error ?? { code: 'none' });
      });
    });
  }

  it('disconnects an open, streaming socket when its key is revoked', async () => {
    const admin = await adminLogin(api);
    const { tenantId, keyId, secret } = await tenantWithKey(admin, 'revoked-socket');
    const sub = await call(api, 'POST', '/v1/jobs', {
      token: secret,
      body: { model: MODEL, prompt: 'long', max_tokens: 200, seed: 3 },
    });
    const socket = io(`${api.url}/v1/stream`, {
      auth: { apiKey: secret },
      transports: ['websocket'],
      reconnection: false,
    });
    await new Promise((r) => socket.once('ready', r));
    const first = new Promise((r) => socket.once('event', r));
    socket.emit('subscribe', { requestId: sub.body.id as string });
    await first;
    const refused = refusal(socket);
    const revoked = await call(api, 'POST', `/admin/tenants/${tenantId}/keys/${keyId}/revoke`, {
      token: admin,
    });
    expect(revoked.status).toBe(201);
    // Before: the socket stayed open and kept streaming, and new subscribes were accepted.
    expect(await refused).toMatchObject({ code: 'invalid_api_key' });
  });

  it("disconnects a suspended tenant's sockets, and refuses their subscribes", async () => {
    const admin = await adminLogin(api);
    const { tenantId, secret } = await tenantWithKey(admin, 'suspended-socket');
    const sub = await call(api, 'POST', '/v1/jobs', {
      token: secret,
      body: { model: MODEL, prompt: 'short', max_tokens: 2, seed: 4 },
    });
    const socket = io(`${api.url}/v1/stream`, {
      auth: { apiKey: secret },
      transports: ['websocket'],
      reconnection: false,
    });
    await new Promise((r) => socket.once('ready', r));
    const refused = refusal(socket);
    const suspended = await call(api, 'PATCH', `/admin/tenants/${tenantId}`, {
      token: admin,
      body: { status: 'suspended' },
    });
    expect(suspended.status).toBe(200);
    expect(await refused).toMatchObject({ code: 'invalid_api_key' });
    // A new connection with the key is refused as well.
    const late = io(`${api.url}/v1/stream`, {
      auth: { apiKey: secret },
      transports: ['websocket'],
      reconnection: false,
    });
    const err = await new Promise<{ code: string }>((r) => late.once('error', r));
    expect(err.code).toBe('invalid_api_key');
    late.disconnect();
    expect(sub.status).toBe(202);
  });

  it('accepts a key with surrounding whitespace, as HTTP does', async () => {
    const http = await call(api, 'GET', '/v1/models', { token: ` ${api.demoKey} ` });
    expect(http.status).toBe(200);
    const socket = io(`${api.url}/v1/stream`, {
      auth: { apiKey: ` ${api.demoKey}\t` },
      transports: ['websocket'],
      reconnection: false,
    });
    // Before: refused with invalid_api_key.
    await new Promise((r, j) => {
      socket.once('ready', r);
      socket.once('error', j);
    });
    socket.disconnect();
  });
});

describe('SSE disconnects', () => {
  async function dropAfterFirstChunk(keepRunning: boolean): Promise<string> {
    const abort = new AbortController();
    const res = await fetch(`${api.url}/v1/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${api.demoKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        model: MODEL,
        prompt: 'drop',
        max_tokens: 60,
        seed: 2,
        stream: true,
        keep_running: keepRunning,
      }),
      signal: abort.signal,
    });
    const id = res.headers.get('x-request-id')!;
    const reader = res.body!.getReader();
    await reader.read();
    abort.abort();
    await reader.cancel().catch(() => undefined);
    return id;
  }

  it('cancels the job when the client drops the stream', async () => {
    const id = await dropAfterFirstChunk(false);
    const row = await accounted(id);
    expect(row.status).toBe('cancelled');
    expect(row.completionTokens).toBeLessThan(60);
  }, 90_000);

  it('keeps the job running when asked to', async () => {
    const id = await dropAfterFirstChunk(true);
    const row = await accounted(id);
    expect(row.status).toBe('succeeded');
    expect(row.completionTokens).toBe(60);
  }, 90_000);
});
