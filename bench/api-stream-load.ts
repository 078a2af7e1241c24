// Section (c) of bench:api (issue #16): N streaming clients at once through the real API, on
// the pipeline `npm start` runs (4 stage processes on the demo pair, the launcher's
// QUEUE_CONCURRENCY default, every other setting the service's default).
//
// Workload, drawn from --seed (mulberry32) so a run can be repeated: every client sends one
// POST /v1/completions with stream:true and stream_options.include_usage, at t = 0 (or at a
// uniform random moment of a --stream-stagger-ms window); max_tokens uniform in 24-64; the
// methods pp, stpp, pipedec and auto dealt round-robin, then shuffled (30 clients: 8, 8, 7, 7);
// a third of the clients greedy (temperature 0), the rest temperature 1 with no seed (so
// speculative_acceptance is the API's default for that, "distribution"), as most real requests
// are; no tree_width (the service's default). Prompts: the first 160 characters of 24 held-out
// prompts (8 per set), one drawn per client.
//
// Per client, on the client's clock: TTFT = sending the request -> reading the first chunk
// with text; total = sending -> [DONE]; time per output token = (last text chunk - first) /
// (chunks - 1). Aggregate tokens/s = all completion tokens / (last [DONE] - first send).
// A refusal (429, 503) is retried after its Retry-After, as OpenAI's clients do, up to 5
// times; TTFT still counts from the first send, so a refusal costs its wait, and refusals
// are counted and reported (the target wants none). The same draw runs once unjudged (the
// warm-up: a freshly started pipeline's first burst compiles its shapes and auto tries every
// method; that run is shown), then --stream-runs times (5) on the same pipeline, a tenant each;
// the target is judged on the median over those runs of each run's p50 and p99, since one run
// of 30 requests on this shared host varies by a second. Every run, the warm-up too, must lose
// nothing.
//
// Nothing lost, per client: [DONE] arrived after a chunk with finish_reason and a usage
// chunk; content chunks = usage.completion_tokens (a token whose text is empty, half of a
// UTF-8 character, has no chunk: those are counted from the head's records and shown); the
// head's event stream holds exactly completion_tokens distinct token indices whose texts
// concatenate to what the client read; the request's row in PostgreSQL is succeeded, accounted
// and billed exactly completion_tokens (GenerationRequest.completionTokens), and the tenant's
// daily rollup adds up to the rows (each request billed once); no concurrency slot stays open.
//
// Where TTFT goes, per client, from the head's records, the BullMQ job and the client:
// sent -> in BullMQ (admission and the fair scheduler's wait; BullMQ holds QUEUE_DEPTH jobs),
// BullMQ -> a head's worker took it (the head runs QUEUE_CONCURRENCY at once), took it ->
// started (the KV budget's hold), started -> first token record (prefill and the first step,
// interleaved with the other requests), that record -> the client read it (the stream).
// And where the cores went while the clients ran (/proc): the API process, the stage
// processes, the rest of the host (PostgreSQL, Redis, these clients, anyone else's work), idle.
import {
  decodeEvent,
  EVENT_FIELD,
  eventsKey,
  GENERATION_QUEUE,
  queuePrefix,
  type RequestEvent,
} from '@pipedec/contracts';
import type { PrismaClient } from '@pipedec/db';
import { Job, Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import { now, postJson, sseData } from './api-process.js';

export const STREAM_TARGETS = { ttftP50Ms: 2000, ttftP99Ms: 5000 };
const METHODS = ['pp', 'stpp', 'pipedec', 'auto'] as const;
type Method = (typeof METHODS)[number];
const MIN_TOKENS = 24;
const MAX_TOKENS = 64;
const MAX_ATTEMPTS = 5;
/** A client that hears nothing (not even the API's keep-alive comment) this long fails. */
const IDLE_TIMEOUT_MS = 60_000;

export interface StreamLoadOptions {
  apiUrl: string;
  apiKey: string;
  tenantId: string;
  model: string;
  redisUrl: string;
  redisPrefix: string;
  prisma: PrismaClient;
  clients: number;
  staggerMs: number;
  seed: number;
  /** Prompt texts; each client draws one. */
  texts: string[];
  /** Processes whose CPU time is reported: the API and each stage. */
  pids: { api: number; stages: number[] };
  progress: (line: string) => void;
}

/** One client's request, as drawn. */
interface Plan {
  client: number;
  /** ms after the section's start that the client sends. */
  startMs: number;
  prompt: number;
  maxTokens: number;
  method: Method;
  temperature: 0 | 1;
}

/** One client as it saw its stream, and what the service recorded of it. */
export interface StreamClient extends Plan {
  requestId: string | null;
  status: number | null;
  refusals: number;
  error: string | null;
  /** When it sent, ms after the section's start (its plan's moment, plus the event loop's delay). */
  sentMs: number;
  ttftMs: number | null;
  totalMs: number | null;
  perTokenMs: number | null;
  contentChunks: number;
  finishReason: string | null;
  completionTokens: number | null;
  done: boolean;
  /** Token records in the head's event stream (distinct indices), and those with no text. */
  headTokens: number | null;
  headEmptyTextTokens: number | null;
  textMatchesHead: boolean | null;
  /** The request's row: status, billed completion tokens, accounted. */
  rowStatus: string | null;
  rowCompletionTokens: number | null;
  rowAccounted: boolean;
  /** The method the head ran (auto's choice) and its width. */
  decoded: string | null;
  /** TTFT's parts, ms (see the header). */
  toBullMqMs: number | null;
  bullMqWaitMs: number | null;
  kvHoldMs: number | null;
  startToFirstTokenMs: number | null;
  deliveryMs: number | null;
  lost: boolean;
}

export interface StreamLoadResult {
  config: {
    clients: number;
    staggerMs: number;
    seed: number;
    methods: Record<Method, number>;
    greedy: number;
    sampled: number;
    maxTokensRequested: number;
  };
  ttftP50Ms: number;
  ttftP99Ms: number;
  ttftMaxMs: number;
  totalP50Ms: number;
  totalP99Ms: number;
  perTokenP50Ms: number;
  completionTokens: number;
  wallS: number;
  tokensPerS: number;
  errors: number;
  refusals: number;
  lost: number;
  chunksEqualUsage: number;
  emptyTextTokens: number;
  rollup: { requests: number; completionTokens: number; rows: number; rowsTokens: number };
  openConcurrencySlots: number;
  nothingLost: boolean;
  /** CPU seconds from the first send to the last [DONE], all cores together. */
  cpu: { capacityS: number; apiS: number; stagesS: number; restS: number; idleS: number };
  clientsDetail: StreamClient[];
}

/**
 * Several runs of the same draw on the same pipeline, each with a tenant of its own: the
 * target is judged on the median over runs of each run's figure; where TTFT goes and the
 * figures per method pool every run's clients.
 */
export interface StreamLoadRuns {
  config: StreamLoadResult['config'];
  /** The first pass of the draw, not judged for TTFT. */
  warmUp: StreamLoadResult;
  runs: StreamLoadResult[];
  median: {
    ttftP50Ms: number;
    ttftP99Ms: number;
    perTokenP50Ms: number;
    totalP50Ms: number;
    totalP99Ms: number;
    tokensPerS: number;
  };
  errors: number;
  refusals: number;
  lost: number;
  nothingLost: boolean;
  breakdown: { part: string; p50Ms: number; p99Ms: number }[];
  byMethod: { method: Method; clients: number; ttftP50Ms: number; perTokenP50Ms: number }[];
  met: { ttftP50: boolean; ttftP99: boolean; nothingLost: boolean };
}

/** Nearest-rank quantile: p99 of 30 samples is the slowest. */
export function quantile(xs: number[], q: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))];
}

function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function shuffle<T>(xs: T[], random: () => number): T[] {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [xs[i], xs[j]] = [xs[j], xs[i]];
  }
  return xs;
}

export function drawPlans(clients: number, staggerMs: number, seed: number, prompts: number) {
  const random = mulberry32(seed);
  const methods = shuffle(
    Array.from({ length: clients }, (_, i) => METHODS[i % METHODS.length]),
    random,
  );
  const greedy = Math.round(clients / 3);
  const temperatures = shuffle(
    Array.from({ length: clients }, (_, i): 0 | 1 => (i < greedy ? 0 : 1)),
    random,
  );
  return Array.from({ length: clients }, (_, client): Plan => ({
    client,
    startMs: staggerMs > 0 ? random() * staggerMs : 0,
    prompt: Math.floor(random() * prompts),
    maxTokens: MIN_TOKENS + Math.floor(random() * (MAX_TOKENS - MIN_TOKENS + 1)),
    method: methods[client],
    temperature: temperatures[client],
  }));
}

/** CPU seconds (user + system) a process has used, from /proc (clock ticks of 10 ms). */
async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** The host's busy and idle CPU seconds, all cores together, from /proc/stat. */
async function hostCpu(): Promise<{ busy: number; idle: number }> {
  const line = (await readFile('/proc/stat', 'utf8')).split('\n')[0];
  const [user, nice, system, idle, iowait, irq, softirq, steal] = line
    .split(/\s+/)
    .slice(1)
    .map(Number);
  return {
    busy: (user + nice + system + irq + softirq + steal) / 100,
    idle: (idle + iowait) / 100,
  };
}

async function cpuSnapshot(pids: StreamLoadOptions['pids']) {
  return {
    at: now(),
    host: await hostCpu(),
    api: await cpuSeconds(pids.api),
    stages: (await Promise.all(pids.stages.map(cpuSeconds))).reduce((a, b) => a + b, 0),
  };
}

interface Seen {
  requestId: string | null;
  status: number | null;
  refusals: number;
  error: string | null;
  sentAt: number;
  textAt: number[];
  text: string;
  finishReason: string | null;
  completionTokens: number | null;
  done: boolean;
  endAt: number | null;
}

/** A client before its first answer (or one that never got any: `error` says why). */
function unanswered(sentAt: number, error: string | null = null): Seen {
  return {
    requestId: null,
    status: null,
    refusals: 0,
    error,
    sentAt,
    textAt: [],
    text: '',
    finishReason: null,
    completionTokens: null,
    done: false,
    endAt: null,
  };
}

/** Sends one streaming completion (retrying refusals per Retry-After) and reads it to the end. */
async function runClient(
  o: StreamLoadOptions,
  agent: http.Agent,
  p: Plan,
  onFirstText: () => void,
): Promise<Seen> {
  const payload = JSON.stringify({
    model: o.model,
    prompt: o.texts[p.prompt],
    max_tokens: p.maxTokens,
    temperature: p.temperature,
    decoding_method: p.method,
    stream: true,
    stream_options: { include_usage: true },
  });
  const seen = unanswered(now());
  for (let attempt = 1; ; attempt++) {
    const res = await postJson(
      `${o.apiUrl}/v1/completions`,
      o.apiKey,
      payload,
      agent,
      IDLE_TIMEOUT_MS,
    );
    seen.status = res.statusCode ?? null;
    if ((res.statusCode === 429 || res.statusCode === 503) && attempt < MAX_ATTEMPTS) {
      seen.refusals++;
      res.resume();
      const wait = Number(res.headers['retry-after'] ?? 1) * 1000;
      await new Promise((r) => setTimeout(r, wait));
      continue;
    }
    seen.requestId = (res.headers['x-request-id'] as string | undefined) ?? null;
    res.setEncoding('utf8');
    if (res.statusCode !== 200) {
      let body = '';
      for await (const part of res) body += part as string;
      seen.error = `${res.statusCode}: ${body.slice(0, 200)}`;
      return seen;
    }
    for await (const { at, data } of sseData(res)) {
      if (data === '[DONE]') {
        seen.done = true;
        seen.endAt = at;
        continue;
      }
      const c = JSON.parse(data) as {
        choices?: { text?: string; finish_reason?: string | null }[];
        usage?: { completion_tokens: number } | null;
        error?: { code?: string; message?: string };
      };
      if (c.error) seen.error = `stream: ${c.error.code ?? ''} ${c.error.message ?? ''}`;
      const choice = c.choices?.[0];
      if (choice?.text) {
        if (seen.textAt.length === 0) onFirstText();
        seen.textAt.push(at);
        seen.text += choice.text;
      }
      if (choice?.finish_reason) seen.finishReason = choice.finish_reason;
      if (c.usage) seen.completionTokens = c.usage.completion_tokens;
    }
    if (!seen.done && !seen.error) seen.error = 'stream ended without [DONE]';
    return seen;
  }
}

/** What the head and the queue recorded of the request. */
async function headSide(redis: Redis, queue: Queue, prefix: string, requestId: string) {
  const records = await redis.xrange(eventsKey(prefix, requestId), '-', '+');
  const events = records.map(([, fields]) => decodeEvent(fields[fields.indexOf(EVENT_FIELD) + 1]));
  const tokens = new Map<number, Extract<RequestEvent, { type: 'token' }>>();
  let started: Extract<RequestEvent, { type: 'started' }> | undefined;
  for (const e of events) {
    if (e.type === 'token' && !tokens.has(e.index)) tokens.set(e.index, e);
    if (e.type === 'started') started ??= e;
  }
  const ordered = [...tokens.values()].sort((a, b) => a.index - b.index);
  const firstText = ordered.find((t) => t.text !== '');
  const job = await Job.fromId(queue, requestId);
  return {
    tokens: ordered.length,
    emptyText: ordered.filter((t) => t.text === '').length,
    text: ordered.map((t) => t.text).join(''),
    startedAt: started?.at ?? null,
    decoded: started?.decoding ? `${started.decoding.method} W=${started.decoding.width}` : null,
    firstTextAt: firstText?.at ?? null,
    inBullMqAt: job?.timestamp ?? null,
    takenAt: job?.processedOn ?? null,
  };
}

const diff = (a: number | null, b: number | null) => (a === null || b === null ? null : a - b);

export async function measureStreamLoad(o: StreamLoadOptions): Promise<StreamLoadResult> {
  const plans = drawPlans(o.clients, o.staggerMs, o.seed, o.texts.length);
  const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity });
  const cpu0 = await cpuSnapshot(o.pids);
  const t0 = now();
  let firsts = 0;
  let ended = 0;
  const report = () =>
    o.progress(
      `(c) ${((now() - t0) / 1000).toFixed(1)} s: ${firsts}/${o.clients} first tokens, ${ended}/${o.clients} done`,
    );
  const seen = await Promise.all(
    plans.map(async (p) => {
      await new Promise((r) => setTimeout(r, p.startMs));
      const s = await runClient(o, agent, p, () => {
        firsts++;
        if (firsts % 10 === 0) report();
      }).catch((e: unknown) => unanswered(NaN, e instanceof Error ? e.message : String(e)));
      ended++;
      if (ended % 5 === 0 || ended === o.clients) report();
      return s;
    }),
  );
  const cpu1 = await cpuSnapshot(o.pids);
  agent.destroy();
  const busy = cpu1.host.busy - cpu0.host.busy;
  const apiS = cpu1.api - cpu0.api;
  const stagesS = cpu1.stages - cpu0.stages;
  const cpu = {
    capacityS: ((cpu1.at - cpu0.at) / 1000) * os.cpus().length,
    apiS,
    stagesS,
    restS: busy - apiS - stagesS,
    idleS: cpu1.host.idle - cpu0.host.idle,
  };

  const redis = new Redis(o.redisUrl, { maxRetriesPerRequest: null });
  const queue = new Queue(GENERATION_QUEUE, {
    connection: redis,
    prefix: queuePrefix(o.redisPrefix),
  });
  try {
    // Accounting is awaited before [DONE] is written; the poll only guards a slow database.
    let rows = await o.prisma.generationRequest.findMany({ where: { tenantId: o.tenantId } });
    for (let i = 0; i < 50 && rows.some((r) => !r.accountedAt); i++) {
      await new Promise((r) => setTimeout(r, 100));
      rows = await o.prisma.generationRequest.findMany({ where: { tenantId: o.tenantId } });
    }
    const rowOf = new Map(rows.map((r) => [r.id, r]));
    const clients: StreamClient[] = [];
    for (const [i, s] of seen.entries()) {
      const p = plans[i];
      const head = s.requestId ? await headSide(redis, queue, o.redisPrefix, s.requestId) : null;
      const row = s.requestId ? rowOf.get(s.requestId) : undefined;
      const n = s.textAt.length;
      const c: StreamClient = {
        ...p,
        requestId: s.requestId,
        status: s.status,
        refusals: s.refusals,
        error: s.error,
        sentMs: s.sentAt - t0,
        ttftMs: n ? s.textAt[0] - s.sentAt : null,
        totalMs: s.endAt === null ? null : s.endAt - s.sentAt,
        perTokenMs: n > 1 ? (s.textAt[n - 1] - s.textAt[0]) / (n - 1) : null,
        contentChunks: n,
        finishReason: s.finishReason,
        completionTokens: s.completionTokens,
        done: s.done,
        headTokens: head?.tokens ?? null,
        headEmptyTextTokens: head?.emptyText ?? null,
        textMatchesHead: head ? head.text === s.text : null,
        rowStatus: row?.status ?? null,
        rowCompletionTokens: row?.completionTokens ?? null,
        rowAccounted: !!row?.accountedAt,
        decoded: head?.decoded ?? null,
        toBullMqMs: head ? diff(head.inBullMqAt, s.sentAt) : null,
        bullMqWaitMs: head ? diff(head.takenAt, head.inBullMqAt) : null,
        kvHoldMs: head ? diff(head.startedAt, head.takenAt) : null,
        startToFirstTokenMs: head ? diff(head.firstTextAt, head.startedAt) : null,
        deliveryMs: head && n ? diff(s.textAt[0], head.firstTextAt) : null,
        lost: true,
      };
      c.lost = !(
        c.error === null &&
        c.done &&
        c.finishReason !== null &&
        c.completionTokens !== null &&
        c.contentChunks + (c.headEmptyTextTokens ?? 0) === c.completionTokens &&
        c.headTokens === c.completionTokens &&
        c.textMatchesHead === true &&
        c.rowStatus === 'succeeded' &&
        c.rowAccounted &&
        c.rowCompletionTokens === c.completionTokens
      );
      clients.push(c);
    }
    const rollup = await o.prisma.usageRollup.aggregate({
      where: { tenantId: o.tenantId, granularity: 'day' },
      _sum: { requests: true, completionTokens: true },
    });
    const openSlots = Number(
      (await redis.get(`${o.redisPrefix}quota:${o.tenantId}:concurrency`)) ?? 0,
    );
    return summarize(o, clients, rows, rollup._sum, openSlots, cpu);
  } finally {
    await queue.close();
    await redis.quit();
  }
}

const vals = (xs: (number | null)[]) => xs.filter((x): x is number => x !== null);

function summarize(
  o: StreamLoadOptions,
  clients: StreamClient[],
  rows: { completionTokens: number }[],
  rollupSum: { requests: number | null; completionTokens: bigint | null },
  openSlots: number,
  cpu: StreamLoadResult['cpu'],
): StreamLoadResult {
  const ttft = vals(clients.map((c) => c.ttftMs));
  const sent = clients.map((c) => c.sentMs).filter(Number.isFinite);
  const tokens = clients.reduce((a, c) => a + (c.completionTokens ?? 0), 0);
  // Wall time: the first send to the last [DONE], on the section's clock.
  const ends = vals(clients.map((c) => (c.totalMs === null ? null : c.sentMs + c.totalMs)));
  const wallS = (Math.max(...ends) - Math.min(...sent)) / 1000;
  const rollup = {
    requests: Number(rollupSum.requests ?? 0),
    completionTokens: Number(rollupSum.completionTokens ?? 0),
    rows: rows.length,
    rowsTokens: rows.reduce((a, r) => a + r.completionTokens, 0),
  };
  const lost = clients.filter((c) => c.lost).length;
  const errors = clients.filter((c) => c.error !== null).length;
  const nothingLost =
    lost === 0 &&
    errors === 0 &&
    rollup.rows === clients.length &&
    rollup.requests === clients.length &&
    rollup.completionTokens === tokens &&
    rollup.rowsTokens === tokens &&
    openSlots === 0;
  const methods = Object.fromEntries(
    METHODS.map((m) => [m, clients.filter((c) => c.method === m).length]),
  ) as Record<Method, number>;
  const r: StreamLoadResult = {
    config: {
      clients: o.clients,
      staggerMs: o.staggerMs,
      seed: o.seed,
      methods,
      greedy: clients.filter((c) => c.temperature === 0).length,
      sampled: clients.filter((c) => c.temperature === 1).length,
      maxTokensRequested: clients.reduce((a, c) => a + c.maxTokens, 0),
    },
    ttftP50Ms: quantile(ttft, 0.5),
    ttftP99Ms: quantile(ttft, 0.99),
    ttftMaxMs: Math.max(...ttft),
    totalP50Ms: quantile(vals(clients.map((c) => c.totalMs)), 0.5),
    totalP99Ms: quantile(vals(clients.map((c) => c.totalMs)), 0.99),
    perTokenP50Ms: quantile(vals(clients.map((c) => c.perTokenMs)), 0.5),
    completionTokens: tokens,
    wallS,
    tokensPerS: tokens / wallS,
    errors,
    refusals: clients.reduce((a, c) => a + c.refusals, 0),
    lost,
    chunksEqualUsage: clients.filter((c) => c.contentChunks === c.completionTokens).length,
    emptyTextTokens: clients.reduce((a, c) => a + (c.headEmptyTextTokens ?? 0), 0),
    rollup,
    openConcurrencySlots: openSlots,
    nothingLost,
    cpu,
    clientsDetail: clients,
  };
  return r;
}

/** TTFT and its parts, in order, as the table names them. */
const BREAKDOWN = [
  ['sent -> in BullMQ (admission, fair scheduler)', 'toBullMqMs'],
  ['in BullMQ -> head took it', 'bullMqWaitMs'],
  ['took it -> started (KV budget hold)', 'kvHoldMs'],
  ['started -> first token (prefill, first step)', 'startToFirstTokenMs'],
  ['first token -> client read it', 'deliveryMs'],
  ['TTFT', 'ttftMs'],
] as const;

export function combineRuns(warmUp: StreamLoadResult, runs: StreamLoadResult[]): StreamLoadRuns {
  const median = (xs: number[]) => quantile(xs, 0.5);
  const clients = runs.flatMap((r) => r.clientsDetail);
  const part = (name: string, xs: (number | null)[]) => ({
    part: name,
    p50Ms: quantile(vals(xs), 0.5),
    p99Ms: quantile(vals(xs), 0.99),
  });
  const m = {
    ttftP50Ms: median(runs.map((r) => r.ttftP50Ms)),
    ttftP99Ms: median(runs.map((r) => r.ttftP99Ms)),
    perTokenP50Ms: median(runs.map((r) => r.perTokenP50Ms)),
    totalP50Ms: median(runs.map((r) => r.totalP50Ms)),
    totalP99Ms: median(runs.map((r) => r.totalP99Ms)),
    tokensPerS: median(runs.map((r) => r.tokensPerS)),
  };
  const allFirst = clients.every((c) => c.ttftMs !== null);
  const all = [warmUp, ...runs];
  const nothingLost = all.every((r) => r.nothingLost);
  return {
    config: runs[0].config,
    warmUp,
    runs,
    median: m,
    errors: all.reduce((a, r) => a + r.errors, 0),
    refusals: all.reduce((a, r) => a + r.refusals, 0),
    lost: all.reduce((a, r) => a + r.lost, 0),
    nothingLost,
    breakdown: BREAKDOWN.map(([name, key]) =>
      part(
        name,
        clients.map((c) => c[key]),
      ),
    ),
    byMethod: METHODS.map((method) => {
      const of = clients.filter((c) => c.method === method);
      return {
        method,
        clients: of.length,
        ttftP50Ms: quantile(vals(of.map((c) => c.ttftMs)), 0.5),
        perTokenP50Ms: quantile(vals(of.map((c) => c.perTokenMs)), 0.5),
      };
    }),
    met: {
      ttftP50: allFirst && m.ttftP50Ms <= STREAM_TARGETS.ttftP50Ms,
      ttftP99: allFirst && m.ttftP99Ms <= STREAM_TARGETS.ttftP99Ms,
      nothingLost,
    },
  };
}

/** The section's markdown. */
export function streamLoadTable(
  s: StreamLoadRuns,
  stages: number,
  concurrency: number,
  npmStartConcurrency: number,
) {
  const f = (x: number, d = 0) => (Number.isFinite(x) ? x.toFixed(d) : '-');
  const met = (ok: boolean) => (ok ? '(met)' : '(**missed**)');
  const c = s.config;
  const n = s.runs.length;
  const all = [s.warmUp, ...s.runs];
  const sum = (g: (r: StreamLoadResult) => number) => all.reduce((a, r) => a + g(r), 0);
  const lines = [
    `## (c) Load: ${c.clients} streaming clients`,
    '',
    `${stages} stage processes on the demo pair as \`npm start\` runs them (QUEUE_CONCURRENCY ${concurrency}${concurrency === npmStartConcurrency ? '' : `, not npm start's ${npmStartConcurrency}`}, the service's other defaults). ${c.clients} clients ${c.staggerMs > 0 ? `each starting at a random moment of ${c.staggerMs} ms` : 'starting at once'} (seed ${c.seed}), one POST /v1/completions stream:true each: max_tokens 24-64 (${c.maxTokensRequested} in all), methods ${METHODS.map((m) => `${m} ${c.methods[m]}`).join(', ')}; ${c.greedy} greedy, ${c.sampled} temperature 1 (no seed, so outputs and their lengths differ between runs). The same draw runs once as a warm-up on the freshly started pipeline (shown, not judged), then ${n} time${n > 1 ? 's' : ''} more; the target is judged on the median over those ${n} runs, and nothing may be lost in any. TTFT from sending the request to reading the first text chunk; refusals retried after Retry-After, counted from the first send. Quantiles nearest-rank (p99 of ${c.clients} = the slowest).`,
    '',
    `| run | TTFT p50 ms (target <= ${STREAM_TARGETS.ttftP50Ms}) | TTFT p99 ms (target <= ${STREAM_TARGETS.ttftP99Ms}) | ms/token p50 | total p50 / p99 ms | tokens/s | tokens | errors | refusals | lost | CPU: API / stages / rest / idle s |`,
    '|---|---|---|---|---|---|---|---|---|---|---|',
    ...[s.warmUp, ...s.runs].map(
      (r, i) =>
        `| ${i === 0 ? 'warm-up' : i} | ${f(r.ttftP50Ms)} | ${f(r.ttftP99Ms)} | ${f(r.perTokenP50Ms, 1)} | ${f(r.totalP50Ms)} / ${f(r.totalP99Ms)} | ${f(r.tokensPerS, 1)} | ${r.completionTokens} in ${f(r.wallS, 2)} s | ${r.errors} | ${r.refusals} | ${r.lost} | ${f(r.cpu.apiS, 1)} / ${f(r.cpu.stagesS, 1)} / ${f(r.cpu.restS, 1)} / ${f(r.cpu.idleS, 1)} |`,
    ),
    `| **median** | **${f(s.median.ttftP50Ms)}** ${met(s.met.ttftP50)} | **${f(s.median.ttftP99Ms)}** ${met(s.met.ttftP99)} | ${f(s.median.perTokenP50Ms, 1)} | ${f(s.median.totalP50Ms)} / ${f(s.median.totalP99Ms)} | ${f(s.median.tokensPerS, 1)} | | **${s.errors}** ${met(s.errors === 0)} | **${s.refusals}** ${met(s.refusals === 0)} | **${s.lost}** ${met(s.nothingLost)} | |`,
    '',
    `Nothing lost (${s.nothingLost ? 'ok' : 'MISMATCH'}): of the ${all.length * c.clients} requests of all runs, ${sum((r) => c.clients - r.lost)} ended [DONE] after finish_reason and usage, with as many tokens in the head's records (and the same text) as usage said, a row succeeded, accounted and billed those tokens; ${sum((r) => r.chunksEqualUsage)} read exactly usage.completion_tokens content chunks (${sum((r) => r.emptyTextTokens)} tokens had empty text, half a UTF-8 character, and no chunk of their own). Per run, tokens read by the clients / billed in the rows / in the daily rollup (its requests), open concurrency slots: ${all
      .map(
        (r) =>
          `${r.completionTokens} / ${r.rollup.rowsTokens} / ${r.rollup.completionTokens} (${r.rollup.requests}), ${r.openConcurrencySlots}`,
      )
      .join(
        '; ',
      )}. CPU columns: core-seconds from the first send to the last [DONE] (the host has ${os.cpus().length} cores); rest = PostgreSQL, Redis, the clients and anything else on the host.`,
    '',
    `| where TTFT goes (the ${n * c.clients} requests of the judged runs) | p50 ms | p99 ms |`,
    '|---|---|---|',
    ...s.breakdown.map((b) => `| ${b.part} | ${f(b.p50Ms)} | ${f(b.p99Ms)} |`),
    '',
    "Per method asked (the clients send in the order of their index, so a method's TTFT also reflects where the draw put its clients in the queue):",
    '',
    '| method asked | requests | TTFT p50 ms | ms/token p50 |',
    '|---|---|---|---|',
    ...s.byMethod.map(
      (m) => `| ${m.method} | ${m.clients} | ${f(m.ttftP50Ms)} | ${f(m.perTokenP50Ms, 1)} |`,
    ),
  ];
  return lines.join('\n');
}
