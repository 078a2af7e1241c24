// Fault benchmark (npm run bench:faults, #18): real PostgreSQL, Redis, the compiled API
// (`node apps/api/dist/main.js`) and a pipeline of real stage processes on the demo pair, run
// under the StageSupervisor that `npm start` uses (restart with backoff, 250 ms first). Each
// trial streams one greedy request (POST /v1/completions stream:true) and SIGKILLs one stage at
// a random moment of it: the middle stage, the head or the last stage in turn, after a random
// number of streamed tokens plus a random 0-150 ms. Half a second after the kill a second,
// non-streaming request probes admission during the outage (refused 503 + Retry-After, or
// admitted and then served once the pipeline is whole again).
//
// For every trial: time from the kill to the client's first sign of life (an SSE comment or
// data), and to its recovery (its first text once the job runs again: the retry's `started`
// in the request's event stream) or its clean error; "generated before kill" when the head
// had written the last token before the kill landed (the client was still reading), and
// "undisturbed" when the job needed no retry; whether a recovered
// stream's text is byte-identical to a clean run of the same prompt; the request's record
// once accounted. A request is
//   lost       when the client's stream ended with neither [DONE] nor an error, or its
//              record is never accounted;
//   misbilled  when the completion tokens billed differ from the distinct token indices the
//              head delivered to its event stream, or are fewer than the text chunks the
//              client read, or a probe's billed usage differs from what its response said;
//   hung       when the client heard nothing for --hang-s seconds.
// Prints a markdown table and writes bench/results/faults.json (or --out).
import { decodeEvent, EVENT_FIELD, eventsKey } from '@pipedec/contracts';
import { createPrismaClient, newApiKeySecret, type PrismaClient } from '@pipedec/db';
import { createTestDatabase, deleteRedisPrefix, redisPrefix, testEnv } from '@pipedec/testkit';
import { freePort } from '@pipedec/testkit/local-cluster';
import { Redis } from 'ioredis';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { startApi, stopChild } from './api-process.js';
import { StageSupervisor } from '../apps/stage-node/dist/launcher/stage-supervisor.js';
import { reportDeadStages } from '../apps/stage-node/dist/launcher/dead-stage.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const MODEL = 'pipedec-demo';
const STAGE_MAIN = path.join(ROOT, 'apps/stage-node/dist/main.js');

const { values: args } = parseArgs({
  options: {
    trials: { type: 'string', default: '30' },
    stages: { type: 'string', default: '3' },
    tokens: { type: 'string', default: '96' },
    'hang-s': { type: 'string', default: '60' },
    'pipeline-wait-s': { type: 'string', default: '30' },
    seed: { type: 'string', default: '18' },
    // Which stages to kill, in turn (a subset of middle,head,last).
    targets: { type: 'string', default: 'middle,head,last' },
    out: { type: 'string', default: path.join(ROOT, 'bench', 'results', 'faults.json') },
  },
});
const TRIALS = Number(args.trials);
const STAGES = Number(args.stages);
const TOKENS = Number(args.tokens);
const HANG_MS = Number(args['hang-s']) * 1000;
const PIPELINE_WAIT_S = Number(args['pipeline-wait-s']);
if (STAGES < 3) throw new Error('--stages must be at least 3 (head, middle, last)');

/** Deterministic random moments (mulberry32), so a run can be repeated. */
let state = Number(args.seed) >>> 0;
function random(): number {
  state = (state + 0x6d2b79f5) >>> 0;
  let t = state;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}

type Target = 'middle' | 'head' | 'last';
const TARGETS = args.targets.split(',') as Target[];
if (TARGETS.some((t) => !['middle', 'head', 'last'].includes(t))) {
  throw new Error('--targets: a comma list of middle, head, last');
}
const stageOf = (t: Target) => (t === 'head' ? 0 : t === 'last' ? STAGES - 1 : 1);

interface Tenant {
  id: string;
  key: string;
}

/** A tenant on a plan whose limits never refuse the benchmark. */
async function benchTenant(prisma: PrismaClient): Promise<Tenant> {
  const plan = await prisma.plan.create({
    data: {
      name: 'bench-faults',
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
  });
  const tenant = await prisma.tenant.create({ data: { name: 'bench-faults', planId: plan.id } });
  const { secret, prefix, hash } = newApiKeySecret();
  await prisma.apiKey.create({
    data: { tenantId: tenant.id, name: 'bench', prefix, secretHash: hash, scopes: ['generate'] },
  });
  return { id: tenant.id, key: secret };
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls until the API's readiness says a pipeline is whole (what a load balancer reads). */
async function waitServing(url: string, timeoutMs: number): Promise<number> {
  const start = Date.now();
  for (;;) {
    const res = await fetch(`${url}/health`).catch(() => null);
    if (res?.status === 200) return Date.now() - start;
    if (Date.now() - start > timeoutMs) throw new Error(`API not serving after ${timeoutMs} ms`);
    await sleep(100);
  }
}

async function prompts(): Promise<string[]> {
  const texts: string[] = [];
  for (const f of ['quotes.jsonl', 'code.jsonl', 'scripture.jsonl']) {
    const lines = (await readFile(path.join(ROOT, 'models/prompts', f), 'utf8')).split('\n');
    for (const line of lines.slice(0, 2)) {
      if (line) texts.push((JSON.parse(line) as { text: string }).text.slice(0, 160));
    }
  }
  return texts;
}

interface Streamed {
  requestId: string;
  status: number;
  text: string;
  textChunks: number;
  done: boolean;
  error: { code?: string } | null;
  /** First byte of any kind (comment, keep-alive or data) after the kill. */
  firstSignAt: number;
  /** Arrival of each text chunk after the kill. */
  textAfterKill: number[];
  /** Arrival of the error chunk, if any. */
  errorAt: number;
  hung: boolean;
}

/** When the trial's stage was killed (0: not yet). */
interface Fault {
  at: number;
}

/**
 * Streams one request; `onText(n)` is called after each text chunk with the count so far (it
 * may schedule the kill, which sets fault.at). A client still not ended --hang-s after the
 * kill is hung (keep-alives alone do not count as being served).
 */
async function stream(
  url: string,
  key: string,
  prompt: string,
  fault: Fault,
  onText: (n: number) => void,
): Promise<Streamed> {
  const controller = new AbortController();
  const res = await fetch(`${url}/v1/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({
      model: MODEL,
      prompt,
      max_tokens: TOKENS,
      temperature: 0,
      stream: true,
    }),
    signal: controller.signal,
  });
  const out: Streamed = {
    requestId: res.headers.get('x-request-id') ?? '',
    status: res.status,
    text: '',
    textChunks: 0,
    done: false,
    error: null,
    firstSignAt: 0,
    textAfterKill: [],
    errorAt: 0,
    hung: false,
  };
  if (res.status !== 200 || !res.body) return out;
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  const watchdog = setInterval(() => {
    if (fault.at && Date.now() - fault.at > HANG_MS) {
      out.hung = true;
      controller.abort();
    }
  }, 250);
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      const now = Date.now();
      const after = fault.at > 0 && now >= fault.at;
      if (after && !out.firstSignAt) out.firstSignAt = now;
      buffer += decoder.decode(value, { stream: true });
      let cut: number;
      while ((cut = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        if (!block.startsWith('data: ')) continue; // a comment: failure notice or keep-alive
        const data = block.slice(6);
        if (data === '[DONE]') {
          out.done = true;
          continue;
        }
        const chunk = JSON.parse(data) as {
          choices?: { text?: string }[];
          error?: { code?: string };
        };
        if (chunk.error) {
          out.error = chunk.error;
          out.errorAt = now;
          continue;
        }
        const text = chunk.choices?.[0]?.text;
        if (!text) continue;
        out.text += text;
        out.textChunks++;
        if (after) out.textAfterKill.push(now);
        onText(out.textChunks);
      }
    }
  } catch (e) {
    if (!out.hung) throw e;
  } finally {
    clearInterval(watchdog);
  }
  return out;
}

interface Probe {
  status: number;
  ms: number;
  retryAfter: string | null;
  code: string | null;
  requestId: string | null;
  completionTokens: number | null;
}

/** A plain request sent during the outage. */
async function probe(url: string, key: string, prompt: string): Promise<Probe> {
  const sent = Date.now();
  const res = await fetch(`${url}/v1/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: MODEL, prompt, max_tokens: 8, temperature: 0 }),
  });
  const ms = Date.now() - sent;
  const body = (await res.json()) as {
    id?: string;
    usage?: { completion_tokens: number };
    error?: { code?: string };
  };
  return {
    status: res.status,
    ms,
    retryAfter: res.headers.get('retry-after'),
    code: body.error?.code ?? null,
    requestId: res.headers.get('x-request-id'),
    completionTokens: body.usage?.completion_tokens ?? null,
  };
}

interface Trial {
  trial: number;
  target: Target;
  stage: number;
  killAfterTokens: number;
  jitterMs: number;
  requestId: string;
  outcome: 'recovered' | 'error' | 'ended-before-kill' | 'undisturbed' | 'lost' | 'hung';
  errorCode: string | null;
  firstSignMs: number | null;
  resolveMs: number | null;
  identical: boolean | null;
  delivered: number;
  billed: number | null;
  headIndices: number;
  status: string | null;
  misbilled: boolean;
  lost: boolean;
  probe: Probe;
  probeMisbilled: boolean;
  probeLost: boolean;
  servingAgainMs: number;
  /** The request's event stream: its records, ms from the kill. */
  timeline: string[];
}

async function accounted(prisma: PrismaClient, id: string, timeoutMs: number) {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const r = await prisma.generationRequest.findUnique({ where: { id } });
    if (r?.accountedAt) return r;
    if (Date.now() > until) return null;
    await sleep(100);
  }
}

/**
 * The distinct token indices the heads wrote to the request's event stream, and its records
 * other than tokens, ms from the kill (what happened, for reading a slow trial).
 */
async function headRecords(
  redis: Redis,
  prefix: string,
  id: string,
  killedAt: number,
): Promise<{ indices: number; timeline: string[]; doneDt: number | null; retryDt: number | null }> {
  const records = await redis.xrange(eventsKey(prefix, id), '-', '+');
  const seen = new Set<number>();
  const timeline: string[] = [];
  let lastToken = -1;
  let doneDt: number | null = null;
  let retryDt: number | null = null;
  for (const [, fields] of records) {
    const i = fields.indexOf(EVENT_FIELD);
    const e = decodeEvent(fields[i + 1]);
    const dt = e.at - killedAt;
    if (e.type === 'token') {
      seen.add(e.index);
      if (lastToken < 0 || e.index !== lastToken + 1) timeline.push(`${dt} token ${e.index}`);
      lastToken = e.index;
    } else if (e.type === 'started') {
      if (dt >= 0 && retryDt === null) retryDt = dt;
      timeline.push(`${dt} started attempt ${e.attempt} on ${e.pipelineId}`);
    } else if (e.type === 'error') {
      timeline.push(`${dt} error ${e.code}`);
    } else if (e.type === 'done') {
      doneDt = dt;
      timeline.push(`${dt} done ${e.finishReason} (last token ${lastToken})`);
    }
  }
  return { indices: seen.size, timeline, doneDt, retryDt };
}

function pct(xs: number[], p: number): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
}

const f = (x: number | null) => (x === null ? '-' : String(Math.round(x)));

async function main(): Promise<void> {
  const startedAt = Date.now();
  const loadAtStart = os.loadavg();
  const db = await createTestDatabase();
  const prefix = redisPrefix().replace(/^test:/, 'bench:faults:');
  const redisUrl = testEnv().TEST_REDIS_URL;
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: null });
  const prisma = createPrismaClient(db.url, { poolSize: 2 });
  let api: Awaited<ReturnType<typeof startApi>> | null = null;
  const supervisorLog: string[] = [];
  let supervisor: StageSupervisor | null = null;
  try {
    const tenant = await benchTenant(prisma);
    api = await startApi(
      {
        NODE_ENV: 'production',
        DATABASE_URL: db.url,
        REDIS_URL: redisUrl,
        REDIS_PREFIX: prefix,
        API_HOST: '127.0.0.1',
        MODEL_NAME: MODEL,
        MODEL_DIR: path.join(ROOT, 'models/demo-target'),
        PIPELINE_WAIT_S: String(PIPELINE_WAIT_S),
      },
      { readyPath: '/health/live' },
    );
    const specs = [];
    for (let s = 0; s < STAGES; s++) {
      const grpc = `127.0.0.1:${await freePort()}`;
      specs.push({
        name: `stage ${s}`,
        command: process.execPath,
        args: [STAGE_MAIN],
        env: {
          PATH: process.env.PATH ?? '/usr/bin:/bin',
          MODEL_NAME: MODEL,
          PIPELINE_ID: 'bench-faults',
          STAGE_INDEX: String(s),
          STAGE_COUNT: String(STAGES),
          CHECKPOINT_DIR: path.join(ROOT, 'models/demo-target'),
          DRAFT_CHECKPOINT_DIR: path.join(ROOT, 'models/demo-draft'),
          REDIS_URL: redisUrl,
          REDIS_PREFIX: prefix,
          GRPC_LISTEN: grpc,
          GRPC_ADVERTISE: grpc,
          HEALTH_HOST: '127.0.0.1',
          HEALTH_PORT: String(await freePort()),
        },
      });
    }
    // The supervisor's defaults are npm start's: 250 ms first restart, doubling to 10 s; as
    // there, a stage seen to exit leaves the registry at once.
    const logLine = (line: string) => supervisorLog.push(`${new Date().toISOString()} ${line}`);
    supervisor = new StageSupervisor(specs, undefined, logLine, 'ignore');
    reportDeadStages(supervisor, redis, prefix, 'bench-faults', logLine);
    supervisor.start();
    await waitServing(api.url, 180_000);

    const texts = await prompts();
    // Clean runs: what each prompt's greedy output is with no fault.
    const clean: string[] = [];
    for (const p of texts)
      clean.push((await stream(api.url, tenant.key, p, { at: 0 }, () => undefined)).text);
    process.stderr.write(`clean runs done (${clean.map((c) => c.length).join(', ')} chars)\n`);

    const trials: Trial[] = [];
    for (let t = 0; t < TRIALS; t++) {
      const target = TARGETS[t % TARGETS.length];
      const stage = stageOf(target);
      const p = t % texts.length;
      const killAfterTokens = 1 + Math.floor(random() * Math.floor(TOKENS * 0.5));
      const jitterMs = Math.floor(random() * 150);
      let probing: Promise<Probe> | null = null;
      let scheduled = false;
      const fault: Fault = { at: 0 };
      const kill = () => {
        const pid = supervisor!.pid(stage);
        if (pid !== undefined) process.kill(pid, 'SIGKILL');
        fault.at = Date.now();
        probing = sleep(500).then(() => probe(api!.url, tenant.key, texts[(p + 1) % texts.length]));
      };
      const s = await stream(api.url, tenant.key, texts[p], fault, (n) => {
        if (scheduled || n < killAfterTokens) return;
        scheduled = true;
        setTimeout(kill, jitterMs);
      });
      // A stream that ended before its kill landed: the kill still happens (a stage dies
      // between requests), so the probe and the restart are still measured.
      while (scheduled && fault.at === 0) await sleep(5);
      if (!scheduled) kill();
      const realKill = fault.at;
      const firstSign = s.firstSignAt;
      const pr: Probe = (await (probing as Promise<Probe> | null)) ?? {
        status: 0,
        ms: 0,
        retryAfter: null,
        code: null,
        requestId: null,
        completionTokens: null,
      };
      const row = s.requestId ? await accounted(prisma, s.requestId, 90_000) : null;
      const { indices, timeline, doneDt, retryDt } = s.requestId
        ? await headRecords(redis, prefix, s.requestId, realKill)
        : { indices: 0, timeline: [], doneDt: null, retryDt: null };
      let probeLost = false;
      let probeMisbilled = false;
      if (pr.status === 200 && pr.requestId) {
        const pRow = await accounted(prisma, pr.requestId, 90_000);
        probeLost = pRow === null;
        probeMisbilled = pRow !== null && pRow.completionTokens !== pr.completionTokens;
      } else if (pr.status !== 503) {
        probeLost = pr.status !== 0;
      }
      const lost = s.hung ? false : (!s.done && !s.error) || row === null;
      const misbilled =
        row !== null && (row.completionTokens !== indices || row.completionTokens < s.textChunks);
      // The head had written its last token before the kill landed: the client was only
      // reading what was already generated, nothing to recover.
      const before = doneDt !== null && doneDt < 0 && retryDt === null;
      // Recovery: the client's first text once the job was running again after the kill (a
      // retry's `started`); a clean error: its error chunk.
      const recoveredAt =
        retryDt === null ? 0 : (s.textAfterKill.find((at) => at >= realKill + retryDt) ?? 0);
      const resolved = s.error ? s.errorAt : recoveredAt;
      const outcome: Trial['outcome'] = s.hung
        ? 'hung'
        : lost
          ? 'lost'
          : s.error
            ? 'error'
            : before
              ? 'ended-before-kill'
              : recoveredAt
                ? 'recovered'
                : 'undisturbed';
      const servingAgainMs = await waitServing(api.url, 120_000);
      const trial: Trial = {
        trial: t + 1,
        target,
        stage,
        killAfterTokens,
        jitterMs,
        requestId: s.requestId,
        outcome,
        errorCode: s.error?.code ?? null,
        firstSignMs: firstSign ? firstSign - realKill : null,
        resolveMs: resolved ? resolved - realKill : null,
        identical: s.done && !s.error ? s.text === clean[p] : null,
        delivered: s.textChunks,
        billed: row?.completionTokens ?? null,
        headIndices: indices,
        status: row?.status ?? null,
        misbilled,
        lost,
        probe: pr,
        probeMisbilled,
        probeLost,
        servingAgainMs,
        timeline,
      };
      trials.push(trial);
      process.stderr.write(
        `trial ${t + 1}/${TRIALS} ${target}: ${outcome}${trial.errorCode ? ` (${trial.errorCode})` : ''} resolve ${f(trial.resolveMs)} ms, first sign ${f(trial.firstSignMs)} ms, billed ${trial.billed}/${indices} (client ${s.textChunks}), probe ${pr.status} in ${pr.ms} ms\n`,
      );
    }

    const summarize = (rows: Trial[]) => {
      const resolve = rows.flatMap((r) => (r.resolveMs === null ? [] : [r.resolveMs]));
      const sign = rows.flatMap((r) => (r.firstSignMs === null ? [] : [r.firstSignMs]));
      const refused = rows.filter((r) => r.probe.status === 503);
      return {
        trials: rows.length,
        recovered: rows.filter((r) => r.outcome === 'recovered').length,
        errored: rows.filter((r) => r.outcome === 'error').length,
        endedBeforeKill: rows.filter((r) => r.outcome === 'ended-before-kill').length,
        undisturbed: rows.filter((r) => r.outcome === 'undisturbed').length,
        notIdentical: rows.filter((r) => r.identical === false).length,
        lost: rows.filter((r) => r.lost || r.probeLost).length,
        misbilled: rows.filter((r) => r.misbilled || r.probeMisbilled).length,
        hung: rows.filter((r) => r.outcome === 'hung').length,
        p50Ms: pct(resolve, 50),
        p99Ms: pct(resolve, 99),
        maxMs: resolve.length ? Math.max(...resolve) : null,
        firstSignP50Ms: pct(sign, 50),
        firstSignP99Ms: pct(sign, 99),
        probesRefused: refused.length,
        probesAdmitted: rows.filter((r) => r.probe.status === 200).length,
        probeRefuseP50Ms: pct(
          refused.map((r) => r.probe.ms),
          50,
        ),
        servingAgainP50Ms: pct(
          rows.map((r) => r.servingAgainMs),
          50,
        ),
      };
    };
    const all = summarize(trials);
    const byTarget = Object.fromEntries(
      TARGETS.map((t) => [t, summarize(trials.filter((r) => r.target === t))]),
    );
    const errorCodes = [...new Set(trials.flatMap((r) => (r.errorCode ? [r.errorCode] : [])))];

    const out: string[] = [];
    out.push(`# bench:faults (${new Date().toISOString()})`, '');
    out.push(
      `Demo pair on ${STAGES} real stage processes under the StageSupervisor (npm start's backoff), the compiled API, PostgreSQL and Redis on ${os.cpus().length} CPUs; load average at start ${loadAtStart.map((x) => x.toFixed(1)).join(' ')}, at end ${os
        .loadavg()
        .map((x) => x.toFixed(1))
        .join(
          ' ',
        )}. Each trial: one streamed greedy request of ${TOKENS} tokens, SIGKILL of one stage after a random 1-${Math.floor(TOKENS * 0.5)} streamed tokens + 0-150 ms; a plain request 500 ms after the kill. Times from the kill. PIPELINE_WAIT_S=${PIPELINE_WAIT_S}.`,
      '',
      '| killed | trials | recovered | clean error | generated before kill / undisturbed | recovered text differs | **lost** | **misbilled** | **hung** | p50 ms to recovery/error | p99 ms | first sign p50 / p99 ms | probes refused 503 / admitted | probe 503 p50 ms | serving again p50 ms |',
      '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|',
    );
    for (const [name, s] of [...Object.entries(byTarget), ['**all**', all] as const]) {
      out.push(
        `| ${name} | ${s.trials} | ${s.recovered} | ${s.errored} | ${s.endedBeforeKill} / ${s.undisturbed} | ${s.notIdentical} | ${s.lost} | ${s.misbilled} | ${s.hung} | ${f(s.p50Ms)} | ${f(s.p99Ms)} | ${f(s.firstSignP50Ms)} / ${f(s.firstSignP99Ms)} | ${s.probesRefused} / ${s.probesAdmitted} | ${f(s.probeRefuseP50Ms)} | ${f(s.servingAgainP50Ms)} |`,
      );
    }
    out.push('', `Error codes seen: ${errorCodes.join(', ') || 'none'}.`);
    process.stdout.write(`${out.join('\n')}\n`);

    await mkdir(path.dirname(args.out), { recursive: true });
    await writeFile(
      args.out,
      `${JSON.stringify(
        {
          at: new Date().toISOString(),
          durationS: Math.round((Date.now() - startedAt) / 1000),
          host: { cpus: os.cpus().length, loadAtStart, loadAtEnd: os.loadavg() },
          config: {
            stages: STAGES,
            tokens: TOKENS,
            pipelineWaitS: PIPELINE_WAIT_S,
            seed: args.seed,
          },
          trials: all.trials,
          lost: all.lost,
          misbilled: all.misbilled,
          hung: all.hung,
          p50Ms: all.p50Ms,
          p99Ms: all.p99Ms,
          summary: all,
          byTarget,
          errorCodes,
          rows: trials,
          supervisorLog,
        },
        null,
        2,
      )}\n`,
    );
    process.stderr.write(`wrote ${args.out}\n`);
  } catch (error) {
    if (api) process.stderr.write(`API log tail:\n${api.log.join('').slice(-4000)}\n`);
    throw error;
  } finally {
    await supervisor?.stop();
    if (api) await stopChild(api.child);
    await prisma.$disconnect();
    await deleteRedisPrefix(redis, prefix);
    redis.disconnect();
    await db.drop();
  }
}

await main();
