// Benchmark of batching (npm run bench:batching, issue #16 item 7): C = 1, 2, 4, 8, 16 clients
// at once, each sending --requests requests one after another (a lone client
// --one-client-requests, default 4: one request is too small a sample on a shared host; the
// one-client loads of both clusters alternate for --one-client-rounds, default 3), with
// prompts of the three sets, 32 to 888 tokens, chosen so that greedy decoding runs all --tokens
// output tokens (buildPrompts), for four methods:
//
//   pipedec-solo  PipeDec one request at a time (QUEUE_CONCURRENCY 1: the service before #16)
//   pp, stpp, pipedec  batched: QUEUE_CONCURRENCY >= C, every other setting the service's
//                 default (STAGE_BATCH_REQUESTS 1, ROW_BUDGET 16: a request joining k others gets
//                 width min(4, 16 / (k + 1)); SPECULATE_MAX_IN_FLIGHT: past that many
//                 requests in flight it decodes as PP, 1 on lo4 as npm start sets it, 3 on the
//                 others as a stage node does; STAGE_LANES: a call takes at most
//                 ceil(requests / lanes), 2 on lo4 as npm start sets it on 2 cores, the stage
//                 count on the others), or --stage-batch N requests per stage call,
//                 --speculate-max-in-flight N, --stage-lanes N
//
// on three clusters:
//
//   lo4    4 real stage processes on loopback (the demo pair)
//   ns5x8  8 real stage processes, each in its own network namespace, 5 ms per hop each way
//          through a user-space delay proxy (bench/cluster-netns.ts; its CPU reported apart)
//   sim14  the timestep model at 14 stages: the engine's simulator runs each request for real
//          (demo pair split in 14) and records its timesteps; each stage is priced as one
//          measured lo4 stage, a per call + b per decode row + c per prompt row (non-negative
//          least squares over the stage compute of the lo4 requests that had the pipeline to
//          themselves), with the lo4 hop and the lo4 draft priced the same way.
//          The simulator runs one request at a time, so several are modelled on top: all
//          requests in flight advance one of their own timesteps per common timestep, which
//          lasts  sum of serial draft + max(max over stages of the stage's calls, sum of
//          overlapped draft) + hop,  a stage's calls being one per request with rows there
//          (ceil(n / per call) calls with the rows summed, per call = min(stage-batch,
//          ceil(requests in flight / lanes))). The draft is one model on the
//          head, so drafts of all requests add up. With one request this is the simulator's own
//          timestep; admission and width follow the head's rules (FIFO, widthUnderLoad).
//
// On lo4's batched cluster it also runs the issue's long-prompt join (joinLong; --join-long
// false skips it): 7 clients decode from the shortest prompts, a 1,023-token prompt joins once
// the head runs all 7, and their time-between-tokens p99 is compared with the same load alone
// (PP and PipeDec clients; meta.joinLong and a target line).
//
// Per cluster, client count and method: aggregate output tokens/s (all tokens over the wall
// time of the whole load), time to first token p50/p99 over requests (enqueue to the first
// token event's `at`), time between tokens p50/p99 (gaps between consecutive token events of a
// request, pooled; tokens committed together give gaps of ~0 ms), and CPU ms per output token
// of the stage processes (the head's draft included; the delay proxy apart). sim14 reports the
// modelled busy time (stages + draft) per token instead of CPU. Prints markdown tables beside
// the targets and writes bench/results/batching.json ({ meta, rows }). A load in which
// a request fails (an error event, a token count that disagrees with the job's usage) has no
// row: it is listed in meta.failures and printed, and the run exits non-zero.
import { GENERATION_QUEUE, queuePrefix, type ConcreteMethod } from '@pipedec/contracts';
import {
  DEFAULT_ROW_BUDGET,
  generatePP,
  PAPER_A100_COST,
  SimulatedPipeline,
  StageWorker,
  decodingUnderLoad,
  DEFAULT_SPECULATE_MAX_IN_FLIGHT,
  type LayerPacket,
  type StageResult,
  type StageShard,
  type TimestepLoad,
} from '@pipedec/engine';
import { loadTokenizer, openShard, splitLayers, type LayerShard } from '@pipedec/model';
import { LocalCluster } from '@pipedec/testkit/local-cluster';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { execFileSync, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { GenerationSummary } from '../apps/stage-node/dist/head/generation-consumer.js';
import { runMethod } from '../apps/stage-node/dist/head/run-method.js';
import { callShare } from '../apps/stage-node/dist/stage/stage-runtime.js';
import { cleanupNamespaces, startNetnsCluster, stopChild } from './cluster-netns.js';
import { cpuSeconds, quantile, runRequest, type RequestTrace } from './load-client.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const TARGET = path.join(ROOT, 'models/demo-target');
const DRAFT = path.join(ROOT, 'models/demo-draft');
const METHODS = ['pipedec-solo', 'pp', 'stpp', 'pipedec'] as const;
type Method = (typeof METHODS)[number];
const CLUSTER_IDS = ['lo4', 'ns5x8', 'sim14'] as const;
type ClusterId = (typeof CLUSTER_IDS)[number];
/** Stages of each cluster. */
const STAGES: Record<ClusterId, number> = { lo4: 4, ns5x8: 8, sim14: 14 };

const { values: args } = parseArgs({
  options: {
    clusters: { type: 'string', default: CLUSTER_IDS.join(',') },
    clients: { type: 'string', default: '1,2,4,8,16' },
    requests: { type: 'string', default: '1' }, // per client, one after another
    // A lone client's requests: one request is too small a sample on a shared host.
    'one-client-requests': { type: 'string', default: '4' },
    // Rounds of the one-client comparison, its two clusters' loads alternated (runReal).
    'one-client-rounds': { type: 'string', default: '3' },
    tokens: { type: 'string', default: '128' },
    // Output tokens on ns5x8 if fewer must do (its 5 ms hops make it the slow one).
    'ns5x8-tokens': { type: 'string', default: '' },
    methods: { type: 'string', default: METHODS.join(',') },
    width: { type: 'string', default: '4' },
    // Requests per stage call (STAGE_BATCH_REQUESTS); '' = the service's default.
    'stage-batch': { type: 'string', default: '' },
    // Stages that compute at once (STAGE_LANES); '' = the service's default for the cluster.
    'stage-lanes': { type: 'string', default: '' },
    // Past this many requests in flight a starting request decodes as PP
    // (SPECULATE_MAX_IN_FLIGHT); '' = the service's default (libs/engine row-budget.ts).
    'speculate-max-in-flight': { type: 'string', default: '' },
    // PipeDec's width per tree layer (WIDTH_FOLLOWS_LOAD); 'false': the share at its start.
    'width-follows-load': { type: 'string', default: 'true' },
    // lo4's batched cluster also runs the long-prompt join (joinLong); 'false' skips it.
    'join-long': { type: 'string', default: 'true' },
    out: { type: 'string', default: path.join(ROOT, 'bench/results/batching.json') },
  },
});
const CLIENTS = args.clients.split(',').map(Number);
const PER_CLIENT = Number(args.requests);
const requestsFor = (clients: number): number =>
  clients === 1 ? Math.max(PER_CLIENT, Number(args['one-client-requests'])) : PER_CLIENT;
const ONE_CLIENT_ROUNDS = Math.max(1, Number(args['one-client-rounds']));
const MAX_TOKENS = Number(args.tokens);
const WIDTH = Number(args.width);
const STAGE_BATCH = args['stage-batch'] ? Number(args['stage-batch']) : null;
const SERVICE_STAGE_BATCH = 1; // apps/stage-node STAGE_BATCH_REQUESTS default
const NPM_START_SPECULATE_MAX_IN_FLIGHT = 1; // apps/stage-node start-pipeline.ts
/**
 * SPECULATE_MAX_IN_FLIGHT per cluster: --speculate-max-in-flight, else the service's: lo4 is npm
 * start's pipeline (1: its stages share one host; start-pipeline.ts), ns5x8 and sim14 stand
 * for a stage per host (the stage node's default).
 */
const speculateMaxInFlight = (id: ClusterId): number =>
  args['speculate-max-in-flight']
    ? Number(args['speculate-max-in-flight'])
    : id === 'lo4'
      ? NPM_START_SPECULATE_MAX_IN_FLIGHT
      : DEFAULT_SPECULATE_MAX_IN_FLIGHT;
/**
 * STAGE_LANES per cluster: --stage-lanes, else the service's: lo4 is npm start's pipeline
 * (start-pipeline.ts: its cores, at most its 4 stages), ns5x8 and sim14 a stage per host (the
 * stage node's default, STAGE_COUNT).
 */
const stageLanes = (id: ClusterId): number =>
  args['stage-lanes']
    ? Number(args['stage-lanes'])
    : id === 'lo4'
      ? Math.min(STAGES.lo4, os.availableParallelism())
      : STAGES[id];
const STPP_DEPTH = 4; // apps/stage-node STPP_DEPTH default
const SCORE_TEMPERATURE = 0.5; // apps/stage-node DRAFT_SCORE_TEMPERATURE default
const METHOD_LIST = args.methods.split(',').map((m) => {
  if (!(METHODS as readonly string[]).includes(m)) {
    throw new Error(`--methods: unknown ${m}; known: ${METHODS.join(', ')}`);
  }
  return m as Method;
});
const CLUSTER_LIST = args.clusters.split(',').map((c) => {
  if (!(CLUSTER_IDS as readonly string[]).includes(c)) {
    throw new Error(`--clusters: unknown ${c}; known: ${CLUSTER_IDS.join(', ')}`);
  }
  return c as ClusterId;
});
const tokensFor = (c: ClusterId): number =>
  c === 'ns5x8' && args['ns5x8-tokens'] ? Number(args['ns5x8-tokens']) : MAX_TOKENS;
const engineMethod = (m: Method): ConcreteMethod => (m === 'pipedec-solo' ? 'pipedec' : m);
const progress = (line: string) => process.stderr.write(`[${new Date().toISOString()}] ${line}\n`);

interface Row {
  cluster: ClusterId;
  clients: number;
  method: Method;
  tokensPerSecond: number;
  ttftP50Ms: number;
  ttftP99Ms: number;
  tbtP50Ms: number;
  tbtP99Ms: number;
  cpuMsPerToken: number;
  requests: number;
  tokens: number;
  /** ns5x8: the delay proxy's CPU per token, not in cpuMsPerToken; null elsewhere. */
  proxyCpuMsPerToken: number | null;
  /** Real clusters: each stage process's CPU per token (the head, stage 0, first). */
  stageCpuMsPerToken?: number[];
  /**
   * Real clusters: requests' packets per stage compute call over the load, all stages pooled
   * (each stage's /health batching counters); 1 = no call was shared. null for sim14.
   */
  packetsPerCall?: number | null;
  /**
   * Real clusters: requests that ran narrower than asked or fell back to PP (the head's
   * row-budget rule, libs/engine row-budget.ts, seeing other requests in flight as they
   * started). For one client every request should run as asked.
   */
  underLoad?: { narrowed: number; fellBack: number };
}

/** What one request met: its token times (ms from the load's start) and the head's summary. */
interface Done {
  prompt: number;
  enqueuedMs: number;
  tokenMs: number[];
  summary: GenerationSummary | null;
}

function row(
  cluster: ClusterId,
  clients: number,
  method: Method,
  done: Done[],
  wallMs: number,
  cpuMs: number,
  proxyCpuMs: number | null,
): Row {
  const tokens = done.reduce((a, d) => a + d.tokenMs.length, 0);
  const ttft = done.map((d) => d.tokenMs[0] - d.enqueuedMs);
  const gaps = done.flatMap((d) => d.tokenMs.slice(1).map((t, i) => t - d.tokenMs[i]));
  return {
    cluster,
    clients,
    method,
    tokensPerSecond: (1000 * tokens) / wallMs,
    ttftP50Ms: quantile(ttft, 0.5),
    ttftP99Ms: quantile(ttft, 0.99),
    tbtP50Ms: quantile(gaps, 0.5),
    tbtP99Ms: quantile(gaps, 0.99),
    cpuMsPerToken: cpuMs / tokens,
    requests: done.length,
    tokens,
    proxyCpuMsPerToken: proxyCpuMs === null ? null : proxyCpuMs / tokens,
  };
}

/** The row of median tokens/s (the lower middle of an even count). */
function medianRow(rows: Row[]): Row {
  const sorted = [...rows].sort((a, b) => a.tokensPerSecond - b.tokensPerSecond);
  return sorted[Math.floor((sorted.length - 1) / 2)];
}

// ---------------------------------------------------------------- prompts

/** Prompt lengths in tokens, cycled: 32 up to the context less the output (888 for 128). */
const PROMPT_LENGTHS = [256, 888, 32, 512, 128, 700, 64, 384, 640, 48, 192, 768, 96, 448, 320, 160];
const CONTEXT = 1024; // the demo target's positions
const SETS = ['scripture.jsonl', 'quotes.jsonl', 'code.jsonl'];

/**
 * Prompt i: from set i mod 3, n = PROMPT_LENGTHS[i mod 16] tokens (at most CONTEXT - tokens -
 * 8): the tokenizer's first token (BOS), then the last n - 1 tokens of the set's lines joined by
 * newlines, in turn, ending with line j, so every prompt ends where one of the set ends (a
 * continuation point). j starts at floor(i / 3) and moves on line by line until the target's
 * greedy continuation (PP in this process, the whole model) runs `tokens` tokens without an
 * end-of-sequence token: every request then streams exactly `tokens` tokens (checked for each),
 * and tokens/s is not a matter of where the model stops.
 */
async function buildPrompts(count: number, maxTokens: number): Promise<number[][]> {
  const tok = await loadTokenizer(TARGET);
  const whole = await openShard({ checkpointDir: TARGET, intraOpThreads: 1 });
  const probe = new SimulatedPipeline([new StageWorker(whole, 0)], PAPER_A100_COST);
  const sets: string[][] = [];
  for (const f of SETS) {
    const lines = (await readFile(path.join(ROOT, 'models/prompts', f), 'utf8')).split('\n');
    sets.push(lines.filter(Boolean).map((l) => (JSON.parse(l) as { text: string }).text));
  }
  const cap = CONTEXT - maxTokens - 8;
  const prompts: number[][] = [];
  try {
    for (let i = 0; i < count; i++) {
      const lines = sets[i % SETS.length];
      const n = Math.min(cap, PROMPT_LENGTHS[i % PROMPT_LENGTHS.length]);
      for (let tries = 0; ; tries++) {
        if (tries === lines.length) {
          throw new Error(
            `prompt ${i}: no line of ${SETS[i % SETS.length]} runs ${maxTokens} tokens`,
          );
        }
        const j = (Math.floor(i / SETS.length) + tries) % lines.length;
        // Two rounds of the set, ending with line j: enough text for any n.
        const text = [...lines, ...lines].slice(j + 1, j + 1 + 2 * lines.length - 1);
        const ids = tok.encode([...text, lines[j]].join('\n'));
        const prompt = [ids[0], ...ids.slice(ids.length - (n - 1))];
        const res = await generatePP(probe, { requestId: randomUUID(), prompt, maxTokens });
        if (res.tokens.length === maxTokens) {
          prompts.push(prompt);
          break;
        }
      }
    }
  } finally {
    await whole.close();
  }
  return prompts;
}

const promptOf = (client: number, r: number) => client * PER_CLIENT + r;

// ---------------------------------------------------------------- real clusters

interface Started {
  cluster: LocalCluster;
  redisUrl: string;
  prefix: string;
  stagePids: number[];
  proxy: ChildProcess | null;
  stop: () => Promise<void>;
}

/** Starts the stage processes of lo4 or ns5x8 (namespaces, Redis and proxy for the latter). */
async function startCluster(id: 'lo4' | 'ns5x8', env: Record<string, string>): Promise<Started> {
  const stages = STAGES[id];
  const prefix = `bench:batching:${id}:${randomUUID().slice(0, 8)}:`;
  const children: ChildProcess[] = [];
  let redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
  let proxy: ChildProcess | null = null;
  let placement;
  let ports;
  const cleanup = async () => {
    for (const c of children.reverse()) await stopChild(c);
    if (id === 'ns5x8') cleanupNamespaces();
  };
  try {
    if (id === 'ns5x8') {
      const ns = await startNetnsCluster(stages, 5);
      children.push(...ns.children);
      redisUrl = ns.redisUrl;
      proxy = ns.proxy;
      ports = ns.ports;
      placement = ns.placement;
    }
    const cluster = await LocalCluster.start({
      pipelineId: `bench-batching-${id}`,
      stages,
      checkpointDir: TARGET,
      draftCheckpointDir: DRAFT,
      redisUrl,
      redisPrefix: prefix,
      // WARMUP_TOKENS: the stage nodes' default (testkit's clusters turn it off for tests).
      env: { MODEL_NAME: 'bench', PIPELINE_CHECK_MS: '500', WARMUP_TOKENS: '3072', ...env },
      placement,
      ports,
      readyTimeoutMs: 300_000,
    });
    return {
      cluster,
      redisUrl,
      prefix,
      stagePids: Array.from({ length: stages }, (_, s) => cluster.pid(s)!),
      proxy,
      stop: async () => {
        await cluster.stop();
        await cleanup();
      },
    };
  } catch (error) {
    await cleanup();
    throw error;
  }
}

/** C clients, each R requests one after another, of one method on a started cluster. */
async function load(
  s: Started,
  id: ClusterId,
  method: Method,
  clients: number,
  prompts: number[][],
): Promise<{ row: Row; done: Done[] }> {
  const redis = new Redis(s.redisUrl, { maxRetriesPerRequest: null });
  const queue = new Queue(GENERATION_QUEUE, { connection: redis, prefix: queuePrefix(s.prefix) });
  const readers = Array.from({ length: clients }, () => new Redis(s.redisUrl));
  try {
    const cpu = async () => {
      const stage = await Promise.all(s.stagePids.map(cpuSeconds));
      return {
        each: stage,
        stage: stage.reduce((a, b) => a + b, 0),
        proxy: s.proxy ? await cpuSeconds(s.proxy.pid!) : 0,
      };
    };
    /** Compute calls and the packets they took, all stages summed (/health batching). */
    const calls = async () => {
      let n = 0;
      let packets = 0;
      for (let st = 0; st < s.stagePids.length; st++) {
        const b = (await s.cluster.health(st))?.body.batching as
          { calls: number; packets: number } | undefined;
        n += b?.calls ?? 0;
        packets += b?.packets ?? 0;
      }
      return { n, packets };
    };
    const calls0 = await calls();
    const cpu0 = await cpu();
    const t0 = Date.now();
    // Every client to its end (settled), so a failed request leaves no others running into
    // the next load; then the first failure, if any.
    const settled = await Promise.allSettled(
      readers.map(async (reader, c) => {
        const out: { prompt: number; trace: RequestTrace }[] = [];
        for (let r = 0; r < requestsFor(clients); r++) {
          const prompt = promptOf(c, r);
          const trace = await runRequest(queue, reader, s.prefix, {
            method: engineMethod(method),
            width: WIDTH,
            prompt: prompts[prompt],
            maxTokens: tokensFor(id),
            exact: tokensFor(id) <= MAX_TOKENS,
          });
          out.push({ prompt, trace });
        }
        return out;
      }),
    );
    const wallMs = Date.now() - t0;
    const cpu1 = await cpu();
    const calls1 = await calls();
    const failed = settled.find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
    const traces = settled.map((r) => (r.status === 'fulfilled' ? r.value : []));
    const done: Done[] = traces.flat().map(({ prompt, trace }) => ({
      prompt,
      enqueuedMs: trace.enqueuedAt - t0,
      tokenMs: trace.tokenAt.map((t) => t - t0),
      summary: trace.summary,
    }));
    const proxyMs = s.proxy ? 1000 * (cpu1.proxy - cpu0.proxy) : null;
    const r = row(id, clients, method, done, wallMs, 1000 * (cpu1.stage - cpu0.stage), proxyMs);
    const n = calls1.n - calls0.n;
    r.packetsPerCall = n > 0 ? (calls1.packets - calls0.packets) / n : null;
    r.stageCpuMsPerToken = cpu1.each.map((c, k) => (1000 * (c - cpu0.each[k])) / r.tokens);
    r.underLoad = {
      narrowed: done.filter((d) => d.summary?.decoding.narrowedFrom !== undefined).length,
      fellBack: done.filter((d) => d.summary?.decoding.fellBackFrom !== undefined).length,
    };
    return { row: r, done };
  } finally {
    await Promise.all(readers.map((r) => r.quit()));
    await queue.close();
    await redis.quit();
  }
}

/** A load that did not complete: its row is left out, the run exits non-zero. */
interface Failure {
  cluster: ClusterId;
  clients: number;
  method: Method;
  error: string;
}

interface RealRun {
  rows: Row[];
  failures: Failure[];
  /** Requests of runs with one request in the pipeline at a time (the calibration's). */
  alone: { method: Method; done: Done }[];
  /** Tokens/s of PP, STPP and PipeDec at one client on the QUEUE_CONCURRENCY 1 cluster. */
  oneClientSolo: Partial<Record<ConcreteMethod, number>>;
  joinLong: JoinLongRow[];
}

/** The long-prompt join (joinLong) for one method of the decoding clients. */
interface JoinLongRow {
  method: ConcreteMethod;
  clients: number;
  longPromptTokens: number;
  /** The decoding clients' time between tokens p99 (pooled gaps), without and with the join. */
  tbtP99WithoutMs: number;
  tbtP99WithMs: number;
  ratio: number;
  /** Enqueue to its (only) token, for the long request. */
  longTtftMs: number;
}

const JOIN_CLIENTS = 7;

/**
 * Issue #16's long-prompt target: 7 clients decode --tokens tokens from the shortest prompts;
 * as soon as the head runs all 7, a request whose prompt fills the context but one position
 * (1,023 tokens on the demo pair, 1 output token) joins. Its prompt goes through the stages
 * in 32-row chunks between their decoding rows. Their time between tokens p99, pooled over
 * the 7, with the join against the same load without it, both on the batched cluster.
 */
async function joinLong(
  s: Started,
  prompts: number[][],
  method: ConcreteMethod,
): Promise<JoinLongRow> {
  const redis = new Redis(s.redisUrl, { maxRetriesPerRequest: null });
  const queue = new Queue(GENERATION_QUEUE, { connection: redis, prefix: queuePrefix(s.prefix) });
  const readers = Array.from({ length: JOIN_CLIENTS + 1 }, () => new Redis(s.redisUrl));
  const short = [...prompts].sort((a, b) => a.length - b.length).slice(0, JOIN_CLIENTS);
  if (short.length < JOIN_CLIENTS) throw new Error(`join: ${short.length} prompts, not 7`);
  const context = 1024; // the demo pair's maxPositions
  const long = prompts.flat().slice(0, context - 1);
  try {
    const run = async (join: boolean) => {
      const decoding = short.map((prompt, c) =>
        runRequest(queue, readers[c], s.prefix, {
          method,
          width: WIDTH,
          prompt,
          maxTokens: MAX_TOKENS,
          exact: true,
        }),
      );
      let longTtftMs = NaN;
      if (join) {
        // All 7 running (taken by the head), then the long prompt joins.
        const deadline = Date.now() + 60_000;
        while ((await queue.getActiveCount()) < JOIN_CLIENTS) {
          if (Date.now() > deadline) {
            throw new Error(`join: the head never ran ${JOIN_CLIENTS} requests at once`);
          }
          await new Promise((r) => setTimeout(r, 2));
        }
        const t = await runRequest(queue, readers[JOIN_CLIENTS], s.prefix, {
          method: 'pp',
          width: 1,
          prompt: long,
          maxTokens: 1,
        });
        longTtftMs = t.tokenAt[0] - t.enqueuedAt;
      }
      const traces = await Promise.all(decoding);
      const gaps = traces.flatMap((t) => t.tokenAt.slice(1).map((at, i) => at - t.tokenAt[i]));
      return { p99: quantile(gaps, 0.99), longTtftMs };
    };
    const without = await run(false);
    const withLong = await run(true);
    return {
      method,
      clients: JOIN_CLIENTS,
      longPromptTokens: long.length,
      tbtP99WithoutMs: without.p99,
      tbtP99WithMs: withLong.p99,
      ratio: withLong.p99 / without.p99,
      longTtftMs: withLong.longTtftMs,
    };
  } finally {
    await queue.close();
    await Promise.all([...readers, redis].map((r) => r.quit()));
  }
}

async function runReal(id: 'lo4' | 'ns5x8', prompts: number[][]): Promise<RealRun> {
  const batchEnv: Record<string, string> =
    STAGE_BATCH === null ? {} : { STAGE_BATCH_REQUESTS: String(STAGE_BATCH) };
  batchEnv.STAGE_LANES = String(stageLanes(id));
  batchEnv.WIDTH_FOLLOWS_LOAD = args['width-follows-load'];
  batchEnv.SPECULATE_MAX_IN_FLIGHT = String(speculateMaxInFlight(id));
  const out: RealRun = { rows: [], failures: [], alone: [], oneClientSolo: {}, joinLong: [] };
  // Warm-up: each method once through the longest prompt and the whole output, so the first
  // measured load does not pay for the runtime's first calls of each shape; and, where
  // requests run side by side (`clients` > 1), each method once more with that many clients at
  // once, 32 tokens each: the code only such loads run (frames of several packets, the row
  // budget under load) is then compiled before the first measured one. Without that, lo4 at 8
  // clients, PP and PipeDec in either order, whichever came first spent 10-25% more CPU per
  // token; with it, 3-10%, while the first one's tokens/s still came out ~10% lower
  // (bench/results/pipedec-width0-decisions-ab). Compare methods over both orders, or where
  // neither is a cluster's first load (the full run: every method at 1, 2, 4 clients first).
  const longest = prompts.reduce((a, p) => (p.length > a.length ? p : a));
  const warm = async (s: Started, methods: ConcreteMethod[], clients: number) => {
    const redis = new Redis(s.redisUrl, { maxRetriesPerRequest: null });
    const queue = new Queue(GENERATION_QUEUE, { connection: redis, prefix: queuePrefix(s.prefix) });
    const readers = Array.from({ length: clients }, () => new Redis(s.redisUrl));
    const send = (method: ConcreteMethod, prompt: number[], maxTokens: number, c = 0) =>
      runRequest(queue, readers[c], s.prefix, { method, width: WIDTH, prompt, maxTokens });
    try {
      for (const method of methods) await send(method, longest, tokensFor(id));
      if (clients === 1) return;
      const short = Math.min(32, tokensFor(id));
      for (const method of methods) {
        await Promise.all(readers.map((_, c) => send(method, prompts[promptOf(c, 0)], short, c)));
      }
    } finally {
      await Promise.all(readers.map((r) => r.quit()));
      await queue.close();
      await redis.quit();
    }
  };
  const join = id === 'lo4' && args['join-long'] !== 'false';
  const phases: { env: Record<string, string>; methods: Method[]; batched: boolean }[] = [
    {
      env: { QUEUE_CONCURRENCY: '1' },
      methods: METHOD_LIST.filter((m) => m === 'pipedec-solo'),
      batched: false,
    },
    {
      // Room for every client, and for the long-prompt join's 7 + 1.
      env: {
        QUEUE_CONCURRENCY: String(Math.max(...CLIENTS, join ? JOIN_CLIENTS + 1 : 1)),
      },
      methods: METHOD_LIST.filter((m) => m !== 'pipedec-solo'),
      batched: true,
    },
  ];
  /** One load: its row (and the requests alone, for the calibration), or a failure noted. */
  const measure = async (s: Started, method: Method, clients: number, note = '') => {
    let result;
    try {
      result = await load(s, id, method, clients, prompts);
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      out.failures.push({ cluster: id, clients, method, error: message });
      progress(`${id} C${clients} ${method}: FAILED: ${message}`);
      return null;
    }
    const { row: r, done } = result;
    if (method === 'pipedec-solo' || clients === 1) {
      out.alone.push(...done.map((d) => ({ method, done: d })));
    }
    progress(
      `${id} C${clients} ${method}${note}: ${r.tokensPerSecond.toFixed(1)} tokens/s, TTFT p50 ${r.ttftP50Ms.toFixed(0)} ms, TBT p50 ${r.tbtP50Ms.toFixed(1)} ms`,
    );
    return r;
  };
  const logsOnError = async <T>(started: Started[], f: () => Promise<T>): Promise<T> => {
    try {
      return await f();
    } catch (error) {
      for (const s of started) {
        for (let st = 0; st < s.stagePids.length; st++) {
          process.stderr.write(`--- stage ${st} log (tail)\n${s.cluster.logs(st).slice(-3000)}\n`);
        }
      }
      throw error;
    }
  };
  const start = async (phase: (typeof phases)[number]) => {
    progress(`${id}: starting stage processes (${JSON.stringify({ ...phase.env, ...batchEnv })})`);
    const s = await startCluster(id, { ...phase.env, ...batchEnv });
    try {
      const clients = phase.batched ? Math.max(...CLIENTS) : 1;
      await logsOnError([s], () => warm(s, ['pp', 'stpp', 'pipedec'], clients));
    } catch (error) {
      await s.stop();
      throw error;
    }
    return s;
  };
  const longJoin = async (s: Started) => {
    for (const m of ['pp', 'pipedec'] as const) {
      const j = await joinLong(s, prompts, m);
      out.joinLong.push(j);
      progress(
        `${id} long prompt (${j.longPromptTokens} tokens) joining ${j.clients} ${m} clients: TBT p99 ${j.tbtP99WithoutMs.toFixed(0)} -> ${j.tbtP99WithMs.toFixed(0)} ms (${j.ratio.toFixed(2)}x); its TTFT ${j.longTtftMs.toFixed(0)} ms`,
      );
    }
  };

  // The one-client comparison (the issue's "one client: no method more than 5% slower than
  // without batching") alternates the two clusters' loads for --one-client-rounds rounds and
  // compares the medians: measured once each, minutes apart, drift of this shared host alone
  // moved that ratio between 0.73x and 1.12x. lo4 runs both clusters side by side; ns5x8's
  // namespaces hold one cluster at a time, so it starts them in turn every round.
  const [soloPhase, batchedPhase] = phases;
  if (CLIENTS.includes(1) && phases.every((p) => p.methods.length > 0)) {
    /** Per method, the one-client rows of each round on each cluster. */
    const rounds: Partial<Record<ConcreteMethod, { solo: Row[]; batched: Row[] }>> = {};
    const oneClient = async (s: Started, solo: boolean) => {
      for (const m of ['pp', 'stpp', 'pipedec'] as const) {
        if (!solo && !batchedPhase.methods.includes(m)) continue;
        const method = solo && m === 'pipedec' ? 'pipedec-solo' : m;
        const r = await measure(s, method, 1, solo ? ' (one at a time)' : '');
        if (r) (rounds[m] ??= { solo: [], batched: [] })[solo ? 'solo' : 'batched'].push(r);
      }
    };
    /** Every other client count of one cluster. */
    const multi: Row[] = [];
    const others = async (s: Started, phase: (typeof phases)[number]) => {
      for (const clients of CLIENTS.filter((c) => c !== 1)) {
        for (const method of phase.methods) {
          const r = await measure(s, method, clients);
          if (r) multi.push(r);
        }
      }
    };
    const started: Started[] = [];
    try {
      if (id === 'lo4') {
        started.push(await start(soloPhase));
        started.push(await start(batchedPhase));
        const [solo, batched] = started;
        await logsOnError(started, async () => {
          for (let round = 0; round < ONE_CLIENT_ROUNDS; round++) {
            await oneClient(solo, true);
            await oneClient(batched, false);
          }
          // The other client counts one cluster at a time, as without the pairing.
          await others(solo, soloPhase);
          await started.shift()!.stop();
          await others(batched, batchedPhase);
          if (join) await longJoin(batched);
        });
      } else {
        // One cluster at a time, started again for every round; the last round's go on to
        // the other client counts.
        for (let round = 0; round < ONE_CLIENT_ROUNDS; round++) {
          for (const phase of phases) {
            const s = await start(phase);
            started.push(s);
            await logsOnError([s], async () => {
              await oneClient(s, phase === soloPhase);
              if (round === ONE_CLIENT_ROUNDS - 1) await others(s, phase);
            });
            await started.pop()!.stop();
          }
        }
      }
    } finally {
      for (const s of started) await s.stop();
    }
    for (const [m, got] of Object.entries(rounds) as [ConcreteMethod, typeof rounds.pp][]) {
      if (got!.solo.length > 0) out.oneClientSolo[m] = medianRow(got!.solo).tokensPerSecond;
      if (got!.batched.length > 0) out.rows.push(medianRow(got!.batched));
      if (m === 'pipedec' && got!.solo.length > 0 && soloPhase.methods.includes('pipedec-solo')) {
        out.rows.push(medianRow(got!.solo));
      }
    }
    out.rows.push(...multi);
    return out;
  }

  // No one-client comparison to pair (no one client, or one of the clusters has no methods).
  for (const phase of phases) {
    if (phase.methods.length === 0) continue;
    const s = await start(phase);
    try {
      await logsOnError([s], async () => {
        for (const clients of CLIENTS) {
          for (const method of phase.methods) {
            const r = await measure(s, method, clients);
            if (r) out.rows.push(r);
          }
        }
        if (join && phase.batched) await longJoin(s);
      });
    } finally {
      await s.stop();
    }
  }
  return out;
}

// ---------------------------------------------------------------- the timestep model

/** Per stage call and per row, prompt rows (prefill) priced apart from decode rows. */
interface Cost {
  callMs: number;
  rowMs: number;
  prefillRowMs: number;
}
interface StageCost {
  stage: Cost;
  hopMs: number;
  draft: Cost;
}
const price = (c: Cost, calls: number, rows: number, prefill: boolean) =>
  c.callMs * calls + (prefill ? c.prefillRowMs : c.rowMs) * rows;

/** One request's timesteps in the simulator, with each stage's rows (not only the busiest). */
interface SimTrace {
  loads: (TimestepLoad & { stageRows: number[]; prefill: boolean })[];
  /** Per output token, the timestep after whose end it is committed (index into loads). */
  tokenStep: number[];
  outputTokens: number;
}

/** A StageWorker that adds each call's rows to the current timestep's per-stage tally. */
class MeteredWorker extends StageWorker {
  constructor(
    shard: StageShard,
    index: number,
    private readonly tally: { pipeline: SimulatedPipeline | null; rows: number[][] },
  ) {
    super(shard, index);
  }

  override async processMany(packets: readonly LayerPacket[]): Promise<(StageResult | Error)[]> {
    const results = await super.processMany(packets);
    const t = this.tally.pipeline!.loads.length;
    const rows = (this.tally.rows[t] ??= []);
    for (const r of results) {
      if (!(r instanceof Error)) rows[this.index] = (rows[this.index] ?? 0) + r.positions;
    }
    return results;
  }
}

class Simulator {
  private readonly traces = new Map<string, Promise<SimTrace>>();
  private readonly pipeline: SimulatedPipeline;
  private readonly tally: { pipeline: SimulatedPipeline | null; rows: number[][] } = {
    pipeline: null,
    rows: [],
  };
  private readonly draft: StageShard;
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(
    readonly stages: number,
    shards: LayerShard[],
    draft: LayerShard,
    private readonly prompts: number[][],
    private readonly maxTokens: number,
  ) {
    this.pipeline = new SimulatedPipeline(
      shards.map((s, i) => new MeteredWorker(s, i, this.tally)),
      PAPER_A100_COST, // any: the loads are repriced
    );
    this.tally.pipeline = this.pipeline;
    this.draft = this.pipeline.meterDraft(draft);
  }

  static async open(stages: number, prompts: number[][], maxTokens: number): Promise<Simulator> {
    const info = await openShard({ checkpointDir: TARGET, intraOpThreads: 1 });
    const layers = info.info.numLayers;
    await info.close();
    const shards: LayerShard[] = [];
    for (const range of splitLayers(layers, stages)) {
      shards.push(await openShard({ checkpointDir: TARGET, ...range, intraOpThreads: 1 }));
    }
    const draft = await openShard({ checkpointDir: DRAFT, intraOpThreads: 1, proposals: true });
    return new Simulator(stages, shards, draft, prompts, maxTokens);
  }

  /** The trace of one request (simulated once per method, prompt and width). */
  trace(method: ConcreteMethod, prompt: number, width: number): Promise<SimTrace> {
    const key = `${method}:${prompt}:${width}`;
    let t = this.traces.get(key);
    if (!t) {
      const run = this.queue.then(() => this.simulate(method, prompt, width));
      this.queue = run.catch(() => undefined);
      t = run;
      this.traces.set(key, t);
    }
    return t;
  }

  private async simulate(method: ConcreteMethod, prompt: number, width: number): Promise<SimTrace> {
    this.tally.rows = [];
    const steps: number[] = [];
    const res = await runMethod(
      method,
      this.pipeline,
      this.draft,
      {
        requestId: randomUUID(),
        prompt: this.prompts[prompt],
        maxTokens: this.maxTokens,
        onEvent: (e) => steps.push(e.timestep),
      },
      { width, stppDepth: STPP_DEPTH, scoreTemperature: SCORE_TEMPERATURE },
    );
    const loads = this.pipeline.loads.map((l, t) => ({
      ...l,
      stageRows: Array.from({ length: this.stages }, (_, s) => this.tally.rows[t]?.[s] ?? 0),
      prefill: t < res.stats.prefillTimesteps,
    }));
    progress(
      `sim${this.stages} ${method} prompt ${prompt} (${this.prompts[prompt].length} tokens) W${width}: ${loads.length} timesteps`,
    );
    // A token of timestep T (the session's tick count) follows the end of load T - 1.
    const tokenStep = steps.map((T) => Math.min(loads.length - 1, Math.max(0, T - 1)));
    return { loads, tokenStep, outputTokens: res.tokens.length };
  }

  /**
   * C clients, R requests each, under the multi-request model in the header; `limit` requests
   * in flight at most (QUEUE_CONCURRENCY).
   */
  async load(method: Method, clients: number, cost: StageCost, perCall: number): Promise<Row> {
    const limit = method === 'pipedec-solo' ? 1 : Infinity;
    interface Active {
      trace: SimTrace;
      step: number;
      done: Done;
      client: number;
      r: number;
    }
    const waiting: { client: number; r: number; at: number }[] = Array.from(
      { length: clients },
      (_, c) => ({ client: c, r: 0, at: 0 }),
    );
    const active: Active[] = [];
    const done: Done[] = [];
    let now = 0;
    let busyMs = 0;
    while (waiting.length > 0 || active.length > 0) {
      while (waiting.length > 0 && active.length < limit) {
        const w = waiting.shift()!;
        // The head's rule (row-budget.ts): a share of the row budget, or PP past the cut.
        const { method: m, width } = decodingUnderLoad(
          engineMethod(method),
          WIDTH,
          active.length + 1,
          DEFAULT_ROW_BUDGET,
          speculateMaxInFlight('sim14'),
        );
        const prompt = promptOf(w.client, w.r);
        active.push({
          trace: await this.trace(m, prompt, width),
          step: 0,
          client: w.client,
          r: w.r,
          done: { prompt, enqueuedMs: w.at, tokenMs: [], summary: null },
        });
      }
      const calls = new Array<number>(this.stages).fill(0);
      const rowMs = new Array<number>(this.stages).fill(0);
      let serial = 0;
      let overlap = 0;
      for (const a of active) {
        const l = a.trace.loads[a.step];
        l.stageRows.forEach((n, s) => {
          if (n === 0) return;
          calls[s]++;
          rowMs[s] += price(cost.stage, 0, n, l.prefill);
        });
        serial += price(cost.draft, l.serialDraftCalls, l.serialDraftRows, l.prefill);
        overlap += price(cost.draft, l.overlapDraftCalls, l.overlapDraftRows, l.prefill);
      }
      // Requests per call as a stage takes them (stage-runtime.ts callShare).
      const share = callShare(
        { requests: perCall, rows: Infinity, lanes: stageLanes('sim14') },
        active.length,
      );
      const stageMs = calls.map((n, s) => Math.ceil(n / share) * cost.stage.callMs + rowMs[s]);
      now += serial + Math.max(Math.max(...stageMs), overlap) + cost.hopMs;
      busyMs += serial + overlap + stageMs.reduce((x, y) => x + y, 0);
      for (const a of [...active]) {
        for (const [i, s] of a.trace.tokenStep.entries()) {
          if (s === a.step && a.done.tokenMs.length === i) a.done.tokenMs.push(now);
        }
        if (++a.step < a.trace.loads.length) continue;
        if (a.done.tokenMs.length !== a.trace.outputTokens) {
          throw new Error(`sim: ${a.done.tokenMs.length} token times of ${a.trace.outputTokens}`);
        }
        active.splice(active.indexOf(a), 1);
        done.push(a.done);
        if (a.r + 1 < requestsFor(clients)) waiting.push({ client: a.client, r: a.r + 1, at: now });
      }
    }
    return row('sim14', clients, method, done, now, busyMs, null);
  }
}

/**
 * Least squares y = c . x over the samples with every coefficient >= 0: a coefficient that
 * comes out negative is fixed at 0 and the rest refitted.
 */
function fitNonNegative(samples: { x: number[]; y: number }[], names: string[]): number[] {
  const k = names.length;
  const free = new Set(names.keys());
  for (;;) {
    const idx = [...free];
    // Normal equations over the free coefficients, by Gaussian elimination.
    const a = idx.map((i) => [
      ...idx.map((j) => samples.reduce((s, v) => s + v.x[i] * v.x[j], 0)),
      samples.reduce((s, v) => s + v.x[i] * v.y, 0),
    ]);
    for (let c = 0; c < idx.length; c++) {
      const p = a.reduce(
        (best, r, i) => (i >= c && Math.abs(r[c]) > Math.abs(a[best][c]) ? i : best),
        c,
      );
      [a[c], a[p]] = [a[p], a[c]];
      if (Math.abs(a[c][c]) < 1e-12)
        throw new Error(`calibration: ${names[idx[c]]} is not determined by the samples`);
      for (let r = 0; r < idx.length; r++) {
        if (r === c) continue;
        const m = a[r][c] / a[c][c];
        for (let j = c; j <= idx.length; j++) a[r][j] -= m * a[c][j];
      }
    }
    const coef = new Array<number>(k).fill(0);
    idx.forEach((i, c) => (coef[i] = a[c][idx.length] / a[c][c]));
    const worst = idx.reduce((w, i) => (coef[i] < coef[w] ? i : w), idx[0]);
    if (coef[worst] >= 0) return coef;
    free.delete(worst);
    if (free.size === 0) return coef.fill(0);
  }
}

/**
 * The lo4 costs: stage a per call, b per decode row, c per prompt row from every request that
 * had the pipeline to itself (compute summed over stages against its stage calls and rows); the
 * hop from PP's (round trip less compute, per hop); the draft the same way from PipeDec's (its
 * draft time against the calls and rows the 4-stage simulator counts for the same request).
 */
async function calibrate(alone: RealRun['alone'], prompts: number[][]): Promise<StageCost> {
  const withSummary = alone.filter((a) => a.done.summary?.transport);
  const names = ['per call', 'per decode row', 'per prompt row'];
  const stage = fitNonNegative(
    withSummary.map(({ done }) => {
      const st = done.summary!.stats;
      const promptRows = st.promptTokens * st.stages;
      return {
        x: [
          done.summary!.transport!.packets * st.stages,
          st.stagePositions.reduce((a, b) => a + b, 0) - promptRows,
          promptRows,
        ],
        y: st.stageBusyMs.reduce((a, b) => a + b, 0),
      };
    }),
    names,
  );
  let hopSum = 0;
  let hops = 0;
  for (const { done } of withSummary.filter((a) => a.method === 'pp')) {
    const t = done.summary!.transport!;
    hopSum += t.roundTripMs - t.computeMs;
    hops += t.hops;
  }
  const sim4 = await Simulator.open(4, prompts, MAX_TOKENS);
  const draftSamples = [];
  for (const { done } of withSummary.filter((a) => a.method === 'pipedec-solo')) {
    if (done.prompt >= 4) continue; // four prompts of 32 to 888 tokens give the fit its spread
    const tr = await sim4.trace('pipedec', done.prompt, WIDTH);
    if (tr.outputTokens !== done.tokenMs.length) {
      throw new Error(
        `lo4 pipedec prompt ${done.prompt}: ${done.tokenMs.length} tokens, simulated ${tr.outputTokens}`,
      );
    }
    const sum = (f: (l: SimTrace['loads'][number]) => number) =>
      tr.loads.reduce((a, l) => a + f(l), 0);
    draftSamples.push({
      x: [
        sum((l) => l.serialDraftCalls + l.overlapDraftCalls),
        sum((l) => (l.prefill ? 0 : l.serialDraftRows + l.overlapDraftRows)),
        sum((l) => (l.prefill ? l.serialDraftRows + l.overlapDraftRows : 0)),
      ],
      y: done.summary!.stats.draftMs,
    });
  }
  const draft = fitNonNegative(draftSamples, names);
  const cost = (c: number[]): Cost => ({ callMs: c[0], rowMs: c[1], prefillRowMs: c[2] });
  return { stage: cost(stage), hopMs: hops > 0 ? hopSum / hops : 0, draft: cost(draft) };
}

// ---------------------------------------------------------------- report

const f = (x: number | null | undefined, d = 1): string =>
  x === null || x === undefined || !Number.isFinite(x) ? '-' : x.toFixed(d);

function targets(rows: Row[], solo: Partial<Record<ClusterId, RealRun['oneClientSolo']>>) {
  const get = (c: ClusterId, n: number, m: Method) =>
    rows.find((r) => r.cluster === c && r.clients === n && r.method === m);
  const out: { target: string; measured: string; met: boolean | null }[] = [];
  const lo = get('lo4', 8, 'pipedec');
  const loPP = get('lo4', 8, 'pp');
  out.push({
    target: 'lo4, 8 clients: batched PipeDec >= 3 x 204 = 612 tokens/s',
    measured: f(lo?.tokensPerSecond),
    met: lo ? lo.tokensPerSecond >= 612 : null,
  });
  out.push({
    target: 'lo4, 8 clients: batched PipeDec >= batched PP',
    measured: `${f(lo?.tokensPerSecond)} vs ${f(loPP?.tokensPerSecond)}`,
    met: lo && loPP ? lo.tokensPerSecond >= loPP.tokensPerSecond : null,
  });
  const ns1 = get('ns5x8', 1, 'pipedec');
  for (const n of [4, 8]) {
    const pd = get('ns5x8', n, 'pipedec');
    const pp = get('ns5x8', n, 'pp');
    out.push({
      target: `ns5x8, ${n} clients: batched PipeDec >= 1.6 x batched PP`,
      measured: pd && pp ? `${(pd.tokensPerSecond / pp.tokensPerSecond).toFixed(2)}x` : '-',
      met: pd && pp ? pd.tokensPerSecond >= 1.6 * pp.tokensPerSecond : null,
    });
    out.push({
      target: `ns5x8, ${n} clients: PipeDec TBT p50 <= 2 x one client's`,
      measured: `${f(pd?.tbtP50Ms)} vs ${f(ns1?.tbtP50Ms)} ms`,
      met: pd && ns1 ? pd.tbtP50Ms <= 2 * ns1.tbtP50Ms : null,
    });
  }
  for (const c of CLUSTER_IDS) {
    for (const m of ['pp', 'stpp', 'pipedec'] as const) {
      const batched = get(c, 1, m);
      // sim14: one request is the simulator's own timestep with or without batching.
      const base = c === 'sim14' ? batched?.tokensPerSecond : solo[c]?.[m];
      if (!batched || base === undefined) continue;
      out.push({
        target: `${c}, 1 client: ${m} batched >= 0.95 x one at a time`,
        measured: `${f(batched.tokensPerSecond)} vs ${f(base)} (${(batched.tokensPerSecond / base).toFixed(2)}x)`,
        met: batched.tokensPerSecond >= 0.95 * base,
      });
    }
  }
  return out;
}

function uptime(): string {
  try {
    return execFileSync('uptime', { encoding: 'utf8' }).trim();
  } catch {
    return os.loadavg().join(' ');
  }
}

async function main(): Promise<void> {
  const started = Date.now();
  const uptimeBefore = uptime();
  const joining = CLUSTER_LIST.includes('lo4') && args['join-long'] !== 'false';
  const promptCount = Math.max(
    ...CLIENTS.map((c) => c * requestsFor(c)),
    joining ? JOIN_CLIENTS : 1,
  );
  const prompts = await buildPrompts(promptCount, MAX_TOKENS);
  progress(
    `${promptCount} prompts: ${prompts.map((p) => p.length).join(', ')} tokens; clusters ${CLUSTER_LIST.join(', ')}; clients ${CLIENTS.join(', ')}`,
  );
  const rows: Row[] = [];
  const failures: Failure[] = [];
  const joins: JoinLongRow[] = [];
  const solo: Partial<Record<ClusterId, RealRun['oneClientSolo']>> = {};
  let cost: StageCost | null = null;
  for (const id of CLUSTER_LIST) {
    if (id === 'sim14') {
      if (!cost) throw new Error('sim14 is calibrated from lo4: put lo4 before it in --clusters');
      progress(`sim14: cost ${JSON.stringify(cost)}`);
      const sim = await Simulator.open(STAGES.sim14, prompts, MAX_TOKENS);
      for (const clients of CLIENTS) {
        for (const method of METHOD_LIST) {
          const r = await sim.load(method, clients, cost, STAGE_BATCH ?? SERVICE_STAGE_BATCH);
          rows.push(r);
          progress(`sim14 C${clients} ${method}: ${r.tokensPerSecond.toFixed(1)} tokens/s`);
        }
      }
      continue;
    }
    const run = await runReal(id, prompts);
    rows.push(...run.rows);
    joins.push(...run.joinLong);
    failures.push(...run.failures);
    solo[id] = run.oneClientSolo;
    // sim14 is priced with lo4's costs; nothing to fit when it is not asked for.
    if (id === 'lo4' && CLUSTER_LIST.includes('sim14')) cost = await calibrate(run.alone, prompts);
  }
  const uptimeAfter = uptime();
  const checks = targets(rows, solo);
  for (const j of joins) {
    checks.push({
      target: `lo4: a ${j.longPromptTokens}-token prompt joining ${j.clients} decoding ${j.method} clients raises their TBT p99 <= 3x`,
      measured: `${f(j.tbtP99WithoutMs)} -> ${f(j.tbtP99WithMs)} ms (${j.ratio.toFixed(2)}x)`,
      met: j.ratio <= 3,
    });
  }
  const meta = {
    date: new Date().toISOString(),
    minutes: (Date.now() - started) / 60_000,
    cores: os.cpus().length,
    uptime: { before: uptimeBefore, after: uptimeAfter },
    clients: CLIENTS,
    requestsPerClient: PER_CLIENT,
    requestsOfALoneClient: requestsFor(1),
    outputTokens: Object.fromEntries(CLUSTER_LIST.map((c) => [c, tokensFor(c)])),
    promptTokens: prompts.map((p) => p.length),
    promptOf:
      'client c, request r: prompt c x requests + r (set i mod 3, PROMPT_LENGTHS[i mod 16])',
    width: WIDTH,
    rowBudget: DEFAULT_ROW_BUDGET,
    stageBatchRequests:
      STAGE_BATCH === null ? `service default (${SERVICE_STAGE_BATCH})` : String(STAGE_BATCH),
    batchedQueueConcurrency: Math.max(...CLIENTS, joining ? JOIN_CLIENTS + 1 : 1),
    widthFollowsLoad: args['width-follows-load'] !== 'false',
    speculateMaxInFlight: Object.fromEntries(CLUSTER_LIST.map((c) => [c, speculateMaxInFlight(c)])),
    stageLanes: Object.fromEntries(CLUSTER_LIST.map((c) => [c, stageLanes(c)])),
    oneClientRounds: {
      rounds: ONE_CLIENT_ROUNDS,
      note: 'loads of both clusters alternated, medians; lo4 side by side, ns5x8 started in turn each round',
    },
    sampling: 'greedy',
    sim14: {
      model:
        'requests in flight advance one of their own simulator timesteps per common timestep: serial draft summed + max(max over stages of ceil(requests/per call) x a + b x decode rows + c x prompt rows, overlapped draft summed) + hop, per call = min(stage-batch, ceil(requests in flight/lanes)); costs from lo4 (below); cpuMsPerToken there is the modelled busy time (stages + draft) per token; no KV limit is modelled',
      costFromLo4: cost,
    },
    oneClientWithoutBatching: solo,
    joinLong: joins,
    failures,
    targets: checks,
  };
  const lines: string[] = [];
  for (const c of CLUSTER_LIST) {
    lines.push(
      '',
      `### ${c}: ${tokensFor(c)} output tokens, ${PER_CLIENT} request(s) per client (${requestsFor(1)} for one client)`,
      '',
      '| clients | method | tokens/s | TTFT p50 ms | TTFT p99 ms | TBT p50 ms | TBT p99 ms | CPU ms / token | per stage (head first) | proxy CPU ms / token | packets per stage call |',
      '|---:|---|---:|---:|---:|---:|---:|---:|---|---:|---:|',
    );
    for (const r of rows.filter((x) => x.cluster === c)) {
      lines.push(
        `| ${r.clients} | ${r.method} | ${f(r.tokensPerSecond)} | ${f(r.ttftP50Ms, 0)} | ${f(r.ttftP99Ms, 0)} | ${f(r.tbtP50Ms)} | ${f(r.tbtP99Ms)} | ${f(r.cpuMsPerToken, 2)} | ${r.stageCpuMsPerToken?.map((x) => x.toFixed(2)).join(' / ') ?? '-'} | ${f(r.proxyCpuMsPerToken, 2)} | ${f(r.packetsPerCall ?? null, 2)} |`,
      );
    }
  }
  lines.push('', '### Targets (issue #16)', '', '| target | measured | met |', '|---|---|---|');
  for (const t of checks) {
    lines.push(
      `| ${t.target} | ${t.measured} | ${t.met === null ? 'not run' : t.met ? 'yes' : 'NO'} |`,
    );
  }
  for (const x of failures) {
    lines.push('', `FAILED ${x.cluster} ${x.clients} clients ${x.method}: ${x.error}`);
  }
  lines.push('', `load: ${uptimeBefore} -> ${uptimeAfter}; ${os.cpus().length} cores`);
  console.log(lines.join('\n'));
  await mkdir(path.dirname(args.out), { recursive: true });
  await writeFile(args.out, JSON.stringify({ meta, rows }, null, 2) + '\n');
  if (failures.length > 0) {
    process.stderr.write(`${failures.length} load(s) failed (above; meta.failures)\n`);
    process.exitCode = 1;
  }
}

await main();
