// Benchmark of the tenant API (npm run bench:api), against real PostgreSQL, Redis, the compiled
// API (`node apps/api/dist/main.js`) and real stage processes on the bundled demo pair.
//
// (a) What the API, queue and stream add over the engine alone. Each request's own event
//     stream says what the engine took: the head writes `started` when it takes the job and
//     one `token` record per committed token, stamped with its clock. Engine TTFT = first
//     token - started; engine time per token = (last token - first token) / (n - 1). The same
//     request seen by a client of the API (POST /v1/completions stream:true, or POST /v1/jobs +
//     socket.io) gives the client's TTFT (from sending the request to reading the first text)
//     and time per token; "added" is the per-request difference, medians over all requests.
//     A direct baseline in the same run puts the same job on the BullMQ queue and follows the
//     Redis stream, with no API: what the queue and stream alone add.
// (b) Admission: requests per second POST /v1/jobs accepts (authenticate, reserve quota,
//     record in PostgreSQL, enqueue) under autocannon, with the pipeline stopped so jobs just
//     queue, p50 and p99 latency; at saturation and at a fixed 300 requests/s. Afterwards every
//     admitted request must have one row, one queued job and one quota reservation, and the
//     counters must equal the sum of the reservations.
// (c) Load (#16): --stream-clients streaming clients at once through the API on the pipeline
//     `npm start` runs (4 stages, QUEUE_CONCURRENCY 8): TTFT p50/p99, time per token, tokens/s,
//     nothing lost (every token streamed, recorded and billed once) and where TTFT goes
//     (bench/api-stream-load.ts says how). Runs between (a) and (b), whose queued jobs would
//     otherwise land on its pipeline.
//
// --skip takes latency, stream and load (comma list). Prints markdown tables and writes
// bench/results/api.json (or --out); a skipped section keeps what the file held for it.
import {
  eventsKey,
  GENERATION_JOB_NAME,
  GENERATION_JOB_VERSION,
  GENERATION_QUEUE,
  queuePrefix,
  type GenerationJob,
  type RequestEvent,
} from '@pipedec/contracts';
import { createPrismaClient, newApiKeySecret, type PrismaClient } from '@pipedec/db';
import { loadTokenizer } from '@pipedec/model';
import { createTestDatabase, deleteRedisPrefix, redisPrefix, testEnv } from '@pipedec/testkit';
import { Job, Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import http from 'node:http';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { io, type Socket } from 'socket.io-client';
import { LocalCluster } from '@pipedec/testkit/local-cluster';
import { now, postJson, sseData, startApi, stopChild, type ApiProcess } from './api-process.js';
import {
  combineRuns,
  measureStreamLoad,
  STREAM_TARGETS,
  streamLoadTable,
  type StreamLoadResult,
} from './api-stream-load.js';
import { AUTO_TARGET, autoTable, measureAuto } from './api-auto.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const MODEL = 'pipedec-demo';
const TARGETS = { ttftAddedMs: 5, perTokenAddedMs: 0.2, rps: 300, p99Ms: 50 };

const { values: args } = parseArgs({
  options: {
    stages: { type: 'string', default: '2' },
    rounds: { type: 'string', default: '4' },
    prompts: { type: 'string', default: '4' },
    tokens: { type: 'string', default: '32' },
    method: { type: 'string', default: 'pipedec' },
    width: { type: 'string', default: '2' },
    'load-runs': { type: 'string', default: '3' },
    'load-seconds': { type: 'string', default: '10' },
    profile: { type: 'boolean', default: false }, // write a CPU profile of the API
    connections: { type: 'string', default: '8' },
    rate: { type: 'string', default: String(TARGETS.rps) },
    skip: { type: 'string', default: '' }, // "latency", "stream", "load", "auto", comma-separated
    out: { type: 'string', default: path.join(ROOT, 'bench', 'results', 'api.json') },
    // Niceness of the stage processes in (a); 0 = scheduled like everything else.
    'stage-nice': { type: 'string', default: '0' },
    // Idle time before each request in (a); 0 = back to back.
    'gap-ms': { type: 'string', default: '0' },
    // (c): clients, the window their starts are spread over (0 = all at once), the draw's seed.
    'stream-clients': { type: 'string', default: '30' },
    'stream-stagger-ms': { type: 'string', default: '0' },
    'stream-seed': { type: 'string', default: '1' },
    'stream-runs': { type: 'string', default: '5' },
    // (c)'s head concurrency; default npm start's. Another value is a diagnosis, not the target.
    'stream-queue-concurrency': { type: 'string', default: '' },
    // (d): auto against the fixed methods: rounds, tokens, prompts per set, temperatures.
    'auto-rounds': { type: 'string', default: '3' },
    'auto-tokens': { type: 'string', default: '64' },
    'auto-prompts': { type: 'string', default: '2' },
    'auto-temperatures': { type: 'string', default: '0,1' },
  },
});
const STAGES = Number(args.stages);
const ROUNDS = Number(args.rounds);
const PROMPTS = Number(args.prompts);
const MAX_TOKENS = Number(args.tokens);
const METHOD = args.method as GenerationJob['method'];
const WIDTH = Number(args.width);
const LOAD_RUNS = Number(args['load-runs']);
const LOAD_SECONDS = Number(args['load-seconds']);
const CONNECTIONS = Number(args.connections);
const RATE = Number(args.rate);
const STAGE_NICE = Number(args['stage-nice']);
const GAP_MS = Number(args['gap-ms']);
const STREAM_CLIENTS = Number(args['stream-clients']);
const STREAM_STAGGER_MS = Number(args['stream-stagger-ms']);
const STREAM_SEED = Number(args['stream-seed']);
const STREAM_RUNS = Number(args['stream-runs']);
/**
 * (c)'s pipeline as `npm start` runs it: apps/stage-node's start-pipeline launcher starts 4
 * stages with QUEUE_CONCURRENCY 8 and WIRE_DTYPE fp32 unless .env says otherwise.
 */
const NPM_START_STAGES = 4;
const NPM_START_STAGE_ENV = {
  QUEUE_CONCURRENCY: '8',
  WIRE_DTYPE: 'fp32',
  // The stage nodes' default (stage-config.ts); testkit's clusters turn it off for tests.
  WARMUP_TOKENS: '3072',
};
const STREAM_STAGE_ENV = {
  ...NPM_START_STAGE_ENV,
  QUEUE_CONCURRENCY: args['stream-queue-concurrency'] || NPM_START_STAGE_ENV.QUEUE_CONCURRENCY,
};

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const f = (x: number, d = 2): string => (Number.isFinite(x) ? x.toFixed(d) : '-');

// ---------------------------------------------------------------- setup

interface Tenant {
  id: string;
  key: string;
}

/** A tenant on a plan whose limits never refuse the benchmark's load. */
async function benchTenant(prisma: PrismaClient, name: string): Promise<Tenant> {
  const plan = await prisma.plan.upsert({
    where: { name: 'bench-unlimited' },
    create: {
      name: 'bench-unlimited',
      priority: 1,
      requestsPerMinute: 1_000_000,
      tokensPerMinute: 1_000_000_000,
      tokensPerMonth: 1_000_000_000_000n,
      concurrentRequests: 1_000_000,
      maxPromptTokens: 1024,
      maxOutputTokens: 256,
      priceInputPer1kMicros: 500n,
      priceOutputPer1kMicros: 1500n,
    },
    update: {},
  });
  const tenant = await prisma.tenant.create({ data: { name, planId: plan.id } });
  const { secret, prefix, hash } = newApiKeySecret();
  await prisma.apiKey.create({
    data: {
      tenantId: tenant.id,
      name: 'bench',
      prefix,
      secretHash: hash,
      scopes: ['generate', 'read-usage'],
    },
  });
  return { id: tenant.id, key: secret };
}

async function prompts(): Promise<string[]> {
  const texts: string[] = [];
  for (const f of ['quotes.jsonl', 'code.jsonl', 'scripture.jsonl']) {
    const lines = (await readFile(path.join(ROOT, 'models/prompts', f), 'utf8')).split('\n');
    for (const line of lines.slice(0, 2)) {
      if (line) texts.push((JSON.parse(line) as { text: string }).text.slice(0, 160));
    }
  }
  return texts.slice(0, PROMPTS);
}

/** (d)'s prompts: the first n of each set, 160 characters each, by set. */
async function autoSets(n: number): Promise<{ name: string; texts: string[] }[]> {
  const sets = [];
  for (const name of ['quotes', 'code', 'scripture']) {
    const lines = (await readFile(path.join(ROOT, 'models/prompts', `${name}.jsonl`), 'utf8'))
      .split('\n')
      .filter(Boolean);
    sets.push({
      name,
      texts: lines.slice(0, n).map((l) => (JSON.parse(l) as { text: string }).text.slice(0, 160)),
    });
  }
  return sets;
}

/** (c)'s prompts: the first 8 of each set, 160 characters each. */
async function streamPrompts(): Promise<string[]> {
  const texts: string[] = [];
  for (const f of ['quotes.jsonl', 'code.jsonl', 'scripture.jsonl']) {
    const lines = (await readFile(path.join(ROOT, 'models/prompts', f), 'utf8')).split('\n');
    for (const line of lines.filter(Boolean).slice(0, 8)) {
      texts.push((JSON.parse(line) as { text: string }).text.slice(0, 160));
    }
  }
  return texts;
}

// ---------------------------------------------------------------- (a) latency over the engine

type Path = 'api-sse' | 'api-socketio' | 'direct-queue';
const PATHS: Path[] = ['api-sse', 'api-socketio', 'direct-queue'];

/** One request as its client saw it: epoch ms of sending and of each text received. */
interface ClientTimes {
  requestId: string;
  sentAt: number;
  textAt: number[];
}

interface Sample {
  path: Path;
  prompt: number;
  tokens: number;
  clientTtftMs: number;
  clientPerTokenMs: number;
  engineTtftMs: number;
  enginePerTokenMs: number;
  /** started.at - sentAt: admission, queue and the head taking the job (clocks of one host). */
  toStartMs: number;
  /** client's first text - head's first token record: the stream's delivery. */
  firstDeliveryMs: number;
  /** sent -> in BullMQ (admission and the fair scheduler's handoff, or a plain add). */
  toBullMqMs: number;
  /** in BullMQ -> a head's worker took it. */
  pickupMs: number;
}

/**
 * The timed requests go through node:http on a keep-alive agent: the leanest Node client, so
 * the client's own HTTP stack (fetch's is about 1 ms more per request here) counts as little
 * as possible in what the service is said to add.
 */
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

/** POSTs `body` as JSON; resolves with the response once its headers arrive. */
function post(url: string, key: string, body: unknown): Promise<http.IncomingMessage> {
  return postJson(url, key, JSON.stringify(body), agent);
}

async function textOf(res: http.IncomingMessage): Promise<string> {
  let text = '';
  res.setEncoding('utf8');
  for await (const part of res) text += part as string;
  return text;
}

async function viaSse(api: ApiProcess, t: Tenant, prompt: string): Promise<ClientTimes> {
  const sentAt = now();
  const res = await post(`${api.url}/v1/completions`, t.key, body(prompt, true));
  if (res.statusCode !== 200) throw new Error(`SSE: ${res.statusCode} ${await textOf(res)}`);
  const requestId = res.headers['x-request-id'] as string;
  const textAt: number[] = [];
  for await (const { at, data } of sseData(res)) {
    if (data === '[DONE]') continue;
    const chunk = JSON.parse(data) as { choices?: { text?: string }[] };
    if (chunk.choices?.[0]?.text) textAt.push(at);
  }
  return { requestId, sentAt, textAt };
}

async function viaSocket(api: ApiProcess, t: Tenant, socket: Socket, prompt: string) {
  const sentAt = now();
  const res = await post(`${api.url}/v1/jobs`, t.key, body(prompt, false));
  const reply = await textOf(res);
  if (res.statusCode !== 202) throw new Error(`jobs: ${res.statusCode} ${reply}`);
  const requestId = (JSON.parse(reply) as { id: string }).id;
  const textAt: number[] = [];
  await new Promise<void>((resolve, reject) => {
    const onEvent = (m: { requestId: string; event: RequestEvent }) => {
      if (m.requestId === requestId && m.event.type === 'token' && m.event.text) textAt.push(now());
    };
    const onEnd = (m: { requestId: string }) => {
      if (m.requestId !== requestId) return;
      socket.off('event', onEvent);
      socket.off('end', onEnd);
      resolve();
    };
    socket.on('event', onEvent);
    socket.on('end', onEnd);
    socket.emit('subscribe', { requestId }, (ack: { ok: boolean }) => {
      if (!ack.ok) reject(new Error(`subscribe refused: ${JSON.stringify(ack)}`));
    });
  });
  return { requestId, sentAt, textAt };
}

async function viaQueue(
  queue: Queue,
  redis: Redis,
  prefix: string,
  t: Tenant,
  tokenIds: number[],
): Promise<ClientTimes> {
  const requestId = randomUUID();
  const key = eventsKey(prefix, requestId);
  const job: GenerationJob = {
    version: GENERATION_JOB_VERSION,
    requestId,
    tenantId: t.id,
    model: MODEL,
    prompt: { kind: 'tokens', tokenIds },
    promptTokens: tokenIds.length,
    maxTokens: MAX_TOKENS,
    sampling: { temperature: 0, topP: 1, seed: 1 },
    method: METHOD,
    width: WIDTH,
    stop: [],
    eventsKey: key,
    cancelKey: `${prefix}req:${requestId}:cancel`,
    enqueuedAt: Date.now(),
  };
  const sentAt = now();
  await queue.add(GENERATION_JOB_NAME, job, { jobId: requestId, removeOnComplete: { age: 3600 } });
  const textAt: number[] = [];
  let last = '0';
  for (;;) {
    const res = await redis.xread('BLOCK', 5000, 'STREAMS', key, last);
    if (!res) throw new Error(`no events for ${requestId} in 5 s`);
    for (const [id, fields] of res[0][1]) {
      last = id;
      const e = JSON.parse(fields[1]) as RequestEvent;
      if (e.type === 'token' && e.text) textAt.push(now());
      if (e.type === 'done' || e.type === 'error') return { requestId, sentAt, textAt };
    }
  }
}

function body(prompt: string, stream: boolean) {
  return {
    model: MODEL,
    prompt,
    max_tokens: MAX_TOKENS,
    temperature: 0,
    seed: 1,
    decoding_method: METHOD,
    tree_width: WIDTH,
    ...(stream ? { stream: true } : {}),
  };
}

/** The engine's own timings of the request, from the records its head wrote. */
async function sampleOf(
  queue: Queue,
  redis: Redis,
  prefix: string,
  p: Path,
  prompt: number,
  c: ClientTimes,
): Promise<Sample> {
  const rows = await redis.xrange(eventsKey(prefix, c.requestId), '-', '+');
  const events = rows.map(([, fields]) => JSON.parse(fields[1]) as RequestEvent);
  const started = events.find((e) => e.type === 'started');
  // The same tokens the client timed: those with text (a partial UTF-8 token has none).
  const tokens = events.filter((e) => e.type === 'token' && e.text !== '');
  if (!started || tokens.length < 2 || tokens.length !== c.textAt.length) {
    throw new Error(
      `${p} ${c.requestId}: ${tokens.length} token records, client saw ${c.textAt.length}`,
    );
  }
  const job = await Job.fromId(queue, c.requestId);
  if (!job?.processedOn) throw new Error(`${p} ${c.requestId}: no BullMQ job`);
  const n = tokens.length;
  const first = tokens[0].at;
  const last = tokens[n - 1].at;
  return {
    path: p,
    prompt,
    tokens: n,
    clientTtftMs: c.textAt[0] - c.sentAt,
    clientPerTokenMs: (c.textAt[n - 1] - c.textAt[0]) / (n - 1),
    engineTtftMs: first - started.at,
    enginePerTokenMs: (last - first) / (n - 1),
    toStartMs: started.at - c.sentAt,
    firstDeliveryMs: c.textAt[0] - first,
    toBullMqMs: job.timestamp - c.sentAt,
    pickupMs: job.processedOn - job.timestamp,
  };
}

interface PathSummary {
  path: Path;
  requests: number;
  tokens: number;
  clientTtftMs: number;
  engineTtftMs: number;
  ttftAddedMs: number;
  clientPerTokenMs: number;
  enginePerTokenMs: number;
  perTokenAddedMs: number;
  toStartMs: number;
  firstDeliveryMs: number;
  toBullMqMs: number;
  pickupMs: number;
}

function summarizePath(p: Path, samples: Sample[]): PathSummary {
  const s = samples.filter((x) => x.path === p);
  return {
    path: p,
    requests: s.length,
    tokens: median(s.map((x) => x.tokens)),
    clientTtftMs: median(s.map((x) => x.clientTtftMs)),
    engineTtftMs: median(s.map((x) => x.engineTtftMs)),
    ttftAddedMs: median(s.map((x) => x.clientTtftMs - x.engineTtftMs)),
    clientPerTokenMs: median(s.map((x) => x.clientPerTokenMs)),
    enginePerTokenMs: median(s.map((x) => x.enginePerTokenMs)),
    perTokenAddedMs: median(s.map((x) => x.clientPerTokenMs - x.enginePerTokenMs)),
    toStartMs: median(s.map((x) => x.toStartMs)),
    firstDeliveryMs: median(s.map((x) => x.firstDeliveryMs)),
    toBullMqMs: median(s.map((x) => x.toBullMqMs)),
    pickupMs: median(s.map((x) => x.pickupMs)),
  };
}

async function measureLatency(
  api: ApiProcess,
  t: Tenant,
  prefix: string,
  redisUrl: string,
  texts: string[],
): Promise<{ samples: Sample[]; summary: PathSummary[]; perRound: PathSummary[][] }> {
  const tok = await loadTokenizer(path.join(ROOT, 'models/demo-target'));
  const ids = texts.map((x) => Array.from(tok.encode(x)));
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: null });
  const reader = new Redis(redisUrl, { maxRetriesPerRequest: null });
  const queue = new Queue(GENERATION_QUEUE, { connection: redis, prefix: queuePrefix(prefix) });
  const socket = io(`${api.url}/v1/stream`, { auth: { apiKey: t.key }, transports: ['websocket'] });
  await new Promise<void>((resolve) => socket.once('ready', () => resolve()));
  const one = async (p: Path, i: number): Promise<Sample> => {
    const c =
      p === 'api-sse'
        ? await viaSse(api, t, texts[i])
        : p === 'api-socketio'
          ? await viaSocket(api, t, socket, texts[i])
          : await viaQueue(queue, reader, prefix, t, ids[i]);
    return sampleOf(queue, redis, prefix, p, i, c);
  };
  try {
    for (const p of PATHS) for (let i = 0; i < 2; i++) await one(p, i % texts.length); // warm-up
    const samples: Sample[] = [];
    const perRound: PathSummary[][] = [];
    // Paths interleaved per prompt and their order rotated, so that load changes on this
    // shared host hit all of them alike.
    for (let r = 0; r < ROUNDS; r++) {
      const round: Sample[] = [];
      for (let i = 0; i < texts.length; i++) {
        for (let k = 0; k < PATHS.length; k++) {
          if (GAP_MS > 0) await new Promise((r) => setTimeout(r, GAP_MS));
          round.push(await one(PATHS[(k + r + i) % PATHS.length], i));
        }
      }
      samples.push(...round);
      perRound.push(PATHS.map((p) => summarizePath(p, round)));
      process.stderr.write(`latency round ${r + 1}/${ROUNDS} done\n`);
    }
    return { samples, summary: PATHS.map((p) => summarizePath(p, samples)), perRound };
  } finally {
    socket.disconnect();
    agent.destroy();
    await queue.close();
    await redis.quit();
    await reader.quit();
  }
}

// ---------------------------------------------------------------- (b) admission under load

interface LoadRun {
  label: string;
  connections: number;
  rate: number | null;
  seconds: number;
  rps: number;
  p50Ms: number;
  p99Ms: number;
  ok: number;
  non2xx: number;
  errors: number;
  timeouts: number;
}

interface AutocannonJson {
  requests: { average: number; total: number };
  latency: { p50: number; p99: number };
  duration: number;
  '2xx': number;
  non2xx: number;
  errors: number;
  timeouts: number;
}

/** autocannon in a process of its own, so it does not share the event loop it measures. */
async function autocannon(
  api: ApiProcess,
  t: Tenant,
  label: string,
  connections: number,
  rate: number | null,
): Promise<LoadRun> {
  const bin = path.join(ROOT, 'node_modules/autocannon/autocannon.js');
  if (!existsSync(bin)) throw new Error('autocannon is missing: run npm install');
  const argv = [
    bin,
    '-j',
    '-c',
    String(connections),
    // A fixed number of requests, not a duration: autocannon then waits for every answer, so
    // its count of admitted requests is exact (a duration cuts requests off in flight).
    '-a',
    String(Math.round((rate ?? TARGETS.rps) * LOAD_SECONDS)),
    '-t',
    '10',
    '-m',
    'POST',
    '-H',
    `authorization=Bearer ${t.key}`,
    '-H',
    'content-type=application/json',
    '-b',
    JSON.stringify({ model: MODEL, prompt: 'The pipeline of stages', max_tokens: 16 }),
    ...(rate ? ['-R', String(rate)] : []),
    `${api.url}/v1/jobs`,
  ];
  const child = spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const [code] = (await once(child, 'exit')) as [number | null];
  if (code !== 0) throw new Error(`autocannon exited with ${code}: ${err}`);
  const r = JSON.parse(out) as AutocannonJson;
  return {
    label,
    connections,
    rate,
    seconds: r.duration,
    rps: r['2xx'] / r.duration,
    p50Ms: r.latency.p50,
    p99Ms: r.latency.p99,
    ok: r['2xx'],
    non2xx: r.non2xx,
    errors: r.errors,
    timeouts: r.timeouts,
  };
}

interface Integrity {
  admitted: number;
  rows: number;
  rowsAccounted: number;
  queuedOnce: number;
  queuedMissing: number;
  queuedTwice: number;
  strayJobs: number;
  reservations: number;
  reservedTokensRows: number;
  reservedTokensRedis: number;
  monthCounter: number;
  concurrency: number;
  billedRollupRequests: number;
  ok: boolean;
}

/** Every admitted request: one row, one queued job, one reservation; counters add up. */
async function checkIntegrity(
  prisma: PrismaClient,
  redis: Redis,
  prefix: string,
  t: Tenant,
  admitted: number,
): Promise<Integrity> {
  const rows = await prisma.generationRequest.findMany({
    where: { tenantId: t.id },
    select: { id: true, reservedTokens: true, accountedAt: true },
  });
  const ids = new Set(rows.map((r) => r.id));
  // Where a queued job can be: the fair scheduler's lists, its handoff, or BullMQ.
  const seen = new Map<string, number>();
  const bump = (id: string) => seen.set(id, (seen.get(id) ?? 0) + 1);
  const fairJobs = await redis.hgetall(`${prefix}fair:jobs`);
  for (const [id, raw] of Object.entries(fairJobs)) {
    if ((JSON.parse(raw) as { job: GenerationJob }).job.tenantId === t.id) bump(id);
  }
  for (const id of await redis.hkeys(`${prefix}fair:handoff`)) if (ids.has(id)) bump(id);
  const connection = redis.duplicate();
  const queue = new Queue(GENERATION_QUEUE, { connection, prefix: queuePrefix(prefix) });
  const jobs = await queue.getJobs(['waiting', 'prioritized', 'active', 'delayed']);
  for (const j of jobs) if ((j.data as GenerationJob).tenantId === t.id) bump(j.id!);
  await queue.close();
  await connection.quit();
  const list = await redis.lrange(`${prefix}fair:t:${t.id}`, 0, -1);
  const listDupes = list.length - new Set(list).size;
  let queuedOnce = 0;
  let queuedMissing = 0;
  let queuedTwice = listDupes;
  for (const id of ids) {
    const n = seen.get(id) ?? 0;
    if (n === 1) queuedOnce++;
    else if (n === 0) queuedMissing++;
    else queuedTwice++;
  }
  const strayJobs = [...seen.keys()].filter((id) => !ids.has(id)).length;
  const pipe = redis.pipeline();
  for (const r of rows) pipe.hget(`${prefix}quota:reservation:${r.id}`, 'reserved');
  const reserved = ((await pipe.exec()) ?? []).map(([, v]) => (v == null ? null : Number(v)));
  const monthKey = (await redis.keys(`${prefix}quota:${t.id}:month:*`))[0];
  const monthCounter = Number((monthKey && (await redis.get(monthKey))) ?? 0);
  const concurrency = Number((await redis.get(`${prefix}quota:${t.id}:concurrency`)) ?? 0);
  const rollup = await prisma.usageRollup.aggregate({
    where: { tenantId: t.id, granularity: 'day' },
    _sum: { requests: true },
  });
  const open = rows.filter((r) => r.accountedAt === null);
  const i: Integrity = {
    admitted,
    rows: rows.length,
    rowsAccounted: rows.length - open.length,
    queuedOnce,
    queuedMissing,
    queuedTwice,
    strayJobs,
    reservations: reserved.filter((x) => x !== null).length,
    reservedTokensRows: open.reduce((s, r) => s + r.reservedTokens, 0),
    reservedTokensRedis: reserved.reduce<number>((s, x) => s + (x ?? 0), 0),
    monthCounter,
    concurrency,
    billedRollupRequests: Number(rollup._sum.requests ?? 0),
    ok: false,
  };
  i.ok =
    i.rows === admitted &&
    i.rowsAccounted === 0 &&
    i.billedRollupRequests === 0 &&
    i.queuedOnce === admitted &&
    i.queuedMissing === 0 &&
    i.queuedTwice === 0 &&
    i.strayJobs === 0 &&
    i.reservations === admitted &&
    i.reservedTokensRedis === i.reservedTokensRows &&
    i.monthCounter === i.reservedTokensRows &&
    i.concurrency === admitted;
  return i;
}

/** After (a): each request the API ran accounted once, its reservation settled. */
async function checkAccounted(
  prisma: PrismaClient,
  redis: Redis,
  prefix: string,
  t: Tenant,
): Promise<{ rows: number; accounted: number; rollup: number; openSlots: number; ok: boolean }> {
  let rows = await prisma.generationRequest.findMany({ where: { tenantId: t.id } });
  for (let i = 0; i < 50 && rows.some((r) => !r.accountedAt); i++) {
    await new Promise((r) => setTimeout(r, 100)); // the sweeper accounts socket.io jobs
    rows = await prisma.generationRequest.findMany({ where: { tenantId: t.id } });
  }
  const accounted = rows.filter((r) => r.accountedAt).length;
  const rollup = await prisma.usageRollup.aggregate({
    where: { tenantId: t.id, granularity: 'day' },
    _sum: { requests: true },
  });
  const openSlots = Number((await redis.get(`${prefix}quota:${t.id}:concurrency`)) ?? 0);
  const r = Number(rollup._sum.requests ?? 0);
  return {
    rows: rows.length,
    accounted,
    rollup: r,
    openSlots,
    ok: accounted === rows.length && r === rows.length && openSlots === 0,
  };
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  const started = Date.now();
  const skip = new Set(args.skip.split(',').filter(Boolean));
  const db = await createTestDatabase();
  const prefix = redisPrefix().replace(/^test:/, 'bench:api:');
  const redisUrl = testEnv().TEST_REDIS_URL;
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: null });
  const prisma = createPrismaClient(db.url, { poolSize: 2 });
  let api: ApiProcess | null = null;
  let cluster: LocalCluster | null = null;
  try {
    const latencyTenant = await benchTenant(prisma, 'bench-latency');
    const loadTenant = await benchTenant(prisma, 'bench-load');
    api = await startApi(
      {
        NODE_ENV: 'production',
        DATABASE_URL: db.url,
        REDIS_URL: redisUrl,
        REDIS_PREFIX: prefix,
        API_HOST: '127.0.0.1',
        MODEL_NAME: MODEL,
        MODEL_DIR: path.join(ROOT, 'models/demo-target'),
        // (b) admits with the pipeline stopped (jobs just queue), which the API otherwise
        // refuses with 503 no_pipeline_available.
        ADMIT_WITHOUT_PIPELINE: 'true',
      },
      {
        readyPath: '/health',
        nodeFlags: args.profile
          ? ['--cpu-prof', `--cpu-prof-dir=${path.join(ROOT, 'bench/results/profiles')}`]
          : [],
      },
    );

    let latency: Awaited<ReturnType<typeof measureLatency>> | null = null;
    let accounted: Awaited<ReturnType<typeof checkAccounted>> | null = null;
    if (!skip.has('latency')) {
      cluster = await LocalCluster.start({
        pipelineId: 'bench-api',
        stages: STAGES,
        checkpointDir: path.join(ROOT, 'models/demo-target'),
        draftCheckpointDir: path.join(ROOT, 'models/demo-draft'),
        redisUrl,
        redisPrefix: prefix,
        env: {
          MODEL_NAME: MODEL,
          PIPELINE_CHECK_MS: '500',
          WARMUP_TOKENS: NPM_START_STAGE_ENV.WARMUP_TOKENS,
        },
        readyTimeoutMs: 180_000,
        ...(STAGE_NICE > 0
          ? { placement: () => ({ host: '127.0.0.1', wrap: ['nice', '-n', String(STAGE_NICE)] }) }
          : {}),
      });
      latency = await measureLatency(api, latencyTenant, prefix, redisUrl, await prompts());
      accounted = await checkAccounted(prisma, redis, prefix, latencyTenant);
      // (b) measures admission alone: jobs queue with no pipeline to take them.
      await cluster.stop();
      cluster = null;
    }

    let stream: ReturnType<typeof combineRuns> | null = null;
    if (!skip.has('stream')) {
      process.stderr.write(`(c) starting ${NPM_START_STAGES} stages\n`);
      cluster = await LocalCluster.start({
        pipelineId: 'bench-api-stream',
        stages: NPM_START_STAGES,
        checkpointDir: path.join(ROOT, 'models/demo-target'),
        draftCheckpointDir: path.join(ROOT, 'models/demo-draft'),
        redisUrl,
        redisPrefix: prefix,
        env: { MODEL_NAME: MODEL, ...STREAM_STAGE_ENV },
        readyTimeoutMs: 180_000,
      });
      const runs: StreamLoadResult[] = [];
      const texts = await streamPrompts();
      // Run 0 is the warm-up pass (not judged); a tenant per run, so each run's rows and
      // rollups are checked on their own.
      for (let r = 0; r <= STREAM_RUNS; r++) {
        const tenant = await benchTenant(prisma, `bench-stream-${r}`);
        process.stderr.write(`(c) ${r === 0 ? 'warm-up pass' : `run ${r}/${STREAM_RUNS}`}\n`);
        runs.push(
          await measureStreamLoad({
            apiUrl: api.url,
            apiKey: tenant.key,
            tenantId: tenant.id,
            model: MODEL,
            redisUrl,
            redisPrefix: prefix,
            prisma,
            clients: STREAM_CLIENTS,
            staggerMs: STREAM_STAGGER_MS,
            seed: STREAM_SEED,
            texts,
            pids: {
              api: api.child.pid!,
              stages: Array.from({ length: NPM_START_STAGES }, (_, s) => cluster!.pid(s)!),
            },
            progress: (line) => process.stderr.write(`${line}\n`),
          }),
        );
      }
      stream = combineRuns(runs[0], runs.slice(1));
      await cluster.stop();
      cluster = null;
    }

    let auto: Awaited<ReturnType<typeof measureAuto>> | null = null;
    const autoConfig = {
      rounds: Number(args['auto-rounds']),
      maxTokens: Number(args['auto-tokens']),
      prompts: Number(args['auto-prompts']),
      temperatures: args['auto-temperatures'].split(',').map(Number),
    };
    if (!skip.has('auto')) {
      process.stderr.write(`(d) starting ${NPM_START_STAGES} stages (with their warm-up)\n`);
      cluster = await LocalCluster.start({
        pipelineId: 'bench-api-auto',
        stages: NPM_START_STAGES,
        checkpointDir: path.join(ROOT, 'models/demo-target'),
        draftCheckpointDir: path.join(ROOT, 'models/demo-draft'),
        redisUrl,
        redisPrefix: prefix,
        env: { MODEL_NAME: MODEL, ...NPM_START_STAGE_ENV },
        readyTimeoutMs: 180_000,
      });
      const tenant = await benchTenant(prisma, 'bench-auto');
      auto = await measureAuto({
        apiUrl: api.url,
        apiKey: tenant.key,
        model: MODEL,
        sets: await autoSets(autoConfig.prompts),
        temperatures: autoConfig.temperatures,
        rounds: autoConfig.rounds,
        maxTokens: autoConfig.maxTokens,
        progress: (line) => process.stderr.write(`${line}\n`),
      });
      await cluster.stop();
      cluster = null;
    }

    const load: LoadRun[] = [];
    let integrity: Integrity | null = null;
    if (!skip.has('load')) {
      await autocannon(api, loadTenant, 'warm-up', CONNECTIONS, null).catch(() => undefined);
      // The warm-up's requests are admitted too: count them from the database.
      const before = await prisma.generationRequest.count({ where: { tenantId: loadTenant.id } });
      for (let r = 0; r < LOAD_RUNS; r++) {
        load.push(await autocannon(api, loadTenant, `saturation ${r + 1}`, CONNECTIONS, null));
        load.push(await autocannon(api, loadTenant, `fixed ${RATE}/s ${r + 1}`, CONNECTIONS, RATE));
        process.stderr.write(`load run ${r + 1}/${LOAD_RUNS} done\n`);
      }
      const admitted = before + load.reduce((s, x) => s + x.ok, 0);
      integrity = await checkIntegrity(prisma, redis, prefix, loadTenant, admitted);
    }

    const out: string[] = [];
    out.push(`# bench:api (${new Date().toISOString()})`, '');
    out.push(
      `Host: ${os.cpus().length} CPUs shared by the API, PostgreSQL, Redis, the stage processes (${STAGES} in (a), ${NPM_START_STAGES} in (c)) and the load generator; load average at start ${os
        .loadavg()
        .map((x) => f(x, 1))
        .join(' ')}.`,
      '',
    );
    if (latency) {
      out.push(
        `## (a) Added over the engine alone`,
        '',
        `Demo pair on ${STAGES} stages, ${METHOD} W=${WIDTH}, greedy, ${MAX_TOKENS} tokens, ${PROMPTS} prompts x ${ROUNDS} rounds per path (interleaved). Engine = the head's own records of the same request (started -> first token, first -> last token). Medians of per-request differences. Client: node:http, keep-alive. Stage processes at niceness ${STAGE_NICE}${STAGE_NICE > 0 ? ' (they yield the cores to the API, Redis and PostgreSQL, as on machines of their own)' : ''}. ${GAP_MS > 0 ? `${GAP_MS} ms idle before each request.` : 'Each request sent as soon as the previous one ended.'}`,
        '',
        '| path | requests | client TTFT ms | engine TTFT ms | **added TTFT ms** (target <= 5) | client ms/token | engine ms/token | **added ms/token** (target <= 0.2) | sent -> in BullMQ ms | BullMQ -> head took it ms | sent -> head started ms | head token -> client ms |',
        '|---|---|---|---|---|---|---|---|---|---|---|---|',
      );
      for (const s of latency.summary) {
        out.push(
          `| ${s.path} | ${s.requests} | ${f(s.clientTtftMs)} | ${f(s.engineTtftMs)} | ${f(s.ttftAddedMs)} ${ok(s.path, s.ttftAddedMs <= TARGETS.ttftAddedMs)} | ${f(s.clientPerTokenMs, 3)} | ${f(s.enginePerTokenMs, 3)} | ${f(s.perTokenAddedMs, 3)} ${ok(s.path, s.perTokenAddedMs <= TARGETS.perTokenAddedMs)} | ${f(s.toBullMqMs)} | ${f(s.pickupMs)} | ${f(s.toStartMs)} | ${f(s.firstDeliveryMs)} |`,
        );
      }
      const by = (p: Path) => latency.summary.find((s) => s.path === p)!;
      out.push(
        '',
        `API over the direct queue (same run): TTFT +${f(by('api-sse').ttftAddedMs - by('direct-queue').ttftAddedMs)} ms (SSE), +${f(by('api-socketio').ttftAddedMs - by('direct-queue').ttftAddedMs)} ms (socket.io). Per round, added TTFT ms (sse / socket.io / direct): ${latency.perRound
          .map((r) => r.map((s) => f(s.ttftAddedMs, 1)).join(' / '))
          .join('; ')}.`,
        '',
        `Accounting after (a): ${accounted!.rows} requests through the API, ${accounted!.accounted} accounted, ${accounted!.rollup} in the daily rollup, ${accounted!.openSlots} concurrency slots open: ${accounted!.ok ? 'ok' : 'MISMATCH'}.`,
        '',
      );
    }
    const streamText =
      stream &&
      streamLoadTable(
        stream,
        NPM_START_STAGES,
        Number(STREAM_STAGE_ENV.QUEUE_CONCURRENCY),
        Number(NPM_START_STAGE_ENV.QUEUE_CONCURRENCY),
      );
    if (streamText) out.push(streamText, '');
    if (auto) out.push(autoTable(auto.rows, autoConfig), '');
    if (integrity) {
      out.push(
        `## (b) Admission: POST /v1/jobs under autocannon`,
        '',
        `${Math.round(TARGETS.rps * LOAD_SECONDS)} requests per run, no pipeline (jobs queue). Saturation: ${CONNECTIONS} connections, each sending as soon as answered; fixed: ${RATE} requests/s offered over ${CONNECTIONS} connections (autocannon counts its last partial second in the duration, so ${Math.round(RATE * LOAD_SECONDS)} requests at ${RATE}/s read as about ${f((RATE * LOAD_SECONDS) / (LOAD_SECONDS + 1), 0)}/s). Latency is autocannon's, from sending to the 202.`,
        '',
        '| run | connections | admitted/s (target >= 300) | p50 ms | p99 ms (target < 50) | 2xx | non-2xx | errors | timeouts |',
        '|---|---|---|---|---|---|---|---|---|',
      );
      for (const r of load) {
        out.push(
          `| ${r.label} | ${r.connections} | ${f(r.rps, 0)} | ${f(r.p50Ms, 1)} | ${f(r.p99Ms, 1)} | ${r.ok} | ${r.non2xx} | ${r.errors} | ${r.timeouts} |`,
        );
      }
      const sat = load.filter((r) => r.rate === null);
      const fixed = load.filter((r) => r.rate !== null);
      out.push(
        `| **median, saturation** | ${CONNECTIONS} | **${f(median(sat.map((r) => r.rps)), 0)}** ${ok('', median(sat.map((r) => r.rps)) >= TARGETS.rps)} | ${f(median(sat.map((r) => r.p50Ms)), 1)} | ${f(median(sat.map((r) => r.p99Ms)), 1)} | | | | |`,
        `| **median, fixed ${RATE}/s** | ${CONNECTIONS} | **${f(median(fixed.map((r) => r.rps)), 0)}** | ${f(median(fixed.map((r) => r.p50Ms)), 1)} | **${f(median(fixed.map((r) => r.p99Ms)), 1)}** ${ok('', median(fixed.map((r) => r.p99Ms)) < TARGETS.p99Ms)} | | | | |`,
      );
      const i = integrity;
      out.push(
        '',
        `Integrity after the load (${i.ok ? 'ok' : 'MISMATCH'}): admitted ${i.admitted}; rows in PostgreSQL ${i.rows} (accounted ${i.rowsAccounted}, billed in rollups ${i.billedRollupRequests}); queued exactly once ${i.queuedOnce}, missing ${i.queuedMissing}, more than once ${i.queuedTwice}, jobs without a row ${i.strayJobs}; quota reservations ${i.reservations}, reserved tokens ${i.reservedTokensRedis} in Redis = ${i.reservedTokensRows} in PostgreSQL, month counter ${i.monthCounter}, concurrency counter ${i.concurrency}.`,
      );
    }
    const text = out.join('\n');
    process.stdout.write(`${text}\n`);
    await mkdir(path.dirname(args.out), { recursive: true });
    const date = new Date().toISOString();
    const result: Record<string, unknown> = {
      date,
      seconds: (Date.now() - started) / 1000,
      cpus: os.cpus().length,
      targets: { ...TARGETS, stream: STREAM_TARGETS },
      config: {
        stages: STAGES,
        method: METHOD,
        width: WIDTH,
        maxTokens: MAX_TOKENS,
        prompts: PROMPTS,
        rounds: ROUNDS,
        loadSeconds: LOAD_SECONDS,
        connections: CONNECTIONS,
        rate: RATE,
        stageNice: STAGE_NICE,
        gapMs: GAP_MS,
      },
      latency: latency && { summary: latency.summary, perRound: latency.perRound },
      latencySamples: latency?.samples,
      accountedAfterLatency: accounted,
      streamLoad: stream && {
        stages: NPM_START_STAGES,
        stageEnv: STREAM_STAGE_ENV,
        ...stream,
        table: streamText,
      },
      autoVsFixed: auto && { ...autoConfig, target: AUTO_TARGET, ...auto },
      load,
      integrity,
      sectionDates: { latency: date, stream: date, load: date, auto: date },
      table: text,
    };
    await writeFile(args.out, JSON.stringify(await keepSkipped(result, skip), null, 2));
  } catch (error) {
    if (api) process.stderr.write(`--- API log (tail)\n${api.log.join('').slice(-3000)}\n`);
    if (cluster) {
      for (let s = 0; s < cluster.stageCount; s++)
        process.stderr.write(`--- stage ${s} log (tail)\n${cluster.logs(s).slice(-3000)}\n`);
    }
    throw error;
  } finally {
    await cluster?.stop();
    if (api) await stopChild(api.child);
    await prisma.$disconnect();
    await deleteRedisPrefix(redis, prefix);
    await redis.quit();
    await db.drop();
  }
}

/**
 * A skipped section keeps what --out held for it (its results, its part of `table`, and its
 * date in sectionDates), so running one section does not erase the others' last results.
 */
async function keepSkipped(
  result: Record<string, unknown>,
  skip: Set<string>,
): Promise<Record<string, unknown>> {
  if (skip.size === 0) return result;
  let previous: Record<string, unknown>;
  try {
    previous = JSON.parse(await readFile(args.out, 'utf8')) as Record<string, unknown>;
  } catch {
    return result;
  }
  const keys: Record<string, string[]> = {
    latency: ['latency', 'latencySamples', 'accountedAfterLatency'],
    stream: ['streamLoad'],
    load: ['load', 'integrity'],
    auto: ['autoVsFixed'],
  };
  const dates = result.sectionDates as Record<string, string>;
  const before = (previous.sectionDates ?? {}) as Record<string, string>;
  for (const section of skip) {
    for (const k of keys[section] ?? []) result[k] = previous[k] ?? null;
    dates[section] = before[section] ?? (previous.date as string);
  }
  // config describes (a) and (b); with both skipped it is still the one they ran with.
  if (skip.has('latency') && skip.has('load')) result.config = previous.config;
  const heading = { latency: '(a)', stream: '(c)', load: '(b)', auto: '(d)' } as const;
  const now = sectionsOf(result.table as string);
  const then = sectionsOf((previous.table as string | undefined) ?? '');
  const kept = [...skip]
    .filter((k) => k in heading)
    .map((k) => `${heading[k as keyof typeof heading]} on ${dates[k]}`);
  result.table = [
    `${now.head}Kept from earlier runs: ${kept.join(', ')}.\n`,
    ...(['latency', 'stream', 'auto', 'load'] as const).map((k) =>
      skip.has(k) ? (then.parts.get(heading[k]) ?? '') : (now.parts.get(heading[k]) ?? ''),
    ),
  ]
    .filter(Boolean)
    .join('\n');
  return result;
}

/** A printed report split at its "## (x)" headings: the text before them, and each part. */
function sectionsOf(text: string): { head: string; parts: Map<string, string> } {
  const chunks = text.split(/^(?=## \([a-z]\))/m);
  const parts = new Map<string, string>();
  for (const c of chunks.slice(1)) parts.set(c.slice(3, 6), c.trimEnd() + '\n');
  return { head: chunks[0], parts };
}

function ok(p: string, pass: boolean): string {
  if (p === 'direct-queue') return '';
  return pass ? '(met)' : '(**missed**)';
}

await main();
