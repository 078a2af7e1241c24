// `node apps/stage-node/dist/launcher/start-pipeline.js`: starts a local pipeline of stage
// processes (4 by default) on the demo model pair under a StageSupervisor (a stage that dies
// is started again, with backoff, and the restart is logged), says when the pipeline is whole,
// and stops every stage (SIGTERM, graceful) when it receives SIGTERM or SIGINT.
// scripts/start-pipeline.sh runs it next to the API. This is the production launcher; the
// tests' harness with kill/restart/logs is @pipedec/testkit/local-cluster.
import { ConfigError, envVar, parseEnv } from '@pipedec/contracts';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { z } from 'zod';
import { reportDeadStages } from './dead-stage.js';
import { StageSupervisor } from './stage-supervisor.js';

const root = fileURLToPath(new URL('../../../../', import.meta.url));
/** The compiled stage entry point (Nest needs decorator metadata, which only tsc emits). */
const STAGE_MAIN = fileURLToPath(new URL('../main.js', import.meta.url));

const shape = {
  PIPELINE_ID: envVar.string('local'),
  PIPELINE_STAGES: envVar.int(4, 1),
  STAGE_CHECKPOINT_DIR: envVar.string(path.join(root, 'models/demo-target')),
  STAGE_DRAFT_CHECKPOINT_DIR: envVar.string(path.join(root, 'models/demo-draft')),
  REDIS_URL: envVar.url('redis://127.0.0.1:6379'),
  REDIS_PREFIX: envVar.string('pipedec:'),
  STAGE_HOST: envVar.string('127.0.0.1'),
  /** Stage s listens for gRPC on base + s and for health on health base + s. */
  STAGE_GRPC_BASE_PORT: envVar.port(50051),
  STAGE_HEALTH_BASE_PORT: envVar.port(8091),
  WIRE_DTYPE: envVar.enumOf(['fp32', 'fp16'] as const, 'fp32'),
  /**
   * Requests the head runs at once, sharing the stages (and each tree narrowed to a share of
   * ROW_BUDGET). 8: bench:batch with 8 clients, 1 -> 8: tokens/s 2.1x (PP), 1.8x (STPP), 1.5x
   * (PipeDec), time to first token p50 1.0-1.7 s -> 81-106 ms.
   */
  QUEUE_CONCURRENCY: envVar.int(8, 1),
  /**
   * A request starting beside others decodes as PP (the stage node's SPECULATE_MAX_IN_FLIGHT,
   * 3 there). 1 here: every stage of this pipeline shares one host's cores, so a second
   * request's speculation takes CPU from the first's. bench:batching on 4 loopback stages,
   * batched PipeDec against batched PP at 2 / 4 / 8 clients: 0.63 / 0.63 / 0.55x while every
   * request speculated; with 1, 0.81 / 0.84 / 1.01x (the first request alone speculates).
   */
  SPECULATE_MAX_IN_FLIGHT: envVar.int(1, 1),
  /**
   * Stages that compute at the same moment (the stage node's STAGE_LANES, STAGE_COUNT there):
   * this pipeline's stages share one host, so at most its cores. Default: the smaller of the
   * two.
   */
  STAGE_LANES: z.coerce.number().int().min(1).optional(),
  MODEL_NAME: z.string().min(1).optional(),
  STAGE_READY_TIMEOUT_MS: envVar.int(180_000, 1000),
  /** A stage that exits unasked is restarted after this delay, doubling up to the max. */
  STAGE_RESTART_INITIAL_MS: envVar.int(250, 0),
  STAGE_RESTART_MAX_MS: envVar.int(10_000, 0),
};

function configOrExit() {
  try {
    return parseEnv('start-pipeline', shape, process.env);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    process.stderr.write(`${error.message}\n`);
    process.exit(1);
  }
}

const c = configOrExit();
for (const dir of [c.STAGE_CHECKPOINT_DIR, c.STAGE_DRAFT_CHECKPOINT_DIR]) {
  if (!existsSync(path.join(dir, 'config.json'))) {
    process.stderr.write(`start-pipeline: no checkpoint at ${dir} (config.json missing)\n`);
    process.exit(1);
  }
}
const env: Record<string, string> = {
  WIRE_DTYPE: c.WIRE_DTYPE,
  QUEUE_CONCURRENCY: String(c.QUEUE_CONCURRENCY),
  SPECULATE_MAX_IN_FLIGHT: String(c.SPECULATE_MAX_IN_FLIGHT),
  STAGE_LANES: String(c.STAGE_LANES ?? Math.min(c.PIPELINE_STAGES, os.availableParallelism())),
};
if (c.MODEL_NAME) env.MODEL_NAME = c.MODEL_NAME;

const healthUrl = (s: number) => `http://${c.STAGE_HOST}:${c.STAGE_HEALTH_BASE_PORT + s}/health`;
const supervisor = new StageSupervisor(
  Array.from({ length: c.PIPELINE_STAGES }, (_, s) => {
    const grpc = `${c.STAGE_HOST}:${c.STAGE_GRPC_BASE_PORT + s}`;
    return {
      name: `stage ${s} of ${c.PIPELINE_ID}`,
      command: process.execPath,
      args: [STAGE_MAIN],
      env: {
        ...(process.env as Record<string, string>),
        ...env,
        PIPELINE_ID: c.PIPELINE_ID,
        STAGE_INDEX: String(s),
        STAGE_COUNT: String(c.PIPELINE_STAGES),
        CHECKPOINT_DIR: c.STAGE_CHECKPOINT_DIR,
        DRAFT_CHECKPOINT_DIR: c.STAGE_DRAFT_CHECKPOINT_DIR,
        REDIS_URL: c.REDIS_URL,
        REDIS_PREFIX: c.REDIS_PREFIX,
        GRPC_LISTEN: grpc,
        GRPC_ADVERTISE: grpc,
        HEALTH_HOST: c.STAGE_HOST,
        HEALTH_PORT: String(c.STAGE_HEALTH_BASE_PORT + s),
      },
    };
  }),
  {
    initialMs: c.STAGE_RESTART_INITIAL_MS,
    maxMs: Math.max(c.STAGE_RESTART_INITIAL_MS, c.STAGE_RESTART_MAX_MS),
    resetAfterMs: 30_000,
  },
  (line) => process.stdout.write(`start-pipeline: ${line}\n`),
);
// A stage seen to exit leaves the registry at once, not one registry TTL later.
const redis = new Redis(c.REDIS_URL, { maxRetriesPerRequest: 2 });
redis.on('error', () => undefined); // a failed removal is logged; the entry then expires
reportDeadStages(supervisor, redis, c.REDIS_PREFIX, c.PIPELINE_ID, (line) =>
  process.stdout.write(`start-pipeline: ${line}\n`),
);
supervisor.start();
let stopping = false;
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    void supervisor.stop().then(() => {
      redis.disconnect();
      process.exit(0);
    });
  });
}

/** Whether the head's health says its pipeline is whole. */
async function whole(): Promise<boolean> {
  try {
    const res = await fetch(healthUrl(0), { signal: AbortSignal.timeout(1000) });
    return res.status === 200;
  } catch {
    return false;
  }
}
const deadline = Date.now() + c.STAGE_READY_TIMEOUT_MS;
while (!stopping && !(await whole())) {
  if (Date.now() > deadline) {
    process.stderr.write(
      `start-pipeline: pipeline ${c.PIPELINE_ID} not whole after ${c.STAGE_READY_TIMEOUT_MS} ms; the stages keep running\n`,
    );
    break;
  }
  await new Promise((r) => setTimeout(r, 200));
}
if (!stopping && Date.now() <= deadline) {
  process.stdout.write(
    `start-pipeline: pipeline ${c.PIPELINE_ID} of ${c.PIPELINE_STAGES} stages is whole; ` +
      `health: ${Array.from({ length: c.PIPELINE_STAGES }, (_, s) => healthUrl(s)).join(' ')}\n`,
  );
}
