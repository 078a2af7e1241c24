// `node apps/stage-node/dist/launcher/start-pipeline.js`: starts a local pipeline of stage
// processes (4 by default) on the demo model pair, waits until it is whole, and stops every
// stage (SIGTERM, graceful) when it receives SIGTERM or SIGINT. scripts/start-pipeline.sh runs
// it next to the API.
import { ConfigError, envVar, parseEnv } from '@pipedec/contracts';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { LocalCluster } from './local-cluster.js';

const root = fileURLToPath(new URL('../../../../', import.meta.url));

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
const env: Record<string, string> = {
  WIRE_DTYPE: c.WIRE_DTYPE,
  QUEUE_CONCURRENCY: String(c.QUEUE_CONCURRENCY),
};
if (c.MODEL_NAME) env.MODEL_NAME = c.MODEL_NAME;

const cluster = await LocalCluster.start({
  pipelineId: c.PIPELINE_ID,
  stages: c.PIPELINE_STAGES,
  checkpointDir: c.STAGE_CHECKPOINT_DIR,
  draftCheckpointDir: c.STAGE_DRAFT_CHECKPOINT_DIR,
  redisUrl: c.REDIS_URL,
  redisPrefix: c.REDIS_PREFIX,
  env,
  placement: () => ({ host: c.STAGE_HOST }),
  ports: (s) => ({ grpc: c.STAGE_GRPC_BASE_PORT + s, health: c.STAGE_HEALTH_BASE_PORT + s }),
  stdio: 'inherit',
  readyTimeoutMs: c.STAGE_READY_TIMEOUT_MS,
});
process.stdout.write(
  `start-pipeline: pipeline ${c.PIPELINE_ID} of ${c.PIPELINE_STAGES} stages is whole; ` +
    `health: ${Array.from({ length: c.PIPELINE_STAGES }, (_, s) => cluster.healthUrl(s)).join(' ')}\n`,
);
let stopping = false;
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    void cluster.stop().then(() => process.exit(0));
  });
}
