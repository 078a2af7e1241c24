// Benchmark of the stage nodes (npm run bench:cluster): PP, STPP and PipeDec through real stage
// processes, each a `node apps/stage-node/dist/main.js` consuming the generation queue, with 2
// and 4 stages on loopback, then with every stage in its own network namespace and an emulated
// one-way latency per hop (1 ms and 5 ms). For each run: wall-clock ms per output token (decode)
// and tokens/s, the time per timestep split into compute, transfer, prune broadcast and draft,
// resident memory and weight bytes per stage, and the measured speedups next to what the
// engine's simulated clock predicts for the same requests under a cost model calibrated from
// the same run. Also the loopback cost of a layer packet beyond a raw gRPC round trip. Sampled
// rows (#17): PP, STPP and PipeDec at each --temperatures value, STPP and PipeDec in each
// --acceptance mode ("exact": the target's seeded draw; "distribution": recursive rejection
// sampling), with timesteps per token, hit rate, accepted tokens per verification and stage
// CPU per token. Prints markdown tables
// and writes bench/results/cluster.json.
//
// Latency: this kernel has no netem qdisc, so the per-hop latency comes from a delay proxy in
// front of each stage (bench/cluster-delay-proxy.mjs); the namespaces still give every stage
// its own network stack, and every hop crosses a veth pair and the bridge.
import {
  GENERATION_JOB_NAME,
  GENERATION_QUEUE,
  queuePrefix,
  type GenerationJob,
} from '@pipedec/contracts';
import {
  type Acceptance,
  defaultBranching,
  generatePipeDec,
  generatePP,
  generateSTPP,
  PAPER_A100_COST,
  SimulatedPipeline,
  StageWorker,
  timestepMs,
  type CostModel,
  type GenerateRequest,
  type GenerateResult,
  type RequestStats,
  type SamplingParams,
  type TimestepLoad,
} from '@pipedec/engine';
import {
  loadTokenizer,
  openShard,
  splitLayers,
  writeRandomCheckpoint,
  type LayerShard,
} from '@pipedec/model';
import { Job, Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { once } from 'node:events';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import {
  DEFAULT_DRAFT_SCORE_TEMPERATURE,
  DEFAULT_REFILL_LAYERS_CAP,
} from '../apps/stage-node/dist/config/stage-config.js';
import { dialStage } from '../apps/stage-node/dist/grpc/grpc-options.js';
import type { GenerationSummary } from '../apps/stage-node/dist/head/generation-consumer.js';
import type { TransportStats } from '../apps/stage-node/dist/head/grpc-pipeline.js';
import { decodePackets, encodePackets } from '../apps/stage-node/dist/wire/frame.js';
import { LocalCluster } from '@pipedec/testkit/local-cluster';
import { BRIDGE_HOST, cleanupNamespaces, startNetnsCluster, stopChild } from './cluster-netns.js';
import { cpuSeconds } from './load-client.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const METHODS = ['pp', 'stpp', 'pipedec'] as const;
type Method = (typeof METHODS)[number];

const { values: args } = parseArgs({
  options: {
    scenarios: { type: 'string', default: 'lo2,lo4,ns1,ns5' },
    tokens: { type: 'string', default: '32' },
    prompts: { type: 'string', default: '2' },
    // Where the prompts come from: 'firsts' (the first line of each held-out set: quotes, code,
    // scripture) or one set's name, whose first --prompts lines are taken (#15's target row is
    // 'scripture' at 128 tokens).
    'prompt-set': { type: 'string', default: 'firsts' },
    width: { type: 'string', default: '4' },
    // STPP's width (branching and budget = width x depth); default --width. The baseline is
    // tuned on its own: a wider static tree served deep hop-bound pipelines better.
    'stpp-width': { type: 'string' },
    repeats: { type: 'string', default: '3' },
    'stpp-depth': { type: 'string', default: '4' },
    // PipeDec's refill packets: most tree layers each carries (PIPEDEC_REFILL_LAYERS on every
    // stage process, and the engine's refillLayers in the prediction); 1 = the paper's;
    // '' = the service's default, min(stages, DEFAULT_REFILL_LAYERS_CAP).
    'refill-layers': { type: 'string', default: '' },
    // Sampled rows: PP, STPP and PipeDec at these temperatures (seed = prompt index + 1,
    // top-p 1), STPP and PipeDec in each acceptance mode; '' = greedy rows only.
    temperatures: { type: 'string', default: '0.7,1' },
    acceptance: { type: 'string', default: 'exact,distribution' },
    out: { type: 'string', default: path.join(ROOT, 'bench/results/cluster.json') },
    // The head's warm-up before it takes jobs (WARMUP_TOKENS; the service's default). 0 measures
    // freshly started processes, as this benchmark did before the warm-up existed.
    'warmup-tokens': { type: 'string', default: '3072' },
    // Extra environment for every stage process, KEY=VALUE,... (an A/B of a stage setting,
    // say CARRY_DECISIONS=false for decisions broadcast on their own).
    'stage-env': { type: 'string', default: '' },
    // Per request, after the warm-up: each measured request's decode ms/token in order, to see
    // whether the processes were still getting faster.
    'trace-requests': { type: 'boolean', default: false },
  },
});
const MAX_TOKENS = Number(args.tokens);
const PROMPT_COUNT = Number(args.prompts);
const PROMPT_SET = args['prompt-set'];
const STAGE_ENV: Record<string, string> = Object.fromEntries(
  args['stage-env']
    .split(',')
    .filter(Boolean)
    .map((kv) => {
      const at = kv.indexOf('=');
      if (at < 1) throw new Error(`--stage-env: "${kv}" is not KEY=VALUE`);
      return [kv.slice(0, at), kv.slice(at + 1)];
    }),
);
const WIDTH = Number(args.width);
const STPP_WIDTH = Number(args['stpp-width'] ?? args.width);
const REPEATS = Number(args.repeats);
const STPP_DEPTH = Number(args['stpp-depth']);
const REFILL_LAYERS_ARG = args['refill-layers'] ? Number(args['refill-layers']) : null;
/** PipeDec's refill depth on a pipeline of `stages`: --refill-layers, else the service's. */
const refillLayersFor = (stages: number): number =>
  REFILL_LAYERS_ARG ?? Math.min(stages, DEFAULT_REFILL_LAYERS_CAP);
/** The draft's score temperature the stage processes use (DRAFT_SCORE_TEMPERATURE), for the prediction. */
const SCORE_TEMPERATURE = Number(
  STAGE_ENV.DRAFT_SCORE_TEMPERATURE ?? DEFAULT_DRAFT_SCORE_TEMPERATURE,
);
const TEMPERATURES = args.temperatures ? args.temperatures.split(',').map(Number) : [];
const ACCEPTANCES = args.acceptance.split(',').map((a) => {
  if (a !== 'exact' && a !== 'distribution') {
    throw new Error(`--acceptance: unknown mode ${a}; known: exact, distribution`);
  }
  return a;
});
const GREEDY: SamplingParams = { temperature: 0, topP: 1, seed: 0 };
/** The sampling of a sampled row's request for prompt `prompt` (its seed: prompt + 1). */
const sampledFor = (
  temperature: number,
  acceptance: Acceptance,
  prompt: number,
): SamplingParams => ({
  temperature,
  topP: 1,
  seed: prompt + 1,
  acceptance,
});

interface Scenario {
  id: string;
  stages: number;
  delayMs: number;
  netns: boolean;
}
const ALL_SCENARIOS: Scenario[] = [
  { id: 'lo2', stages: 2, delayMs: 0, netns: false },
  { id: 'lo4', stages: 4, delayMs: 0, netns: false },
  { id: 'ns1', stages: 4, delayMs: 1, netns: true },
  { id: 'ns5', stages: 4, delayMs: 5, netns: true },
  { id: 'ns5x2', stages: 2, delayMs: 5, netns: true },
  // The paper's regime: many stages, hops that cost milliseconds (not in the default run: on
  // a 2-core host their stage processes share two cores, so they measure a CPU-bound pipeline).
  { id: 'lo8', stages: 8, delayMs: 0, netns: false },
  { id: 'ns5x8', stages: 8, delayMs: 5, netns: true },
  { id: 'ns10x14', stages: 14, delayMs: 10, netns: true },
];

// ---------------------------------------------------------------- models and prompts

interface Models {
  target: string;
  draft: string;
  label: string;
}

async function models(tmp: string): Promise<Models> {
  const target = path.join(ROOT, 'models/demo-target');
  const draft = path.join(ROOT, 'models/demo-draft');
  if (existsSync(path.join(target, 'config.json')) && existsSync(path.join(draft, 'config.json'))) {
    return { target, draft, label: 'demo pair (models/demo-target, models/demo-draft)' };
  }
  // No demo pair yet: a random target of the demo's shape, drafted by itself (every guess
  // right: the best case for speculation, with a draft as costly as the whole target).
  const t = path.join(tmp, 'target');
  await writeRandomCheckpoint(t, {
    layers: 16,
    hidden: 192,
    heads: 6,
    kvHeads: 2,
    intermediate: 512,
    vocab: 4096,
    seed: 5,
    dtype: 'f32',
    tied: false,
    maxPositions: 1024,
  });
  return { target: t, draft: t, label: 'random 16-layer target of the demo shape, self-drafted' };
}

async function prompts(target: string): Promise<number[][]> {
  const tok = await loadTokenizer(target);
  const lines = async (name: string): Promise<string[]> => {
    const file = path.join(ROOT, 'models/prompts', `${name}.jsonl`);
    if (!existsSync(file)) return [];
    return (await readFile(file, 'utf8'))
      .split('\n')
      .filter(Boolean)
      .map((l) => (JSON.parse(l) as { text: string }).text);
  };
  const texts: string[] = [];
  if (PROMPT_SET === 'firsts') {
    for (const name of ['quotes', 'code', 'scripture'])
      texts.push(...(await lines(name)).slice(0, 1));
  } else {
    const set = await lines(PROMPT_SET);
    if (set.length < PROMPT_COUNT) {
      throw new Error(
        `--prompt-set ${PROMPT_SET}: models/prompts/${PROMPT_SET}.jsonl has ${set.length} prompts, --prompts asks for ${PROMPT_COUNT}`,
      );
    }
    texts.push(...set.slice(0, PROMPT_COUNT));
  }
  while (texts.length < PROMPT_COUNT) texts.push(`Benchmark prompt ${texts.length}: the pipeline`);
  return texts.slice(0, PROMPT_COUNT).map((t) => tok.encode(t).slice(0, 48));
}

// ---------------------------------------------------------------- the wire

interface WireResult {
  samples: number;
  /** CPU time of one hop's codec in this process: frame encode, and decode. */
  codecUs: Record<string, { encode: number; decode: number; bytes: number }>;
  pingMs: number; // median round trip of an empty message
  rawBytesMs: Record<string, number>; // same-size opaque payload
  packetMs: Record<string, number>; // Echo of a layer packet (encode + decode on both ends)
  overheadMs: Record<string, number>; // packetMs - rawBytesMs, per interleaved sample
  /**
   * The same bytes over a plain TCP socket to a minimal echo process (bench/tcp-echo.mjs):
   * what a transport of our own could save against gRPC, before any framing of its own.
   */
  tcpBytesMs: Record<string, number>;
  tcpPingMs: number;
}

/** A plain TCP echo process (bench/tcp-echo.mjs) and a way to time one round trip to it. */
async function tcpProber(): Promise<{
  once: (payload: Buffer) => Promise<number>;
  close: () => void;
}> {
  const child = spawn(process.execPath, [path.join(ROOT, 'bench/tcp-echo.mjs')], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
    child.once('exit', (code) => reject(new Error(`tcp-echo exited with ${code}`)));
  });
  const socket = net.connect(port, '127.0.0.1');
  socket.setNoDelay(true);
  await once(socket, 'connect');
  let want = 0;
  let got = 0;
  let done: (() => void) | null = null;
  socket.on('data', (chunk: Buffer) => {
    got += chunk.length;
    if (got >= want) done?.();
  });
  return {
    async once(payload: Buffer): Promise<number> {
      const frame = Buffer.allocUnsafe(4 + payload.length);
      frame.writeUInt32LE(payload.length, 0);
      payload.copy(frame, 4);
      const t = performance.now();
      await new Promise<void>((r) => {
        done = r;
        want = frame.length;
        got = 0;
        socket.write(frame);
      });
      return performance.now() - t;
    },
    close: () => {
      socket.destroy();
      child.kill('SIGTERM');
    },
  };
}

/** One open stream and a way to time one round trip on it. */
function prober(call: ReturnType<ReturnType<typeof dialStage>['Ping']>) {
  let resolve: (() => void) | null = null;
  call.on('data', () => resolve?.());
  return {
    async once(message: () => Buffer): Promise<number> {
      const t = performance.now();
      await new Promise<void>((r) => {
        resolve = r;
        call.write(message());
      });
      return performance.now() - t;
    },
    end: () => call.end(),
  };
}

async function measureWire(address: string, hidden: number): Promise<WireResult> {
  const client = dialStage(address);
  const n = 400;
  const shapes: Record<string, number> = { 'tree layer 16 rows': 16, 'prefill chunk 32 rows': 32 };
  const res: WireResult = {
    samples: n,
    codecUs: {},
    pingMs: 0,
    rawBytesMs: {},
    packetMs: {},
    overheadMs: {},
    tcpBytesMs: {},
    tcpPingMs: 0,
  };
  const pings: number[] = [];
  const tcpPings: number[] = [];
  const tcp = await tcpProber();
  for (const [label, rows] of Object.entries(shapes)) {
    for (const dtype of ['FP32', 'FP16'] as const) {
      const key = `${label}, ${dtype.toLowerCase()} (${rows}x${hidden})`;
      const packet = {
        requestId: randomUUID(),
        epoch: 1,
        seq: 1,
        nodeIds: Int32Array.from({ length: rows }, (_, i) => 100 + i),
        parentIds: Int32Array.from({ length: rows }, (_, i) => 99 + (i >> 2)),
        positions: Int32Array.from({ length: rows }, (_, i) => 40 + (i >> 2)),
        hidden: Float32Array.from({ length: rows * hidden }, (_, i) => Math.sin(i)),
        sampling: { temperature: 0, topP: 1, seed: 0 },
      };
      const env = { packet, decisionCount: 0, trace: { computeMs: [], rows: [], codecMs: 0 } };
      let buf = encodePackets([env], dtype);
      for (let i = 0; i < 1000; i++) decodePackets(buf); // JIT warm-up
      let t0 = performance.now();
      for (let i = 0; i < 2000; i++) buf = encodePackets([env], dtype);
      const encode = ((performance.now() - t0) / 2000) * 1000;
      t0 = performance.now();
      for (let i = 0; i < 2000; i++) decodePackets(buf);
      const decode = ((performance.now() - t0) / 2000) * 1000;
      res.codecUs[key] = { encode, decode, bytes: buf.length };
      // Samples interleaved (empty ping, same-size opaque ping, packet echo) so that load
      // changes on this shared host hit all three alike; the overhead is the median of the
      // per-sample differences.
      const bytes = buf.byteLength;
      const ping = prober(client.Ping());
      const raw = prober(client.Ping());
      const echo = prober(client.Echo());
      const empty = Buffer.alloc(16);
      const opaque = Buffer.alloc(bytes);
      const p: number[] = [];
      const r: number[] = [];
      const e: number[] = [];
      const tb: number[] = [];
      for (let i = 0; i < n + 20; i++) {
        const tp = await ping.once(() => empty);
        const tr = await raw.once(() => opaque);
        // The client encodes on every send, as a stage does before each hop.
        const te = await echo.once(() => encodePackets([env], dtype));
        const tt = await tcp.once(opaque);
        const tq = await tcp.once(empty);
        if (i < 20) continue; // warm-up
        p.push(tp);
        r.push(tr);
        e.push(te);
        tb.push(tt);
        tcpPings.push(tq);
      }
      res.tcpBytesMs[key] = median(tb);
      for (const x of [ping, raw, echo]) x.end();
      pings.push(...p);
      res.rawBytesMs[key] = median(r);
      res.packetMs[key] = median(e);
      res.overheadMs[key] = median(e.map((x, k) => x - r[k]));
    }
  }
  res.pingMs = median(pings);
  res.tcpPingMs = median(tcpPings);
  tcp.close();
  client.close();
  return res;
}

// ---------------------------------------------------------------- one scenario

interface MethodRun {
  method: Method;
  requests: { stats: RequestStats; transport: TransportStats | null; prompt: number }[];
  /**
   * CPU (user + system, /proc) each stage process used during this method's requests, the
   * packets each computed meanwhile (its /health), and the delay proxy's CPU.
   */
  cpu?: CpuTally;
}

interface CpuTally {
  stageMs: number[];
  /** Of stageMs, the CPU spent inside ONNX Runtime (each stage's /health runtimeCpuMs). */
  runtimeMs: number[];
  packets: number[];
  proxyMs: number;
}

/**
 * Each stage's CPU ms and packets so far, and the delay proxy's CPU ms (0 on loopback). The
 * packets come from each stage's /health, read before the CPU (`healthFirst`, before a job) or
 * after it (after a job), so the /health calls' own CPU is never inside a measured span.
 */
async function cpuSnapshot(
  cluster: LocalCluster,
  proxy: ChildProcess | undefined,
  healthFirst: boolean,
) {
  const packets: number[] = [];
  const runtimeMs: number[] = [];
  const readPackets = async () => {
    for (let s = 0; s < cluster.stageCount; s++) {
      const h = await cluster.health(s);
      packets.push(Number((h?.body.batching as { packets?: number } | undefined)?.packets ?? 0));
      runtimeMs.push(Number(h?.body.runtimeCpuMs ?? NaN));
    }
  };
  if (healthFirst) await readPackets();
  const stageMs: number[] = [];
  for (let s = 0; s < cluster.stageCount; s++) {
    stageMs.push(1000 * (await cpuSeconds(cluster.pid(s)!)));
  }
  const proxyMs = proxy?.pid ? 1000 * (await cpuSeconds(proxy.pid)) : 0;
  if (!healthFirst) await readPackets();
  return { stageMs, runtimeMs, packets, proxyMs };
}

/** Adds what the processes used between two snapshots to a tally. */
function addCpu(tally: CpuTally, before: CpuSnapshot, after: CpuSnapshot): void {
  for (let st = 0; st < tally.stageMs.length; st++) {
    tally.stageMs[st] += after.stageMs[st] - before.stageMs[st];
    tally.runtimeMs[st] += after.runtimeMs[st] - before.runtimeMs[st];
    tally.packets[st] += after.packets[st] - before.packets[st];
  }
  tally.proxyMs += after.proxyMs - before.proxyMs;
}

type CpuSnapshot = Awaited<ReturnType<typeof cpuSnapshot>>;

/** The requests of one sampled row: PP (acceptance null) or PipeDec at one temperature. */
interface SampledRun extends MethodRun {
  method: Method;
  temperature: number;
  acceptance: Acceptance | null;
}

interface StageMemory {
  stage: number;
  layers: string;
  residentMiB: number;
  weightMiB: number;
}

async function runScenario(
  sc: Scenario,
  m: Models,
  promptIds: number[][],
  hidden: number,
): Promise<{
  runs: MethodRun[];
  sampledRuns: SampledRun[];
  memory: StageMemory[];
  wire: WireResult | null;
}> {
  const children: ChildProcess[] = [];
  let redisUrl = 'redis://127.0.0.1:6379';
  let redisHost = '127.0.0.1';
  const prefix = `bench:cluster:${sc.id}:${Date.now()}:`;
  let cluster: LocalCluster | null = null;
  try {
    let stagePlacement;
    let ports;
    if (sc.netns) {
      const ns = await startNetnsCluster(sc.stages, sc.delayMs);
      children.push(...ns.children);
      redisHost = BRIDGE_HOST;
      redisUrl = ns.redisUrl;
      ports = ns.ports;
      stagePlacement = ns.placement;
    }
    cluster = await LocalCluster.start({
      pipelineId: `bench-${sc.id}`,
      stages: sc.stages,
      checkpointDir: m.target,
      draftCheckpointDir: m.draft,
      redisUrl,
      redisPrefix: prefix,
      env: {
        MODEL_NAME: 'bench',
        STPP_DEPTH: String(STPP_DEPTH),
        PIPEDEC_REFILL_LAYERS: String(refillLayersFor(sc.stages)),
        PIPELINE_CHECK_MS: '500',
        WARMUP_TOKENS: args['warmup-tokens'],
        ...STAGE_ENV,
      },
      placement: stagePlacement,
      ports,
      readyTimeoutMs: 180_000,
    });
    const redis = new Redis({
      host: redisHost,
      port: Number(new URL(redisUrl).port),
      maxRetriesPerRequest: null,
    });
    const queue = new Queue(GENERATION_QUEUE, { connection: redis, prefix: queuePrefix(prefix) });
    const wire =
      !sc.netns && sc.stages === 4 ? await measureWire(cluster.grpcAddress(1), hidden) : null;
    const runJob = async (
      method: Method,
      prompt: number[],
      maxTokens: number,
      sampling: SamplingParams = GREEDY,
    ) => {
      const requestId = randomUUID();
      const job: GenerationJob = {
        version: 1,
        requestId,
        tenantId: randomUUID(),
        model: 'bench',
        prompt: { kind: 'tokens', tokenIds: prompt },
        promptTokens: prompt.length,
        maxTokens,
        sampling: {
          temperature: sampling.temperature,
          topP: sampling.topP,
          seed: sampling.seed,
          ...(sampling.acceptance ? { acceptance: sampling.acceptance } : {}),
        },
        method,
        width: method === 'pp' ? 1 : method === 'stpp' ? STPP_WIDTH : WIDTH,
        stop: [],
        eventsKey: `${prefix}req:${requestId}:events`,
        cancelKey: `${prefix}req:${requestId}:cancel`,
        enqueuedAt: Date.now(),
      };
      await queue.add(GENERATION_JOB_NAME, job, { jobId: requestId });
      for (let i = 0; i < 6000; i++) {
        const j = await Job.fromId(queue, requestId);
        if (j?.finishedOn) {
          if (j.failedReason) throw new Error(`${method} failed: ${j.failedReason}`);
          return j.returnvalue as GenerationSummary;
        }
        await new Promise((r) => setTimeout(r, 10));
      }
      throw new Error(`${method} did not finish in 60 s`);
    };
    for (const method of METHODS) await runJob(method, promptIds[0], 4); // warm-up
    // Round-robin over repeats, prompts and methods, so load changes on this shared host
    // spread over all methods alike.
    const runs: MethodRun[] = METHODS.map((method) => ({
      method,
      requests: [],
      cpu: {
        stageMs: Array<number>(sc.stages).fill(0),
        runtimeMs: Array<number>(sc.stages).fill(0),
        packets: Array<number>(sc.stages).fill(0),
        proxyMs: 0,
      },
    }));
    const proxy = children.find((c) => c.spawnargs.some((a) => a.includes('delay-proxy')));
    for (let rep = 0; rep < REPEATS; rep++) {
      for (const [pi, p] of promptIds.entries()) {
        for (const [mi, method] of METHODS.entries()) {
          const before = await cpuSnapshot(cluster, proxy, true);
          const s = await runJob(method, p, MAX_TOKENS);
          const after = await cpuSnapshot(cluster, proxy, false);
          addCpu(runs[mi].cpu!, before, after);
          if (args['trace-requests']) {
            const ms =
              (s.stats.wallMs - s.stats.ttftWallMs) / Math.max(1, s.stats.committedTokens - 1);
            process.stderr.write(`request ${rep}/${pi} ${method}: ${ms.toFixed(2)} ms/token\n`);
          }
          runs[mi].requests.push({ stats: s.stats, transport: s.transport, prompt: pi });
        }
      }
    }
    // Sampled rows, round-robin like the greedy ones: per temperature, PP, and STPP and PipeDec
    // in each acceptance mode, on the same prompts and seeds.
    const sampledRuns: SampledRun[] = [];
    for (const temperature of TEMPERATURES) {
      const tally = (): CpuTally => ({
        stageMs: Array<number>(sc.stages).fill(0),
        runtimeMs: Array<number>(sc.stages).fill(0),
        packets: Array<number>(sc.stages).fill(0),
        proxyMs: 0,
      });
      const rows: SampledRun[] = [
        { method: 'pp', temperature, acceptance: null, requests: [], cpu: tally() },
        ...ACCEPTANCES.flatMap((acceptance) =>
          (['stpp', 'pipedec'] as const).map((method): SampledRun => ({
            method,
            temperature,
            acceptance,
            requests: [],
            cpu: tally(),
          })),
        ),
      ];
      for (let rep = 0; rep < REPEATS; rep++) {
        for (const [pi, p] of promptIds.entries()) {
          for (const row of rows) {
            const sampling = sampledFor(temperature, row.acceptance ?? 'exact', pi);
            const before = await cpuSnapshot(cluster, proxy, true);
            const s = await runJob(row.method, p, MAX_TOKENS, sampling);
            const after = await cpuSnapshot(cluster, proxy, false);
            addCpu(row.cpu!, before, after);
            row.requests.push({ stats: s.stats, transport: s.transport, prompt: pi });
          }
        }
      }
      sampledRuns.push(...rows);
    }
    const memory: StageMemory[] = [];
    for (let s = 0; s < sc.stages; s++) {
      const b = (await cluster.health(s))?.body ?? {};
      memory.push({
        stage: s,
        layers: `[${String(b.layerStart)}, ${String(b.layerEnd)})`,
        residentMiB: Number(b.residentBytes) / 2 ** 20,
        weightMiB: Number(b.weightBytes) / 2 ** 20,
      });
    }
    await queue.close();
    await redis.quit();
    return { runs, sampledRuns, memory, wire };
  } catch (error) {
    if (cluster) {
      for (let s = 0; s < sc.stages; s++) {
        process.stderr.write(`--- stage ${s} log (tail)\n${cluster.logs(s).slice(-3000)}\n`);
      }
    }
    throw error;
  } finally {
    await cluster?.stop();
    for (const c of children.reverse()) await stopChild(c);
    if (sc.netns) cleanupNamespaces();
  }
}

// ---------------------------------------------------------------- the simulated clock

interface SimRun {
  stats: RequestStats;
  loads: TimestepLoad[]; // per simulated timestep: rows and draft calls, priced by a cost model
}

/**
 * Cost models from what the run itself measured, one per method: its compute per stage and
 * packet, its draft time per draft call (calls counted by the simulator on the same
 * requests), and one hop for all, from PP's packets (one in flight, so no queueing). Per
 * method because on a host with fewer cores than busy processes the stages of PipeDec (all busy
 * at once, next to the draft) compute slower than PP's (one busy at a time): the prediction
 * then says what the logical schedule yields with the costs each method actually met, and
 * measured / predicted is the runtime's efficiency (overlap, queueing, transport).
 *
 * A packet's compute grows with its rows (bench:model: a middle stage of 4 layers takes
 * 0.60 ms for 1 row, 0.92 for 16, 1.53 for 32), and PipeDec's refill packets carry up to
 * W x (S - 1) rows beside its one-layer packets of W; priced at the mean packet they were
 * predicted too cheap (ns5x8 with refills of 8 layers: 77% of the prediction measured, 93%
 * without refills). So a stage costs fixed + perRow x rows, perRow / fixed = rowShare fitted
 * by least squares over every request of the scenario (PP's 1-row packets against STPP's
 * trees span the rows), and each method's level scaled so that its requests' packets and rows
 * cost what they measured.
 */
function calibrate(
  sc: Scenario,
  runs: MethodRun[],
  sims: Map<Method, SimRun[]>,
): Map<Method, CostModel> {
  let hopSum = 0;
  let hopN = 0;
  for (const q of runs.find((r) => r.method === 'pp')?.requests ?? []) {
    const t = q.transport;
    if (!t || t.hops === 0) continue;
    hopSum += (t.roundTripMs - t.computeMs) / t.hops;
    hopN++;
  }
  const hopMs = hopN > 0 ? hopSum / hopN : 0;
  /** Per request: stage compute, packets over all stages, rows over all stages. */
  const measured = (q: MethodRun['requests'][number]) => ({
    computeMs: q.transport?.computeMs ?? 0,
    packets: (q.transport?.packets ?? 0) * sc.stages,
    rows: q.stats.stagePositions.reduce((a, b) => a + b, 0),
  });
  const rowShare = fitRowShare(runs.flatMap((r) => r.requests.map(measured)));
  const costs = new Map<Method, CostModel>();
  for (const r of runs) {
    let compute = 0;
    let stagePackets = 0;
    let rows = 0;
    let draftMs = 0;
    let calls = 0;
    r.requests.forEach((q) => {
      const m = measured(q);
      compute += m.computeMs;
      stagePackets += m.packets;
      rows += m.rows;
      draftMs += q.stats.draftMs;
      for (const l of sims.get(r.method)![q.prompt].loads)
        calls += l.serialDraftCalls + l.overlapDraftCalls;
    });
    const units = stagePackets + rowShare * rows;
    const fixed = units > 0 ? compute / units : 0;
    costs.set(r.method, {
      name: `${r.method} on ${sc.id}`,
      stageFixedMs: fixed,
      stagePerPositionMs: rowShare * fixed,
      hopMs,
      draftFixedMs: calls > 0 ? draftMs / calls : 0,
      draftPerPositionMs: 0,
    });
  }
  return costs;
}

/**
 * perRow / fixed of compute = fixed x packets + perRow x rows, by least squares over the
 * requests given; 0 (every packet the same) when the fit is degenerate or not positive.
 */
function fitRowShare(
  requests: readonly { computeMs: number; packets: number; rows: number }[],
): number {
  let pp = 0;
  let pr = 0;
  let rr = 0;
  let pc = 0;
  let rc = 0;
  for (const q of requests) {
    if (q.packets <= 0) continue;
    pp += q.packets * q.packets;
    pr += q.packets * q.rows;
    rr += q.rows * q.rows;
    pc += q.packets * q.computeMs;
    rc += q.rows * q.computeMs;
  }
  const det = pp * rr - pr * pr;
  if (!(det > 1e-9 * pp * rr)) return 0;
  const fixed = (pc * rr - rc * pr) / det;
  const perRow = (pp * rc - pr * pc) / det;
  return fixed > 0 && perRow > 0 ? perRow / fixed : 0;
}

/** Simulated ms per output token after the first, under `cost`. */
function simulatedMsPerToken(sim: SimRun, cost: CostModel): number {
  const decode = sim.loads.slice(sim.stats.prefillTimesteps);
  const ms = decode.reduce((a, l) => a + timestepMs(cost, l), 0);
  return ms / Math.max(1, sim.stats.committedTokens - 1);
}

async function simulate(
  stages: LayerShard[],
  draft: LayerShard,
  method: Method,
  prompt: number[],
  sampling: SamplingParams = GREEDY,
): Promise<SimRun> {
  const pipeline = new SimulatedPipeline(
    stages.map((s, i) => new StageWorker(s, i)),
    PAPER_A100_COST, // any: the loads are repriced under the calibrated model
  );
  const request: GenerateRequest = {
    requestId: randomUUID(),
    prompt,
    maxTokens: MAX_TOKENS,
    sampling,
  };
  const d = pipeline.meterDraft(draft);
  let res: GenerateResult;
  switch (method) {
    case 'pp':
      res = await generatePP(pipeline, request);
      break;
    case 'stpp':
      res = await generateSTPP(pipeline, d, request, {
        depth: STPP_DEPTH,
        branching: defaultBranching(STPP_WIDTH),
        budget: STPP_WIDTH * STPP_DEPTH,
        scoreTemperature: SCORE_TEMPERATURE,
      });
      break;
    case 'pipedec':
      res = await generatePipeDec(pipeline, d, request, {
        width: WIDTH,
        refillLayers: refillLayersFor(stages.length),
        scoreTemperature: SCORE_TEMPERATURE,
      });
      break;
  }
  return { stats: res.stats, loads: [...pipeline.loads] };
}

// ---------------------------------------------------------------- report

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
const f = (x: number, d = 2): string => (Number.isFinite(x) ? x.toFixed(d) : '-');

interface MethodSummary {
  method: Method;
  msPerToken: number; // decode: (wall - ttft) / (tokens - 1)
  tokensPerSecond: number; // end to end: output tokens / wall
  timestepsPerToken: number;
  hitRate: number;
  perTimestep: {
    totalMs: number;
    computeMs: number;
    transferMs: number;
    broadcastMs: number;
    draftMs: number;
  };
  hopMs: number;
  simulatedMsPerToken: number;
  cpu: CpuSummary | null;
}

/** Where the CPU went during a method's greedy requests (MethodRun.cpu). */
interface CpuSummary {
  /** All stage processes together, per output token (prefill included). */
  msPerToken: number;
  perStageMsPerToken: number[];
  /** The delay proxy (namespaced scenarios): the emulated network's cost, not the product's. */
  proxyMsPerToken: number;
  /**
   * Per packet a stage computed: its CPU, the CPU inside ONNX Runtime, the rest (the packet
   * path), and the runtime's wall time (its computeMs: above its CPU when the stage was
   * preempted mid-call by the other processes on the shared cores).
   */
  msPerPacket: number[];
  runtimeCpuMsPerPacket: number[];
  outsideRuntimeMsPerPacket: number[];
  runtimeWallMsPerPacket: number[];
  /**
   * The host's cores kept busy by the stages and the proxy over the requests' wall time (1 =
   * all of them): near 1 the timestep is bound by CPU, well below by the hops.
   */
  coresBusy: number;
}

function cpuSummary(run: MethodRun): CpuSummary | null {
  const c = run.cpu;
  if (!c) return null;
  const q = run.requests;
  const tokens = q.reduce((s, r) => s + r.stats.outputTokens, 0);
  const wall = q.reduce((s, r) => s + r.stats.wallMs, 0);
  const stages = c.stageMs.reduce((a, b) => a + b, 0);
  const compute = c.stageMs.map((_, st) =>
    q.reduce((s, r) => s + (r.stats.stageBusyMs[st] ?? 0), 0),
  );
  const perPacket = (x: number, st: number) => (c.packets[st] > 0 ? x / c.packets[st] : NaN);
  return {
    msPerToken: stages / tokens,
    perStageMsPerToken: c.stageMs.map((x) => x / tokens),
    proxyMsPerToken: c.proxyMs / tokens,
    msPerPacket: c.stageMs.map(perPacket),
    runtimeCpuMsPerPacket: c.runtimeMs.map(perPacket),
    outsideRuntimeMsPerPacket: c.stageMs.map((x, st) => perPacket(x - c.runtimeMs[st], st)),
    runtimeWallMsPerPacket: compute.map(perPacket),
    coresBusy: (stages + c.proxyMs) / wall / os.cpus().length,
  };
}

function summarize(run: MethodRun, sims: SimRun[], cost: CostModel): MethodSummary {
  const q = run.requests;
  const tpot = median(
    q.map((r) => (r.stats.wallMs - r.stats.ttftWallMs) / Math.max(1, r.stats.committedTokens - 1)),
  );
  const tps = median(q.map((r) => (1000 * r.stats.outputTokens) / r.stats.wallMs));
  // Timesteps are the simulator's logical clock for the same requests (the real pipeline is
  // asynchronous and has none); the real wall time is split over them.
  const steps = q.reduce((s, r) => s + sims[r.prompt].stats.timesteps, 0);
  const wall = q.reduce((s, r) => s + r.stats.wallMs, 0);
  const compute = q.reduce((s, r) => s + Math.max(...r.stats.stageBusyMs), 0);
  const draft = q.reduce((s, r) => s + r.stats.draftMs, 0);
  const broadcast = q.reduce((s, r) => s + (r.transport?.broadcastMs ?? 0), 0);
  const hops = q.reduce((s, r) => s + (r.transport?.hops ?? 0), 0);
  const inTransit = q.reduce(
    (s, r) => s + ((r.transport?.roundTripMs ?? 0) - (r.transport?.computeMs ?? 0)),
    0,
  );
  const total = wall / steps;
  return {
    method: run.method,
    msPerToken: tpot,
    tokensPerSecond: tps,
    timestepsPerToken: mean(sims.map((x) => x.stats.timestepsPerToken)),
    hitRate: mean(q.map((r) => r.stats.hitRate)),
    perTimestep: {
      totalMs: total,
      computeMs: compute / steps,
      draftMs: draft / steps,
      broadcastMs: broadcast / steps,
      transferMs: Math.max(0, total - (compute + draft + broadcast) / steps),
    },
    hopMs: hops > 0 ? inTransit / hops : 0,
    simulatedMsPerToken: mean(sims.map((x) => simulatedMsPerToken(x, cost))),
    cpu: cpuSummary(run),
  };
}

/** One sampled row: PipeDec at a temperature and acceptance mode, beside PP at the same. */
interface SampledSummary {
  stages: number;
  temperature: number;
  acceptance: Acceptance;
  /** PipeDec's timesteps per token (simulated clock, same requests). */
  timestepsPerToken: number;
  ppTimestepsPerToken: number;
  msPerToken: number; // PipeDec, measured (median)
  ppMsPerToken: number;
  speedupOverPP: { measured: number; timesteps: number };
  /** STPP in the same acceptance mode, on the same requests (median ms/token). */
  stppMsPerToken: number;
  speedupOverSTPP: { measured: number };
  /**
   * Stage CPU (all stage processes, the delay proxy apart) per output token: PipeDec, PP and
   * STPP.
   */
  cpuMsPerToken: number | null;
  ppCpuMsPerToken: number | null;
  stppCpuMsPerToken: number | null;
  hitRate: number;
  /** Drafted tokens accepted per verification (PipeDec verifies one node per verdict). */
  acceptedPerVerification: number;
  /** Tokens committed per verification (accepted drafted tokens and the target's own). */
  tokensPerVerification: number;
  /** Whether every real request wrote as many tokens as its simulated twin. */
  simulatedTokensMatch: boolean;
}

function summarizeSampled(
  sc: Scenario,
  pp: SampledRun,
  stpp: SampledRun,
  pd: SampledRun,
  sims: Map<SampledRun, SimRun[]>,
): SampledSummary {
  const ppSims = sims.get(pp)!;
  const pdSims = sims.get(pd)!;
  const tpot = (run: SampledRun) =>
    median(
      run.requests.map(
        (r) => (r.stats.wallMs - r.stats.ttftWallMs) / Math.max(1, r.stats.committedTokens - 1),
      ),
    );
  const sum = (k: 'hits' | 'verifications' | 'committedTokens') =>
    pd.requests.reduce((a, r) => a + r.stats[k], 0);
  const steps = (sims: SimRun[]) => mean(sims.map((x) => x.stats.timestepsPerToken));
  const matches = (run: SampledRun, sims: SimRun[]) =>
    run.requests.every((r) => r.stats.outputTokens === sims[r.prompt].stats.outputTokens);
  return {
    stages: sc.stages,
    temperature: pd.temperature,
    acceptance: pd.acceptance!,
    timestepsPerToken: steps(pdSims),
    ppTimestepsPerToken: steps(ppSims),
    msPerToken: tpot(pd),
    ppMsPerToken: tpot(pp),
    speedupOverPP: { measured: tpot(pp) / tpot(pd), timesteps: steps(ppSims) / steps(pdSims) },
    stppMsPerToken: tpot(stpp),
    speedupOverSTPP: { measured: tpot(stpp) / tpot(pd) },
    cpuMsPerToken: cpuSummary(pd)?.msPerToken ?? null,
    ppCpuMsPerToken: cpuSummary(pp)?.msPerToken ?? null,
    stppCpuMsPerToken: cpuSummary(stpp)?.msPerToken ?? null,
    hitRate: sum('hits') / Math.max(1, sum('verifications')),
    acceptedPerVerification: sum('hits') / Math.max(1, sum('verifications')),
    tokensPerVerification: sum('committedTokens') / Math.max(1, sum('verifications')),
    simulatedTokensMatch:
      matches(pp, ppSims) && matches(stpp, sims.get(stpp)!) && matches(pd, pdSims),
  };
}

async function main(): Promise<void> {
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'bench-cluster-'));
  const started = Date.now();
  const loadAtStart = os.loadavg()[0]; // 1-minute load average: how shared the 2 cores were
  try {
    const m = await models(tmp);
    const promptIds = await prompts(m.target);
    const scenarios = args.scenarios.split(',').map((id) => {
      const s = ALL_SCENARIOS.find((x) => x.id === id);
      if (!s)
        throw new Error(
          `unknown scenario ${id}; known: ${ALL_SCENARIOS.map((x) => x.id).join(', ')}`,
        );
      return s;
    });
    const whole = await openShard({ checkpointDir: m.target, intraOpThreads: 1 });
    const hidden = whole.info.hiddenSize;
    const numLayers = whole.info.numLayers;
    await whole.close();
    const draftShard = await openShard({
      checkpointDir: m.draft,
      intraOpThreads: 1,
      proposals: true,
    });
    const results = [];
    let wire: WireResult | null = null;
    for (const sc of scenarios) {
      process.stderr.write(
        `scenario ${sc.id}: ${sc.stages} stages, ${sc.delayMs} ms/hop${sc.netns ? ', netns' : ''}\n`,
      );
      const r = await runScenario(sc, m, promptIds, hidden);
      wire ??= r.wire;
      const shards: LayerShard[] = [];
      for (const range of splitLayers(numLayers, sc.stages)) {
        shards.push(await openShard({ checkpointDir: m.target, ...range, intraOpThreads: 1 }));
      }
      const sims = new Map<Method, SimRun[]>();
      for (const method of METHODS) {
        const list: SimRun[] = [];
        for (const p of promptIds) list.push(await simulate(shards, draftShard, method, p));
        sims.set(method, list);
      }
      const sampledSims = new Map<SampledRun, SimRun[]>();
      for (const run of r.sampledRuns) {
        const list: SimRun[] = [];
        for (const [pi, p] of promptIds.entries()) {
          const sampling = sampledFor(run.temperature, run.acceptance ?? 'exact', pi);
          list.push(await simulate(shards, draftShard, run.method, p, sampling));
        }
        sampledSims.set(run, list);
      }
      for (const s of shards) await s.close();
      const sampled: SampledSummary[] = [];
      for (const pd of r.sampledRuns.filter((x) => x.method === 'pipedec')) {
        const pp = r.sampledRuns.find(
          (x) => x.method === 'pp' && x.temperature === pd.temperature,
        )!;
        const stpp = r.sampledRuns.find(
          (x) =>
            x.method === 'stpp' &&
            x.temperature === pd.temperature &&
            x.acceptance === pd.acceptance,
        )!;
        sampled.push(summarizeSampled(sc, pp, stpp, pd, sampledSims));
      }
      for (const run of r.runs) {
        run.requests.forEach((q) => {
          const expected = sims.get(run.method)![q.prompt].stats.outputTokens;
          if (q.stats.outputTokens !== expected) {
            throw new Error(
              `${sc.id} ${run.method}: ${q.stats.outputTokens} tokens, simulated ${expected}`,
            );
          }
        });
      }
      const cost = calibrate(sc, r.runs, sims);
      const methods = r.runs.map((run) =>
        summarize(run, sims.get(run.method)!, cost.get(run.method)!),
      );
      const by = (k: Method) => methods.find((x) => x.method === k)!;
      const speedup = (k: Method) => ({
        measured: by('pp').msPerToken / by(k).msPerToken,
        predicted: by('pp').simulatedMsPerToken / by(k).simulatedMsPerToken,
      });
      const sp = { stpp: speedup('stpp'), pipedec: speedup('pipedec') };
      results.push({
        scenario: sc,
        cost: Object.fromEntries(cost),
        methods,
        speedupOverPP: {
          stpp: { ...sp.stpp, ratio: sp.stpp.measured / sp.stpp.predicted },
          pipedec: { ...sp.pipedec, ratio: sp.pipedec.measured / sp.pipedec.predicted },
        },
        memory: r.memory,
        sampled,
      });
    }
    await draftShard.close();

    const out: string[] = [];
    out.push(`# bench:cluster (${new Date().toISOString()})`, '');
    out.push(
      `Model: ${m.label}; hidden ${hidden}, ${numLayers} layers. ${PROMPT_COUNT} prompts (${PROMPT_SET === 'firsts' ? 'the first of each held-out set' : `the first ${PROMPT_COUNT} of the ${PROMPT_SET} set`}) x ${REPEATS} runs per method (interleaved; ms/token and tokens/s are medians), ${MAX_TOKENS} tokens, greedy, PipeDec W=${WIDTH} (refills of up to ${REFILL_LAYERS_ARG ?? `min(stages, ${DEFAULT_REFILL_LAYERS_CAP})`} layers), STPP W=${STPP_WIDTH} depth ${STPP_DEPTH} budget ${STPP_WIDTH * STPP_DEPTH}. Each pipeline's head warmed up on ${args['warmup-tokens']} tokens before the first request (WARMUP_TOKENS). Host: ${os.cpus().length} CPUs shared by all stage processes; load average ${loadAtStart.toFixed(2)} at start, ${os.loadavg()[0].toFixed(2)} at the end.${
        Object.keys(STAGE_ENV).length > 0
          ? ` Stage environment: ${Object.entries(STAGE_ENV)
              .map(([k, v]) => `${k}=${v}`)
              .join(', ')}.`
          : ''
      }`,
      '',
    );
    out.push(
      '| run | method | ms/token | tokens/s | timesteps/token (sim) | hit rate | ms/timestep | compute | transfer | broadcast | draft | ms/hop | simulated ms/token |',
    );
    out.push('|---|---|---|---|---|---|---|---|---|---|---|---|---|');
    for (const r of results) {
      for (const x of r.methods) {
        const t = x.perTimestep;
        out.push(
          `| ${r.scenario.id} (${r.scenario.stages} st, ${r.scenario.delayMs} ms) | ${x.method} | ${f(x.msPerToken)} | ${f(x.tokensPerSecond, 1)} | ${f(x.timestepsPerToken)} | ${f(x.hitRate)} | ${f(t.totalMs)} | ${f(t.computeMs)} | ${f(t.transferMs)} | ${f(t.broadcastMs, 3)} | ${f(t.draftMs)} | ${f(x.hopMs)} | ${f(x.simulatedMsPerToken)} |`,
        );
      }
    }
    out.push(
      '',
      "CPU (user + system from /proc) of every stage process during each method's greedy requests: per output token (prefill included), the delay proxy apart (the emulated network, not the product); per packet at the middle stages (their mean): the process's CPU, the CPU inside ONNX Runtime (its /health runtimeCpuMs) and the rest, the packet path (receive, decode, KV bookkeeping, encode, send, timers); the runtime's wall time per packet beside it (above its CPU when other processes preempted the call); cores busy = (stages + proxy) CPU over the requests' wall time and the host's cores: near 1 the timestep is bound by CPU, well below by the hops.",
      '',
      '| run | method | stage CPU ms/token | per stage | proxy ms/token | middle stage: CPU ms/packet | in ORT | **outside ORT** | ORT wall ms/packet | cores busy |',
      '|---|---|---|---|---|---|---|---|---|---|',
    );
    for (const r of results) {
      for (const x of r.methods) {
        const c = x.cpu;
        if (!c) continue;
        // The middle stages (not the head, which also drafts, nor the last, which verifies).
        const mids = c.msPerPacket.map((_, st) => st).slice(1, -1);
        const avg = (xs: number[]) => mean(mids.map((st) => xs[st]));
        out.push(
          `| ${r.scenario.id} | ${x.method} | ${f(c.msPerToken)} | ${c.perStageMsPerToken.map((v) => f(v)).join(' / ')} | ${f(c.proxyMsPerToken)} | ${f(avg(c.msPerPacket), 3)} | ${f(avg(c.runtimeCpuMsPerPacket), 3)} | **${f(avg(c.outsideRuntimeMsPerPacket), 3)}** | ${f(avg(c.runtimeWallMsPerPacket), 3)} | ${f(c.coresBusy)} |`,
        );
      }
    }
    out.push(
      '',
      'Calibration (measured in the same run): one hop from PP; stage ms per packet (fixed + per row x rows, the per-row share fitted over all requests of the run) and draft ms per call per method.',
      '',
    );
    for (const r of results) {
      const c = r.cost as Record<string, CostModel>;
      out.push(
        `- ${r.scenario.id}: hop ${f(c.pp.hopMs)} ms; stage ${METHODS.map((k) => `${k} ${f(c[k].stageFixedMs)} + ${f(c[k].stagePerPositionMs, 4)}/row`).join(', ')} ms; draft ${METHODS.filter(
          (k) => k !== 'pp',
        )
          .map((k) => `${k} ${f(c[k].draftFixedMs)}`)
          .join(', ')} ms`,
      );
    }
    out.push(
      '',
      '| run | speedup over PP | measured | simulated clock | measured / simulated |',
      '|---|---|---|---|---|',
    );
    for (const r of results) {
      for (const k of ['stpp', 'pipedec'] as const) {
        const s = r.speedupOverPP[k];
        out.push(
          `| ${r.scenario.id} | ${k} | ${f(s.measured)}x | ${f(s.predicted)}x | ${f(100 * s.ratio, 0)}% |`,
        );
      }
    }
    if (results.some((r) => r.sampled.length > 0)) {
      out.push(
        '',
        `Sampled requests (top-p 1, seed = prompt index + 1, same prompts and repeats). Timesteps per token from the simulated clock on the same requests; ms/token measured (median); stage CPU per output token as in the CPU table (all stage processes, the delay proxy apart). Acceptance "exact": a drafted child is accepted only if it is the target's seeded draw; "distribution": recursive rejection sampling (tokens distributed as the target's).`,
        '',
        '| run | temperature | acceptance | ts/token PP | ts/token PipeDec | PipeDec/PP (timesteps) | ms/token PP | STPP | PipeDec | PipeDec/PP (measured) | PipeDec/STPP | stage CPU ms/token PP | STPP | PipeDec | hit rate | accepted/verification | tokens/verification | tokens = simulated |',
        '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|',
      );
      for (const r of results) {
        for (const x of r.sampled) {
          out.push(
            `| ${r.scenario.id} (${r.scenario.stages} st, ${r.scenario.delayMs} ms) | ${x.temperature} | ${x.acceptance} | ${f(x.ppTimestepsPerToken)} | ${f(x.timestepsPerToken)} | ${f(x.speedupOverPP.timesteps)}x | ${f(x.ppMsPerToken)} | ${f(x.stppMsPerToken)} | ${f(x.msPerToken)} | ${f(x.speedupOverPP.measured)}x | ${f(x.speedupOverSTPP.measured)}x | ${f(x.ppCpuMsPerToken ?? NaN)} | ${f(x.stppCpuMsPerToken ?? NaN)} | ${f(x.cpuMsPerToken ?? NaN)} | ${f(x.hitRate)} | ${f(x.acceptedPerVerification)} | ${f(x.tokensPerVerification)} | ${x.simulatedTokensMatch ? 'yes' : 'NO'} |`,
          );
        }
      }
    }
    out.push('', '| run | stage | layers | resident MiB | weights MiB |', '|---|---|---|---|---|');
    for (const r of results)
      for (const s of r.memory)
        out.push(
          `| ${r.scenario.id} | ${s.stage} | ${s.layers} | ${f(s.residentMiB, 0)} | ${f(s.weightMiB, 2)} |`,
        );
    if (wire) {
      out.push(
        '',
        `Loopback wire (median of ${wire.samples} interleaved round trips to stage 1): raw gRPC round trip (empty message) ${f(wire.pingMs, 3)} ms. Echo sends a layer packet that stage 1 decodes and re-encodes, so its round trip holds two encodes and two decodes, one hop holds one of each; encode/decode are CPU microseconds per hop in this process.`,
        '',
      );
      out.push(
        '| packet | bytes | encode us | decode us | same bytes, opaque | layer packet (Echo) | packet minus same-bytes round trip | same bytes, plain TCP |',
        '|---|---|---|---|---|---|---|---|',
      );
      for (const k of Object.keys(wire.packetMs)) {
        const c = wire.codecUs[k];
        out.push(
          `| ${k} | ${c.bytes} | ${f(c.encode, 0)} | ${f(c.decode, 0)} | ${f(wire.rawBytesMs[k], 3)} ms | ${f(wire.packetMs[k], 3)} ms | ${f(wire.overheadMs[k], 3)} ms | ${f(wire.tcpBytesMs[k], 3)} ms |`,
        );
      }
      out.push(
        '',
        `Plain TCP (bench/tcp-echo.mjs, a minimal echo process, same interleaving): empty frame ${f(wire.tcpPingMs, 3)} ms against gRPC's ${f(wire.pingMs, 3)} ms.`,
      );
    }
    const text = out.join('\n');
    process.stdout.write(`${text}\n`);
    await mkdir(path.dirname(args.out), { recursive: true });
    await writeFile(
      args.out,
      JSON.stringify(
        {
          date: new Date().toISOString(),
          seconds: (Date.now() - started) / 1000,
          model: m.label,
          hidden,
          numLayers,
          maxTokens: MAX_TOKENS,
          prompts: PROMPT_COUNT,
          promptSet: PROMPT_SET,
          stageEnv: STAGE_ENV,
          width: WIDTH,
          stppWidth: STPP_WIDTH,
          stppDepth: STPP_DEPTH,
          refillLayers: REFILL_LAYERS_ARG ?? `min(stages, ${DEFAULT_REFILL_LAYERS_CAP})`,
          warmupTokens: Number(args['warmup-tokens']),
          temperatures: TEMPERATURES,
          acceptance: ACCEPTANCES,
          cpus: os.cpus().length,
          loadAverage1m: { start: loadAtStart, end: os.loadavg()[0] },
          wire,
          results,
          table: text,
        },
        null,
        2,
      ),
    );
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

await main();
