// Benchmark of a busy pipeline (npm run bench:batch, issue #16): C clients at once, each sending
// R requests one after another, through real stage processes on loopback (4 stages, the demo
// model pair), for PP, STPP and PipeDec. Three set-ups in the same run, so the ratios compare
// like with like on this shared machine:
//
//   serial      QUEUE_CONCURRENCY 1: one request in the pipeline at a time (before #16)
//   interleaved QUEUE_CONCURRENCY C, STAGE_BATCH_REQUESTS 1: requests share the pipeline, but
//               every stage computes one request's packet per runtime call
//   batched     QUEUE_CONCURRENCY C, STAGE_BATCH_REQUESTS 4: a stage computes the packets of up
//               to 4 requests in one call (LayerShard.forwardMany)
//
// Per set-up and method: aggregate output tokens/s (all tokens over the wall time of the whole
// load), time to first token p50/p99 (from enqueue to the first token event in the request's
// stream), and the CPU seconds the stage processes spent per 100 output tokens. Prints a
// markdown table and writes bench/results/batch.json.
import { GENERATION_QUEUE, queuePrefix } from '@pipedec/contracts';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { randomUUID } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { loadTokenizer } from '@pipedec/model';
import { LocalCluster } from '@pipedec/testkit/local-cluster';
import { cpuSeconds, quantile, runRequest } from './load-client.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const METHODS = ['pp', 'stpp', 'pipedec'] as const;
type Method = (typeof METHODS)[number];

const { values: args } = parseArgs({
  options: {
    clients: { type: 'string', default: '8' },
    requests: { type: 'string', default: '2' }, // per client, one after another
    tokens: { type: 'string', default: '48' },
    width: { type: 'string', default: '4' },
    setups: { type: 'string', default: 'serial,interleaved,batched' },
    methods: { type: 'string', default: METHODS.join(',') },
  },
});
const CLIENTS = Number(args.clients);
const PER_CLIENT = Number(args.requests);
const MAX_TOKENS = Number(args.tokens);
const WIDTH = Number(args.width);

interface Setup {
  id: string;
  env: Record<string, string>;
}
const SETUPS: Setup[] = [
  { id: 'serial', env: { QUEUE_CONCURRENCY: '1', STAGE_BATCH_REQUESTS: '1' } },
  {
    id: 'interleaved',
    env: { QUEUE_CONCURRENCY: String(CLIENTS), STAGE_BATCH_REQUESTS: '1' },
  },
  { id: 'batched', env: { QUEUE_CONCURRENCY: String(CLIENTS), STAGE_BATCH_REQUESTS: '4' } },
].filter((s) => args.setups.split(',').includes(s.id));

interface Row {
  setup: string;
  method: Method;
  requests: number;
  tokens: number;
  wallS: number;
  tokensPerS: number;
  ttftP50Ms: number;
  ttftP99Ms: number;
  stageCpuSPer100Tokens: number;
}

/** Held-out prompts (every line of the three sets, first 48 tokens), tokenized by the target. */
async function prompts(): Promise<number[][]> {
  const tok = await loadTokenizer(path.join(ROOT, 'models', 'demo-target'));
  const ids: number[][] = [];
  for (const f of ['scripture.jsonl', 'quotes.jsonl', 'code.jsonl']) {
    const lines = (await readFile(path.join(ROOT, 'models/prompts', f), 'utf8')).split('\n');
    for (const line of lines.filter(Boolean).slice(0, 8)) {
      ids.push(tok.encode((JSON.parse(line) as { text: string }).text).slice(0, 48));
    }
  }
  return ids;
}

async function runSetup(setup: Setup, methods: Method[], promptIds: number[][]): Promise<Row[]> {
  const prefix = `bench-batch-${randomUUID().slice(0, 8)}:`;
  const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
  const cluster = await LocalCluster.start({
    pipelineId: `bench-batch-${setup.id}`,
    stages: 4,
    checkpointDir: path.join(ROOT, 'models', 'demo-target'),
    draftCheckpointDir: path.join(ROOT, 'models', 'demo-draft'),
    redisUrl,
    redisPrefix: prefix,
    env: { MODEL_NAME: 'bench', PIPELINE_CHECK_MS: '500', ...setup.env },
    readyTimeoutMs: 180_000,
  });
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: null });
  const queue = new Queue(GENERATION_QUEUE, { connection: redis, prefix: queuePrefix(prefix) });
  const pids = Array.from({ length: 4 }, (_, s) => cluster.pid(s)!);
  try {
    /** One request to its end: time to first token, tokens. */
    const request = async (method: Method, prompt: number[], reader: Redis) => {
      const t = await runRequest(queue, reader, prefix, {
        method,
        width: WIDTH,
        prompt,
        maxTokens: MAX_TOKENS,
      });
      return { ttftMs: t.tokenAt[0] - t.enqueuedAt, tokens: t.tokenIds.length };
    };
    const readers = Array.from({ length: CLIENTS }, () => new Redis(redisUrl));
    try {
      for (const m of methods) await request(m, promptIds[0], readers[0]); // warm-up
      const rows: Row[] = [];
      for (const method of methods) {
        const cpu0 = await Promise.all(pids.map(cpuSeconds));
        const t0 = performance.now();
        const results = await Promise.all(
          readers.map(async (reader, c) => {
            const out = [];
            for (let r = 0; r < PER_CLIENT; r++) {
              const p = promptIds[(c * PER_CLIENT + r) % promptIds.length];
              out.push(await request(method, p, reader));
            }
            return out;
          }),
        );
        const wallS = (performance.now() - t0) / 1000;
        const cpu1 = await Promise.all(pids.map(cpuSeconds));
        const flat = results.flat();
        const tokens = flat.reduce((a, r) => a + r.tokens, 0);
        const cpu = cpu1.reduce((a, v, i) => a + v - cpu0[i], 0);
        const row: Row = {
          setup: setup.id,
          method,
          requests: flat.length,
          tokens,
          wallS,
          tokensPerS: tokens / wallS,
          ttftP50Ms: quantile(
            flat.map((r) => r.ttftMs),
            0.5,
          ),
          ttftP99Ms: quantile(
            flat.map((r) => r.ttftMs),
            0.99,
          ),
          stageCpuSPer100Tokens: (cpu / tokens) * 100,
        };
        console.error(
          `${setup.id} ${method}: ${row.tokensPerS.toFixed(1)} tokens/s, TTFT p50 ${row.ttftP50Ms.toFixed(0)} ms`,
        );
        rows.push(row);
      }
      return rows;
    } finally {
      await Promise.all(readers.map((r) => r.quit()));
    }
  } catch (error) {
    for (let s = 0; s < 4; s++) {
      process.stderr.write(`--- stage ${s} log (tail)\n${cluster.logs(s).slice(-3000)}\n`);
    }
    throw error;
  } finally {
    await queue.close();
    await redis.quit();
    await cluster.stop();
  }
}

async function main(): Promise<void> {
  const methods = args.methods.split(',') as Method[];
  const promptIds = await prompts();
  const load0 = os.loadavg()[0];
  const rows: Row[] = [];
  for (const setup of SETUPS) rows.push(...(await runSetup(setup, methods, promptIds)));
  const load1 = os.loadavg()[0];
  const base = (r: Row, id: string) =>
    rows.find((x) => x.setup === id && x.method === r.method)?.tokensPerS;
  const lines = [
    `### Busy pipeline: ${CLIENTS} clients x ${PER_CLIENT} requests, ${MAX_TOKENS} tokens, 4 stages loopback (load ${load0.toFixed(1)} -> ${load1.toFixed(1)}, ${os.cpus().length} cores)`,
    '',
    '| set-up | method | tokens/s | vs serial | vs interleaved | TTFT p50 ms | TTFT p99 ms | stage CPU s / 100 tokens |',
    '|---|---|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of rows) {
    const s = base(r, 'serial');
    const i = base(r, 'interleaved');
    lines.push(
      `| ${r.setup} | ${r.method} | ${r.tokensPerS.toFixed(1)} | ${s ? (r.tokensPerS / s).toFixed(2) + 'x' : '-'} | ${i ? (r.tokensPerS / i).toFixed(2) + 'x' : '-'} | ${r.ttftP50Ms.toFixed(0)} | ${r.ttftP99Ms.toFixed(0)} | ${r.stageCpuSPer100Tokens.toFixed(2)} |`,
    );
  }
  console.log(lines.join('\n'));
  await mkdir(path.join(ROOT, 'bench', 'results'), { recursive: true });
  await writeFile(
    path.join(ROOT, 'bench', 'results', 'batch.json'),
    JSON.stringify(
      {
        date: new Date().toISOString(),
        clients: CLIENTS,
        requestsPerClient: PER_CLIENT,
        maxTokens: MAX_TOKENS,
        width: WIDTH,
        stages: 4,
        loadAverage1m: { before: load0, after: load1 },
        cores: os.cpus().length,
        rows,
      },
      null,
      2,
    ) + '\n',
  );
}

await main();
