import { loadTokenizer } from '@pipedec/model/tokenizer';
import OpenAI from 'openai';
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
let client: OpenAI;

beforeAll(async () => {
  api = await startTestApi();
  head = new FakeHead(api.prefix);
  client = new OpenAI({ apiKey: api.demoKey, baseURL: `${api.url}/v1`, maxRetries: 0 });
}, 120_000);
afterAll(async () => {
  await head?.close();
  await api?.close();
});

describe('OpenAI-compatible endpoints with the official client', () => {
  it('lists the model', async () => {
    const models = await client.models.list();
    expect(models.data.map((m) => m.id)).toEqual([MODEL]);
  });

  it('returns a completion with usage, and records it once', async () => {
    const res = await client.completions.create({
      model: MODEL,
      prompt: 'Hello there',
      max_tokens: 6,
      seed: 3,
      temperature: 0,
    });
    expect(res.choices[0].text).toBe(fakeOutput(3, 6));
    expect(res.choices[0].finish_reason).toBe('length');
    expect(res.usage!.completion_tokens).toBe(6);
    const promptTokens = (await loadTokenizer(api.config.MODEL_DIR)).encode('Hello there').length;
    expect(res.usage!.prompt_tokens).toBe(promptTokens);
    const id = res.id.replace(/^cmpl-/, '');
    const row = await api.prisma.generationRequest.findUniqueOrThrow({ where: { id } });
    expect(row).toMatchObject({ status: 'succeeded', completionTokens: 6, promptTokens });
    expect(row.accountedAt).not.toBeNull();
    expect(row.costMicros).toBeGreaterThan(0n);
    expect(row.timeToFirstTokenMs).not.toBeNull();
  });

  it('streams a completion; with include_usage the final chunk carries usage', async () => {
    const stream = await client.completions.create({
      model: MODEL,
      prompt: 'Stream me',
      max_tokens: 5,
      seed: 9,
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = '';
    let finish: string | null | undefined;
    let last: OpenAI.Completions.Completion | undefined;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.text ?? '';
      finish ??= chunk.choices[0]?.finish_reason;
      last = chunk;
    }
    expect(text).toBe(fakeOutput(9, 5));
    expect(finish).toBe('length');
    expect(last!.usage).toMatchObject({
      completion_tokens: 5,
      total_tokens: 5 + 'Stream me'.length + 1,
    });
  });

  it('answers chat completions, whole and streamed, with the stop string honoured', async () => {
    const messages = [{ role: 'user' as const, content: 'Hi' }];
    const whole = await client.chat.completions.create({
      model: MODEL,
      messages,
      max_tokens: 4,
      seed: 1,
    });
    expect(whole.choices[0].message.content).toBe(fakeOutput(1, 4));
    const full = fakeOutput(2, 8);
    const stop = full.slice(2, 4);
    const stream = await client.chat.completions.create({
      model: MODEL,
      messages,
      max_tokens: 8,
      seed: 2,
      stop,
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = '';
    let usage: OpenAI.CompletionUsage | undefined | null;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta?.content ?? '';
      if (chunk.usage) usage = chunk.usage;
    }
    expect(text).toBe(full.slice(0, 4));
    expect(usage?.completion_tokens).toBe(4);
  });

  it('streams usage as OpenAI does: only in a last chunk with no choices, only with include_usage', async () => {
    // Reads every data record of a raw SSE response, so a usage field the official client
    // would ignore is seen too.
    const records = async (path: string, body: Record<string, unknown>) => {
      const res = await fetch(`${api.url}${path}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${api.demoKey}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: MODEL, max_tokens: 3, seed: 4, stream: true, ...body }),
      });
      expect(res.status).toBe(200);
      const data = (await res.text())
        .split('\n\n')
        .filter((r) => r.startsWith('data: '))
        .map((r) => r.slice(6));
      expect(data.pop()).toBe('[DONE]');
      return data.map((d) => JSON.parse(d) as { choices: { finish_reason: string | null }[] });
    };
    const endpoints: [string, Record<string, unknown>][] = [
      ['/v1/completions', { prompt: 'Count' }],
      ['/v1/chat/completions', { messages: [{ role: 'user', content: 'Count' }] }],
    ];
    for (const [path, input] of endpoints) {
      for (const options of [{}, { stream_options: { include_usage: false } }]) {
        const chunks = await records(path, { ...input, ...options });
        expect(chunks.at(-1)!.choices[0].finish_reason).toBe('length');
        for (const c of chunks) {
          expect(c).not.toHaveProperty('usage');
          expect(c.choices).toHaveLength(1);
        }
      }
      const chunks = await records(path, { ...input, stream_options: { include_usage: true } });
      const last = chunks.pop()!;
      expect(last.choices).toEqual([]);
      expect(last).toMatchObject({ usage: { completion_tokens: 3 } });
      expect(chunks.at(-1)!.choices[0].finish_reason).toBe('length');
      for (const c of chunks) {
        expect(c).toHaveProperty('usage', null);
        expect(c.choices).toHaveLength(1);
      }
    }
  });

  it('refuses an unknown model and a combination the pipeline cannot honour', async () => {
    await expect(client.completions.create({ model: 'gpt-4', prompt: 'x' })).rejects.toMatchObject({
      status: 404,
      code: 'model_not_found',
    });
    const res = await call(api, 'POST', '/v1/completions', {
      token: api.demoKey,
      body: { model: MODEL, prompt: 'x', decoding_method: 'pp', tree_width: 4 },
    });
    expect(res.status).toBe(400);
    expect(res.body.error).toMatchObject({ code: 'unsupported_combination', param: 'tree_width' });
  });
});

describe('speculative_acceptance', () => {
  it('defaults to exact with a seed and distribution without; a request may choose; the job carries it', async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ seed: 5 }, 'exact'],
      [{}, 'distribution'],
      [{ seed: 5, speculative_acceptance: 'distribution' }, 'distribution'],
      [{ speculative_acceptance: 'exact' }, 'exact'],
    ];
    for (const [extra, acceptance] of cases) {
      const res = await call(api, 'POST', '/v1/completions', {
        token: api.demoKey,
        body: { model: MODEL, prompt: 'x', max_tokens: 2, ...extra },
      });
      expect(res.status).toBe(200);
      const id = (res.body as { id: string }).id.replace(/^cmpl-/, '');
      expect({ extra, acceptance: head.jobs.get(id)?.sampling.acceptance }).toEqual({
        extra,
        acceptance,
      });
    }
  });

  it('refuses another value with a 400 that names the field and the choices', async () => {
    const res = await call(api, 'POST', '/v1/chat/completions', {
      token: api.demoKey,
      body: {
        model: MODEL,
        messages: [{ role: 'user', content: 'x' }],
        speculative_acceptance: 'fast',
      },
    });
    expect(res.status).toBe(400);
    expect(res.body.error).toMatchObject({ param: 'speculative_acceptance' });
    expect(errorOf(res).message).toContain('"exact" or "distribution"');
  });
});

describe('malformed bodies get a 4xx naming the field', () => {
  const cases: [string, unknown, string | null][] = [
    ['unknown field', { model: MODEL, prompt: 'x', tempreature: 1 }, 'tempreature'],
    ['wrong type', { model: MODEL, prompt: 'x', max_tokens: 'ten' }, 'max_tokens'],
    ['missing prompt', { model: MODEL }, 'prompt'],
    ['out of range', { model: MODEL, prompt: 'x', temperature: 5 }, 'temperature'],
    ['n > 1', { model: MODEL, prompt: 'x', n: 2 }, 'n'],
    [
      'unknown acceptance mode',
      { model: MODEL, prompt: 'x', speculative_acceptance: 'lossy' },
      'speculative_acceptance',
    ],
    ['not an object', [1, 2], null],
  ];
  it.each(cases)('%s', async (_name, body, param) => {
    const res = await call(api, 'POST', '/v1/completions', { token: api.demoKey, body });
    expect(res.status).toBe(400);
    expect(res.body.error).toMatchObject({ type: 'invalid_request_error', param });
  });

  it('invalid JSON is a 400, an oversized body a 413, a too-long prompt a 400 on prompt', async () => {
    const bad = await call(api, 'POST', '/v1/completions', {
      token: api.demoKey,
      rawBody: '{"model":',
    });
    expect(bad.status).toBe(400);
    expect(errorOf(bad).code).toBe('invalid_json');
    const big = await call(api, 'POST', '/v1/completions', {
      token: api.demoKey,
      body: { model: MODEL, prompt: 'x'.repeat(api.config.BODY_LIMIT_BYTES + 10) },
    });
    expect(big.status).toBe(413);
    const long = await call(api, 'POST', '/v1/completions', {
      token: api.demoKey,
      body: { model: MODEL, prompt: 'y'.repeat(5000) },
    });
    expect(long.status).toBe(400);
    expect(long.body.error).toMatchObject({ code: 'prompt_too_long', param: 'prompt' });
    const chat = await call(api, 'POST', '/v1/chat/completions', {
      token: api.demoKey,
      body: { model: MODEL, messages: [{ role: 'robot', content: 'x' }] },
    });
    expect(chat.status).toBe(400);
    expect(errorOf(chat).param).toBe('messages[0].role');
  });
});

describe('native jobs', () => {
  it('submits, reads the result, and keeps other tenants out', async () => {
    const admin = await adminLogin(api);
    const other = await call(api, 'POST', '/admin/tenants', {
      token: admin,
      body: { name: 'other', plan: 'demo' },
    });
    const key = await call(api, 'POST', `/admin/tenants/${other.body.id}/keys`, {
      token: admin,
      body: { name: 'k', scopes: ['generate', 'read-usage'] },
    });
    const otherKey = key.body.secret as string;

    const sub = await call(api, 'POST', '/v1/jobs', {
      token: api.demoKey,
      body: { model: MODEL, prompt: 'job', max_tokens: 3, seed: 5 },
    });
    expect(sub.status).toBe(202);
    const id = sub.body.id as string;
    const done = await waitFor(async () => {
      const r = await call(api, 'GET', `/v1/jobs/${id}`, { token: api.demoKey });
      return r.body.status === 'succeeded' ? r.body : undefined;
    });
    expect(done.output).toBe(fakeOutput(5, 3));
    expect(done.usage).toMatchObject({ completion_tokens: 3 });

    expect((await call(api, 'GET', `/v1/jobs/${id}`, { token: otherKey })).status).toBe(404);
    expect((await call(api, 'POST', `/v1/jobs/${id}/cancel`, { token: otherKey })).status).toBe(
      404,
    );
    const theirUsage = await call(api, 'GET', '/v1/usage', { token: otherKey });
    expect((theirUsage.body.totals as { requests: number }).requests).toBe(0);
    const ourUsage = await call(api, 'GET', '/v1/usage', { token: api.demoKey });
    expect((ourUsage.body.totals as { requests: number }).requests).toBeGreaterThan(0);
  });

  it('cancellation frees the pipeline for the next job', async () => {
    const long = await call(api, 'POST', '/v1/jobs', {
      token: api.demoKey,
      body: { model: MODEL, prompt: 'long', max_tokens: 200, seed: 1 },
    });
    const id = long.body.id as string;
    await waitFor(() => Promise.resolve(head.started.includes(id) ? true : undefined));
    const cancelled = await call(api, 'POST', `/v1/jobs/${id}/cancel`, { token: api.demoKey });
    expect(cancelled.status).toBe(200);
    const started = Date.now();
    const next = await client.completions.create({
      model: MODEL,
      prompt: 'next',
      max_tokens: 2,
      seed: 4,
    });
    expect(next.choices[0].text).toBe(fakeOutput(4, 2));
    // 200 tokens take over 400 ms on the fake head: the next job did not wait for them.
    expect(Date.now() - started).toBeLessThan(400);
    const row = await waitFor(async () => {
      const r = await api.prisma.generationRequest.findUniqueOrThrow({ where: { id } });
      return r.accountedAt ? r : undefined;
    });
    expect(row.status).toBe('cancelled');
    // The head (one job at a time) stopped the long job early, then ran the next one.
    expect(row.completionTokens).toBeLessThan(200);
    const nextRow = await api.prisma.generationRequest.findUniqueOrThrow({
      where: { id: next.id.replace(/^cmpl-/, '') },
    });
    expect(nextRow.startedAt!.getTime()).toBeGreaterThanOrEqual(row.finishedAt!.getTime());
  });
});

describe('admin playground', () => {
  it("runs a completion as a tenant's key, billed to it and audited", async () => {
    const admin = await adminLogin(api);
    const keys = await call<{ data: { id: string; scopes: string[] }[] }>(
      api,
      'GET',
      `/admin/tenants/${api.demoTenantId}/keys`,
      { token: admin },
    );
    const keyId = keys.body.data.find((k) => k.scopes.includes('generate'))!.id;
    const res = await call(
      api,
      'POST',
      `/admin/tenants/${api.demoTenantId}/keys/${keyId}/completions`,
      {
        token: admin,
        body: { model: MODEL, prompt: 'play', max_tokens: 3, seed: 6 },
      },
    );
    expect(res.status).toBe(200);
    expect((res.body.choices as { text: string }[])[0].text).toBe(fakeOutput(6, 3));
    const id = (res.body.id as string).replace(/^cmpl-/, '');
    const row = await api.prisma.generationRequest.findUniqueOrThrow({ where: { id } });
    expect(row).toMatchObject({ tenantId: api.demoTenantId, apiKeyId: keyId, status: 'succeeded' });
    const audit = await api.prisma.auditLog.findFirstOrThrow({ where: { targetId: id } });
    expect(audit.action).toBe('api_key.use_by_admin');
    expect(audit.actor.startsWith('admin:')).toBe(true);
    // A tenant's key cannot use it, and another tenant's key id is not found.
    const asTenant = await call(
      api,
      'POST',
      `/admin/tenants/${api.demoTenantId}/keys/${keyId}/completions`,
      {
        token: api.demoKey,
        body: { model: MODEL, prompt: 'x' },
      },
    );
    expect(asTenant.status).toBe(401);
    const wrong = await call(
      api,
      'POST',
      `/admin/tenants/${api.demoTenantId}/keys/${crypto.randomUUID()}/completions`,
      { token: admin, body: { model: MODEL, prompt: 'x' } },
    );
    expect(wrong.status).toBe(404);
  });
});
