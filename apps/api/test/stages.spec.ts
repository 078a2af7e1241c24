// The API against real stage processes (apps/stage-node, compiled) on the bundled demo pair
// (models/demo-target, models/demo-draft): the job and event contracts as both sides implement
// them, and every greedy output checked against the target model alone (AR, run here on the
// whole model in this process). One pipeline of 2 stages serves the whole file.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  decodingLabel,
  ADMIN_LIVE,
  jobStatusSchema,
  liveTicketSchema,
  pipelinesSnapshotSchema,
  type PipelinesSnapshot,
  type RequestEvent,
} from '@pipedec/contracts';
import OpenAI from 'openai';
import { io, type Socket } from 'socket.io-client';
import { LocalCluster } from '@pipedec/testkit/local-cluster';
import { openGreedyReference, type GreedyReference } from '@pipedec/testkit/model';
import { adminLogin, call, errorOf, startTestApi, type TestApi, waitFor } from './test-api.js';

const MODEL = 'pipedec-demo';
/** Scripture: the demo model continues it greedily for 200 tokens and more (checked with AR). */
const LONG_PROMPT = 'And the LORD spake unto Moses, saying,';
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const TARGET = path.join(ROOT, 'models/demo-target');
const DRAFT = path.join(ROOT, 'models/demo-draft');

let api: TestApi;
let cluster: LocalCluster;
let client: OpenAI;
let reference: GreedyReference;

beforeAll(async () => {
  api = await startTestApi({ MODEL_NAME: MODEL, MODEL_DIR: TARGET });
  cluster = await LocalCluster.start({
    pipelineId: 'p-test',
    stages: 2,
    checkpointDir: TARGET,
    draftCheckpointDir: DRAFT,
    redisUrl: api.config.REDIS_URL,
    redisPrefix: api.prefix,
    env: { MODEL_NAME: MODEL },
    readyTimeoutMs: 90_000,
  });
  reference = await openGreedyReference(TARGET);
  client = new OpenAI({ apiKey: api.demoKey, baseURL: `${api.url}/v1`, maxRetries: 0 });
}, 180_000);

afterAll(async () => {
  await cluster?.stop();
  await reference?.close();
  await api?.close();
}, 60_000);

/** What the target model alone writes after `prompt`, greedy (the API tokenizes the same way). */
function arText(prompt: string, maxTokens: number): Promise<string> {
  return reference.text(prompt, maxTokens);
}

describe('API with real stage processes', () => {
  it('reports the pipeline in /health', async () => {
    const h = await call(api, 'GET', '/health');
    expect(h.body).toMatchObject({ status: 'ok', pipelines: { ready: 1, total: 1 } });
  });

  // First after /health: the head's chooser has seen no request of this class yet.
  it('decodes with auto by default: tries each candidate twice, then runs the fastest, lossless', async () => {
    const expected = await arText('The pipeline', 12);
    const choices: { method: string; reason: string; width: number }[] = [];
    // Five candidates (PipeDec and STPP at widths 4 and 2, PP), two requests each, then one.
    for (let i = 0; i < 11; i++) {
      const res = await client.completions.create({
        model: MODEL,
        prompt: 'The pipeline',
        max_tokens: 12,
        temperature: 0,
      });
      expect(res.choices[0].text).toBe(expected);
      const id = res.id.replace(/^cmpl-/, '');
      const row = await api.prisma.generationRequest.findUniqueOrThrow({ where: { id } });
      expect(row.method).toBe('auto');
      const job = await call(api, 'GET', `/v1/jobs/${id}`, { token: api.demoKey });
      expect(job.body.decoding).toEqual(row.decoding);
      choices.push(row.decoding as { method: string; reason: string; width: number });
    }
    const tried = choices.slice(0, 10);
    expect(tried.every((c) => c.reason === 'untried')).toBe(true);
    for (const m of ['pipedec/4', 'pipedec/2', 'stpp/4', 'stpp/2', 'pp/1']) {
      expect(tried.filter((c) => `${c.method}/${c.width}` === m)).toHaveLength(2);
    }
    expect(choices[10].reason).toBe('fastest');
    // It shows what it weighed: every candidate's estimate, the one it ran the lowest.
    const weighed = (choices[10] as unknown as { estimates: Record<string, number> }).estimates;
    expect(Object.keys(weighed).sort()).toEqual(
      ['pipedec/w2', 'pipedec/w4', 'pp', 'stpp/w2', 'stpp/w4'].sort(),
    );
    const ran = decodingLabel(choices[10]);
    expect(weighed[ran]).toBe(Math.min(...Object.values(weighed)));
    expect(choices.find((c) => c.method === 'pp')?.width).toBe(1);
  }, 180_000);

  it("generates the target's greedy text whole and streamed, for every decoding method", async () => {
    const expected = await arText('The pipeline', 8);
    expect(expected.length).toBeGreaterThan(0);
    for (const method of ['pipedec', 'stpp', 'pp'] as const) {
      const extra = { decoding_method: method, tree_width: method === 'pp' ? 1 : 2 };
      const full = await client.completions.create({
        model: MODEL,
        prompt: 'The pipeline',
        max_tokens: 8,
        temperature: 0,
        ...extra,
      } as OpenAI.CompletionCreateParamsNonStreaming);
      expect(full.choices[0].text).toBe(expected);
      const stream = await client.completions.create({
        model: MODEL,
        prompt: 'The pipeline',
        max_tokens: 8,
        temperature: 0,
        stream: true,
        ...extra,
      } as OpenAI.CompletionCreateParamsStreaming);
      let text = '';
      for await (const chunk of stream) text += chunk.choices[0]?.text ?? '';
      expect(text).toBe(expected);
      const row = await api.prisma.generationRequest.findUniqueOrThrow({
        where: { id: full.id.replace(/^cmpl-/, '') },
      });
      expect(row).toMatchObject({ status: 'succeeded', method });
      expect(row.timesteps).toBeGreaterThan(0);
    }
  }, 120_000);

  it("reports a job's timesteps, tokens per timestep, hit rate and time split, for every method", async () => {
    for (const method of ['pipedec', 'stpp', 'pp'] as const) {
      const res = await client.completions.create({
        model: MODEL,
        prompt: LONG_PROMPT,
        max_tokens: 24,
        temperature: 0,
        decoding_method: method,
        tree_width: method === 'pp' ? 1 : 2,
      } as OpenAI.CompletionCreateParamsNonStreaming);
      const tokens = res.usage!.completion_tokens;
      expect(tokens).toBe(24);
      const id = res.id.replace(/^cmpl-/, '');
      const reply = await call(api, 'GET', `/v1/jobs/${id}`, { token: api.demoKey });
      const job = jobStatusSchema.parse(reply.body);
      const s = job.stats!;
      const d = job.decoding!;
      // No step commits more than a tree's depth (or width) plus the target's own token.
      expect(s.timesteps).toBeGreaterThanOrEqual(tokens / (Math.max(d.width, d.depth) + 1));
      expect(s.tokensPerTimestep).toBeGreaterThan(0);
      if (method === 'pp') {
        expect(s.hitRate).toBeNull();
        expect(s.time.draftMs).toBe(0);
      } else {
        expect(s.verifiedTokens).toBeGreaterThan(0);
        expect(s.verifiedTokens).toBeLessThanOrEqual(tokens);
        expect(s.acceptedTokens).toBeLessThanOrEqual(s.verifiedTokens);
        expect(s.hitRate).toBeCloseTo(s.acceptedTokens / s.verifiedTokens, 12);
        expect(s.time.draftMs).toBeGreaterThan(0);
      }
      const { wallMs, draftMs, stageComputeMs, transferMs } = s.time;
      for (const part of [draftMs, stageComputeMs, transferMs])
        expect(part).toBeGreaterThanOrEqual(0);
      expect(stageComputeMs).toBeGreaterThan(0);
      expect(transferMs).toBeGreaterThan(0); // two stage processes: every packet crosses a hop
      expect(draftMs + stageComputeMs + transferMs).toBeLessThanOrEqual(wallMs + 1e-9);
      // The head's run fits within what the API measured from queueing to the end.
      expect(wallMs).toBeLessThanOrEqual(job.timings.totalLatencyMs!);
      // The stages' summed busy time is the compute's upper bound.
      expect(stageComputeMs).toBeLessThanOrEqual(s.stageSeconds * 1000 + 1e-9);
    }
  }, 120_000);

  it('samples with distribution acceptance across the stage processes and reports the mode', async () => {
    // No seed: the default is distribution. The stages send their sampled distributions back
    // (wire extension 2) and the head accepts drafted tokens by rejection sampling.
    for (const method of ['pipedec', 'stpp'] as const) {
      const res = await client.completions.create({
        model: MODEL,
        prompt: LONG_PROMPT,
        max_tokens: 16,
        temperature: 1,
        decoding_method: method,
        tree_width: 4,
      } as OpenAI.CompletionCreateParamsNonStreaming);
      // Sampling may draw the end-of-text token before the limit.
      expect(['length', 'stop']).toContain(res.choices[0].finish_reason);
      expect(res.usage?.completion_tokens).toBeGreaterThan(0);
      const id = res.id.replace(/^cmpl-/, '');
      const job = await call(api, 'GET', `/v1/jobs/${id}`, { token: api.demoKey });
      expect(job.body.decoding).toMatchObject({ method, acceptance: 'distribution' });
      const row = await api.prisma.generationRequest.findUniqueOrThrow({ where: { id } });
      expect(row).toMatchObject({ status: 'succeeded', method });
    }
    // A seed: exact by default, and the same tokens again.
    const seeded = async () =>
      client.completions.create({
        model: MODEL,
        prompt: LONG_PROMPT,
        max_tokens: 12,
        temperature: 1,
        seed: 7,
        decoding_method: 'pipedec',
        tree_width: 4,
      } as OpenAI.CompletionCreateParamsNonStreaming);
    const a = await seeded();
    const b = await seeded();
    expect(b.choices[0].text).toBe(a.choices[0].text);
    const job = await call(api, 'GET', `/v1/jobs/${a.id.replace(/^cmpl-/, '')}`, {
      token: api.demoKey,
    });
    expect(job.body.decoding).toMatchObject({ acceptance: 'exact' });
  }, 120_000);

  it('top_k 1 samples only the likeliest token: the greedy text at any temperature', async () => {
    const expected = await arText('The pipeline', 10);
    for (const method of ['pipedec', 'stpp', 'pp'] as const) {
      const res = await client.completions.create({
        model: MODEL,
        prompt: 'The pipeline',
        max_tokens: 10,
        temperature: 1.5,
        top_k: 1,
        decoding_method: method,
        tree_width: method === 'pp' ? 1 : 4,
      } as OpenAI.CompletionCreateParamsNonStreaming);
      expect(res.choices[0].text).toBe(expected);
      const row = await api.prisma.generationRequest.findUniqueOrThrow({
        where: { id: res.id.replace(/^cmpl-/, '') },
      });
      expect(row.parameters).toMatchObject({ sampling: { topK: 1 } });
    }
    for (const top_k of [-1, 1.5, 100_001]) {
      const bad = await call(api, 'POST', '/v1/completions', {
        token: api.demoKey,
        body: { model: MODEL, prompt: 'x', max_tokens: 2, top_k },
      });
      expect(bad.status).toBe(400);
      expect(errorOf(bad)).toMatchObject({ param: 'top_k' });
      expect(errorOf(bad).message).toContain('top_k must be a whole number from 0');
    }
  }, 120_000);

  it('cancellation frees the pipeline for the next job', async () => {
    const long = await call(api, 'POST', '/v1/jobs', {
      token: api.demoKey,
      body: { model: MODEL, prompt: LONG_PROMPT, max_tokens: 200, temperature: 0 },
    });
    const id = long.body.id as string;
    // Cancel only once the head runs it: that is what must free the pipeline. Fail, rather
    // than test a queued job's cancel, if it never starts.
    await waitFor(async () => {
      const s = await call(api, 'GET', `/v1/jobs/${id}`, { token: api.demoKey });
      return s.body.status === 'running' ? true : undefined;
    }, 10_000);
    await call(api, 'POST', `/v1/jobs/${id}/cancel`, { token: api.demoKey });
    const next = await client.completions.create({
      model: MODEL,
      prompt: 'next',
      max_tokens: 3,
      temperature: 0,
    });
    expect(next.choices[0].text).toBe(await arText('next', 3));
    const row = await waitFor(async () => {
      const r = await api.prisma.generationRequest.findUniqueOrThrow({ where: { id } });
      return r.accountedAt ? r : undefined;
    }, 5_000);
    expect(row.status).toBe('cancelled');
    expect(row.completionTokens).toBeLessThan(200);
  }, 120_000);

  it('answers a chat completion through the chat template', async () => {
    const chat = await client.chat.completions.create({
      model: MODEL,
      messages: [{ role: 'user', content: 'Hi' }],
      max_tokens: 4,
      temperature: 0,
    });
    expect(chat.choices[0].message.role).toBe('assistant');
    expect(chat.usage!.prompt_tokens).toBeGreaterThan(2);
  }, 60_000);

  it('socket.io resumes after a forced disconnect with nothing lost or duplicated', async () => {
    const sub = await call(api, 'POST', '/v1/jobs', {
      token: api.demoKey,
      body: { model: MODEL, prompt: 'resume', max_tokens: 64, temperature: 0 },
    });
    const requestId = sub.body.id as string;
    const socket = io(`${api.url}/v1/stream`, {
      auth: { apiKey: api.demoKey },
      transports: ['websocket'],
      reconnectionDelay: 50,
      reconnectionDelayMax: 100,
    });
    const ids: string[] = [];
    const texts = new Map<number, string>();
    let dropped = false;
    let readies = 0;
    const ended = new Promise<void>((resolve) => socket.on('end', () => resolve()));
    socket.on('event', (m: { id: string; event: RequestEvent }) => {
      ids.push(m.id);
      if (m.event.type === 'token') texts.set(m.event.index, m.event.text);
      if (!dropped && m.event.type === 'token') {
        dropped = true;
        socket.io.engine.close(); // mid-stream: the client reconnects by itself
      }
    });
    socket.on('ready', () => {
      readies++;
      socket.emit('subscribe', { requestId, lastEventId: ids.at(-1) });
    });
    await ended;
    socket.disconnect();
    expect(readies).toBe(2);
    const stream = await api.redis.xrange(`${api.prefix}req:${requestId}:events`, '-', '+');
    expect(ids).toEqual(stream.map(([id]) => id));
    expect([...texts.values()].join('')).toBe(await arText('resume', 64));
  }, 60_000);

  it("50 concurrent requests never exceed a small token quota, and each gets the target's text", async () => {
    const admin = await adminLogin(api);
    const quota = 300;
    const t = await call(api, 'POST', '/admin/tenants', {
      token: admin,
      body: {
        name: 'burst-real',
        plan: 'demo',
        tokensPerMonth: quota,
        tokensPerMinute: 100_000,
        requestsPerMinute: 1000,
        concurrentRequests: 100,
      },
    });
    expect(t.status).toBe(201);
    const tenantId = t.body.id as string;
    const k = await call(api, 'POST', `/admin/tenants/${tenantId}/keys`, {
      token: admin,
      body: { name: 'k', scopes: ['generate'] },
    });
    const body = { model: MODEL, prompt: 'quota', max_tokens: 20, temperature: 0 };
    const replies = await Promise.all(
      Array.from({ length: 50 }, () =>
        call(api, 'POST', '/v1/completions', { token: k.body.secret as string, body }),
      ),
    );
    const ok = replies.filter((r) => r.status === 200);
    const limited = replies.filter((r) => r.status === 429);
    expect(ok.length + limited.length).toBe(50);
    expect(ok.length).toBeGreaterThan(0);
    for (const r of limited) expect(errorOf(r).code).toBe('monthly_quota_exceeded');
    const expected = await arText('quota', 20);
    for (const r of ok) expect((r.body.choices as { text: string }[])[0].text).toBe(expected);
    const used = ok.reduce(
      (s, r) => s + (r.body.usage as { total_tokens: number }).total_tokens,
      0,
    );
    expect(used).toBeLessThanOrEqual(quota);
    // PostgreSQL and the Redis counter agree with what the replies billed.
    const agg = await api.prisma.generationRequest.aggregate({
      where: { tenantId, accountedAt: { not: null } },
      _sum: { promptTokens: true, completionTokens: true },
      _count: { _all: true },
    });
    expect(agg._count._all).toBe(ok.length);
    expect((agg._sum.promptTokens ?? 0) + (agg._sum.completionTokens ?? 0)).toBe(used);
    const month = await api.redis.keys(`${api.prefix}quota:${tenantId}:month:*`);
    expect(Number(await api.redis.get(month[0]))).toBe(used);
  }, 120_000);

  it('shows admins the live pipeline with its stages and recent statistics', async () => {
    const admin = await adminLogin(api);
    const res = await call<PipelinesSnapshot>(api, 'GET', '/admin/pipelines', { token: admin });
    expect(res.status).toBe(200);
    const snap = pipelinesSnapshotSchema.parse(res.body);
    expect(snap.pipelines).toHaveLength(1);
    const p = snap.pipelines[0];
    expect(p).toMatchObject({ pipelineId: 'p-test', whole: true, problems: [] });
    expect(p.stages.map((s) => [s.stageIndex, s.health])).toEqual([
      [0, 'healthy'],
      [1, 'healthy'],
    ]);
    expect(p.stages[1].layerEnd).toBe(16);
    // Earlier tests ran requests on it.
    expect(p.tokensPerTimestep).toBeGreaterThan(0);
    expect(p.hitRate).not.toBeNull();
    // The pooled figures are sums over the same rows a job's result reads.
    const recent = (
      await api.prisma.generationRequest.findMany({
        where: { pipelineId: 'p-test', accountedAt: { not: null }, timesteps: { gt: 0 } },
        orderBy: { finishedAt: 'desc' },
        take: p.recentRequests,
      })
    ).map((r) => r.stats as { timesteps: number; time: { wallMs: number } });
    expect(p.recentRequests).toBeGreaterThan(0);
    expect(p.timesteps).toBe(recent.reduce((a, r) => a + r.timesteps, 0));
    expect(p.time!.wallMs).toBeCloseTo(
      recent.reduce((a, r) => a + r.time.wallMs, 0),
      6,
    );
    expect(p.time!.draftMs + p.time!.stageComputeMs + p.time!.transferMs).toBeLessThanOrEqual(
      p.time!.wallMs,
    );
    const rows = await api.prisma.generationRequest.findMany({ where: { status: 'succeeded' } });
    expect(rows.every((r) => r.pipelineId === 'p-test')).toBe(true);
  });

  describe("the admins' live namespace", () => {
    const connect = (auth: Record<string, unknown>): Socket =>
      io(`${api.url}${ADMIN_LIVE.namespace}`, {
        auth,
        transports: ['websocket'],
        reconnection: false,
      });
    const refusal = (socket: Socket) =>
      new Promise<string | undefined>((resolve, reject) => {
        socket.on('connect', () => reject(new Error('connected without a valid ticket')));
        socket.on('connect_error', (e: Error & { data?: { code?: string } }) =>
          resolve(e.data?.code),
        );
      });
    const ticket = async (admin: string) => {
      const res = await call(api, 'POST', '/admin/live/tickets', { token: admin });
      expect(res.status).toBe(201);
      return liveTicketSchema.parse(res.body).ticket;
    };

    it('admits a connection only with a fresh ticket bought with an admin session', async () => {
      expect((await call(api, 'POST', '/admin/live/tickets')).status).toBe(401);
      const withKey = await call(api, 'POST', '/admin/live/tickets', { token: api.demoKey });
      expect(withKey.status).toBe(401);
      expect(await refusal(connect({}))).toBe('missing_ticket');
      expect(await refusal(connect({ ticket: 'pdl_made-up' }))).toBe('invalid_ticket');

      const admin = await adminLogin(api);
      const t = await ticket(admin);
      const first = connect({ ticket: t });
      await new Promise<void>((resolve) => first.on('connect', () => resolve()));
      // Single use: the same ticket does not open a second connection.
      expect(await refusal(connect({ ticket: t }))).toBe('invalid_ticket');
      first.disconnect();
      // A ticket of a session that has since ended is refused too.
      const late = await ticket(admin);
      await call(api, 'POST', '/admin/logout', { token: admin });
      expect(await refusal(connect({ ticket: late }))).toBe('session_ended');
    });

    it("pushes a snapshot every second, with each stage's measured utilisation", async () => {
      const admin = await adminLogin(api);
      const socket = connect({ ticket: await ticket(admin) });
      const snaps: PipelinesSnapshot[] = [];
      socket.on(ADMIN_LIVE.pipelines, (raw: unknown) =>
        snaps.push(pipelinesSnapshotSchema.parse(raw)),
      );
      await new Promise<void>((resolve) => socket.on('connect', () => resolve()));
      type Ack = { ok: boolean; error?: { code: string; message: string } };
      const subscribe = (topic: string): Promise<Ack> =>
        socket.emitWithAck(ADMIN_LIVE.subscribe, { topic }) as Promise<Ack>;
      expect(await subscribe('pipelines')).toEqual({ ok: true });
      const wrong = await subscribe('tenants');
      expect(wrong.ok).toBe(false);
      expect(wrong.error?.code).toBe('invalid_body');
      expect(wrong.error?.message).toContain('topic');

      await client.completions.create({
        model: MODEL,
        prompt: 'The pipeline',
        max_tokens: 48,
        temperature: 0,
      });
      const peakOf = () =>
        [0, 1].map((stage) =>
          Math.max(
            ...snaps.map(
              (s) => s.pipelines[0]?.stages.find((x) => x.stageIndex === stage)?.utilisation ?? -1,
            ),
          ),
        );
      // Wait for the pushes (each stage's next heartbeat carries its busy share), up to 10 s.
      await waitFor(
        () => (snaps.length >= 3 && peakOf().every((u) => u > 0) ? true : undefined),
        10_000,
      );

      const at = snaps.map((s) => s.at);
      expect([...at].sort((a, b) => a - b)).toEqual(at);
      expect(new Set(at).size).toBe(at.length);
      const peak = peakOf();
      // Both stages computed for the request, so each reported a busy share above zero.
      for (const u of peak) {
        expect(u).toBeGreaterThan(0);
        expect(u).toBeLessThanOrEqual(1);
      }

      // Signing out ends the connection at the next session check.
      const expired = new Promise<void>((resolve) =>
        socket.on(ADMIN_LIVE.expired, () => resolve()),
      );
      const closed = new Promise<string>((resolve) => socket.on('disconnect', resolve));
      await call(api, 'POST', '/admin/logout', { token: admin });
      await expired;
      expect(await closed).toBe('io server disconnect');
    }, 60_000);
  });
});
