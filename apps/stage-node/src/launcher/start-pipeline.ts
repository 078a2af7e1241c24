// `node apps/stage-node/dist/launcher/start-pipeline.js`: starts a local pipeline of stage
// processes (4 by default) on the demo model pair, waits until it is whole, and stops every
// stage (SIGTERM, graceful) when it receives SIGTERM or SIGINT. scripts/start-pipeline.sh runs
// it next to the API. This is the production launcher: each stage is `node dist/main.js` on
// fixed ports with its output on ours. The tests' harness with kill/restart/logs is
// @pipedec/testkit/local-cluster.
import { ConfigError, envVar, parseEnv } from '@pipedec/contracts';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';

const root = fileURLToPath(new URL('../../../../', import.meta.url));
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
  QUEUE_CONCURRENCY: envVar.int(1, 1),
  MODEL_NAME: z.string().min(1).optional(),
  STAGE_READY_TIMEOUT_MS: envVar.int(180_000, 1000),
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
const common: Record<string, string> = {
  PATH: process.env.PATH ?? '/usr/bin:/bin',
  PIPELINE_ID: c.PIPELINE_ID,
  STAGE_COUNT: String(c.PIPELINE_STAGES),
  CHECKPOINT_DIR: c.STAGE_CHECKPOINT_DIR,
  DRAFT_CHECKPOINT_DIR: c.STAGE_DRAFT_CHECKPOINT_DIR,
  REDIS_URL: c.REDIS_URL,
  REDIS_PREFIX: c.REDIS_PREFIX,
  WIRE_DTYPE: c.WIRE_DTYPE,
  QUEUE_CONCURRENCY: String(c.QUEUE_CONCURRENCY),
  HEALTH_HOST: c.STAGE_HOST,
};
if (c.MODEL_NAME) common.MODEL_NAME = c.MODEL_NAME;

const healthUrl = (s: number) => `http://${c.STAGE_HOST}:${c.STAGE_HEALTH_BASE_PORT + s}/health`;
const stages: ChildProcess[] = [];
const exited: Promise<unknown>[] = [];
for (let s = 0; s < c.PIPELINE_STAGES; s++) {
  const grpc = `${c.STAGE_HOST}:${c.STAGE_GRPC_BASE_PORT + s}`;
  const env = {
    ...common,
    STAGE_INDEX: String(s),
    GRPC_LISTEN: grpc,
    GRPC_ADVERTISE: grpc,
    HEALTH_PORT: String(c.STAGE_HEALTH_BASE_PORT + s),
  };
  const child = spawn(process.execPath, [STAGE_MAIN], {
    env,
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  stages.push(child);
  exited.push(once(child, 'exit'));
}

let stopping = false;
/** SIGTERM to every stage (the head first, so it stops taking jobs); SIGKILL after 20 s. */
async function stop(code: number): Promise<never> {
  stopping = true;
  const live = stages.filter((p) => p.exitCode === null && p.signalCode === null);
  for (const p of live) p.kill('SIGTERM');
  const timer = setTimeout(() => live.forEach((p) => p.kill('SIGKILL')), 20_000);
  await Promise.all(exited);
  clearTimeout(timer);
  process.exit(code);
}
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    if (!stopping) void stop(0);
  });
}

/** Waits until the head's health says its pipeline is whole; fails when a stage exits. */
const deadline = Date.now() + c.STAGE_READY_TIMEOUT_MS;
while (!stopping) {
  const dead = stages.findIndex((p) => p.exitCode !== null);
  if (dead >= 0) {
    process.stderr.write(`start-pipeline: stage ${dead} exited with ${stages[dead].exitCode}\n`);
    await stop(1);
  }
  const status = await fetch(healthUrl(0), { signal: AbortSignal.timeout(1000) }).then(
    (r) => r.status,
    () => null,
  );
  if (status === 200) {
    process.stdout.write(
      `start-pipeline: pipeline ${c.PIPELINE_ID} of ${c.PIPELINE_STAGES} stages is whole; ` +
        `health: ${stages.map((_, s) => healthUrl(s)).join(' ')}\n`,
    );
    break;
  }
  if (Date.now() > deadline) {
    process.stderr.write(
      `start-pipeline: pipeline ${c.PIPELINE_ID} not whole after ${c.STAGE_READY_TIMEOUT_MS} ms\n`,
    );
    await stop(1);
  }
  await new Promise((r) => setTimeout(r, 100));
}
