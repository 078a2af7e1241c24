// The stage node's configuration, parsed once at boot from the environment. Nothing else in the
// app reads process.env: every module gets this object.
import path from 'node:path';
import { ConfigError, envVar, parseEnv } from '@pipedec/contracts';
import { z } from 'zod';

const optionalInt = z.coerce.number().int().min(0).optional();
const hostPort = () => z.string().regex(/^[^:\s]+:\d{1,5}$/, 'host:port');

/** DRAFT_SCORE_TEMPERATURE when unset (why 0.5: at the variable). */
export const DEFAULT_DRAFT_SCORE_TEMPERATURE = 0.5;

/** Every variable a stage node reads. */
export const stageEnvShape = {
  PIPELINE_ID: z
    .string()
    .regex(/^[A-Za-z0-9_.-]{1,64}$/, 'letters, digits, _ . - (at most 64)')
    .default('local'),
  STAGE_INDEX: z.coerce.number().int().min(0),
  STAGE_COUNT: z.coerce.number().int().min(1),
  /** Both or neither; neither = an even split of the model's layers by STAGE_COUNT. */
  LAYER_START: optionalInt,
  LAYER_END: optionalInt,
  CHECKPOINT_DIR: z.string().min(1),
  /** Required on stage 0 (the head), which runs the draft next to the controller. */
  DRAFT_CHECKPOINT_DIR: z.string().min(1).optional(),
  EXECUTION_PROVIDER: envVar.string('cpu'),
  /** Where the gRPC server binds, host:port. */
  GRPC_LISTEN: hostPort().default('127.0.0.1:50051'),
  /** What the other stages dial (defaults to GRPC_LISTEN): differs when binding 0.0.0.0. */
  GRPC_ADVERTISE: hostPort().optional(),
  /**
   * How Packets, Verdicts and Decisions reach this stage: `tcp`, records on a plain socket
   * (socket/records.ts: a relayed 1-row frame costs a stage 179 µs of CPU there against 252 µs
   * in grpc-js and HTTP/2), or `grpc`, bidi streams of the Stage service. A sender uses what
   * the receiving stage advertises, so stages of either setting work together.
   */
  FRAME_TRANSPORT: envVar.enumOf(['tcp', 'grpc'] as const, 'tcp'),
  /** Where the frame socket binds (default: GRPC_LISTEN's host, a port the OS picks). */
  FRAMES_LISTEN: hostPort().optional(),
  /** What the other stages dial for it (default: GRPC_ADVERTISE's host, the bound port). */
  FRAMES_ADVERTISE: hostPort().optional(),
  HEALTH_HOST: envVar.string('127.0.0.1'),
  HEALTH_PORT: envVar.port(8081),
  REDIS_URL: envVar.url('redis://127.0.0.1:6379'),
  /** Hidden states on the wire: fp32 is exact, fp16 halves the bytes (rounded per value). */
  WIRE_DTYPE: envVar.enumOf(['fp32', 'fp16'] as const, 'fp32'),
  QUEUE_NAME: envVar.string('generation'),
  QUEUE_CONCURRENCY: envVar.int(1, 1),
  /**
   * Batching (#16): at most this many requests' packets (one each) in one compute call of a
   * stage, and this many rows in all; 1 (default) computes one request's packet per call.
   * Off by default because it measured no better here. A joint call puts each request in its
   * own entry of the graph's batch dimension (OnnxShard.computeMany; like rows and pasts
   * only, cached-shard.ts paddedGroups). bench:model --only joint, a middle stage: one call
   * for 2-8 requests costs 1.16-1.77x less CPU than a call each at past 256, but only
   * 0.97-1.11x at past 768, where copying each request's cache into the call's batch costs
   * what the shared call saves. bench:batching on 4 loopback stages, 8 clients of mixed
   * prompts (32-888 tokens): 8 per call ran 2.6-3.0 packets per call at the same stage CPU per
   * token for PP (6.73 against 6.76 ms) and more for PipeDec (13.1 against 11.4), tokens/s
   * within the run-to-run spread (three alternated pairs: PP 183-220 against 193-255).
   */
  STAGE_BATCH_REQUESTS: envVar.int(1, 1),
  STAGE_BATCH_ROWS: envVar.int(64, 1),
  /**
   * How many of the pipeline's stages compute at the same moment (default STAGE_COUNT: a stage
   * per host). A call takes at most ceil(requests active here / STAGE_LANES) of them, so the
   * requests move through the pipeline in at least that many groups and no stage waits for a
   * convoy of all of them (stage-runtime.ts). npm start, whose stages share one host, sets it
   * to the host's cores.
   */
  STAGE_LANES: z.coerce.number().int().min(1).optional(),
  /**
   * The head: rows per timestep shared by the requests in flight; a request starting while
   * others run gets an equal share as its tree width (libs/engine row-budget.ts).
   */
  ROW_BUDGET: envVar.int(16, 1),
  /**
   * The head: a request starting while more than this many requests are in flight (itself
   * included) decodes as PP, whatever method it asked for (the job's decoding.fellBackFrom
   * says so): speculation is wasted work once the stages are full (libs/engine
   * row-budget.ts). A large value (16) keeps every request speculating.
   */
  SPECULATE_MAX_IN_FLIGHT: envVar.int(3, 1),
  /**
   * PipeDec (greedy and exact acceptance): the row budget's share is taken again for every
   * tree layer, so a request narrows when others join and widens when they leave, and grows no
   * layer while more than SPECULATE_MAX_IN_FLIGHT requests are in flight (libs/engine
   * row-budget.ts layerWidthUnderLoad), its draft idle until the tree widens again; false: the
   * share when it starts holds for the whole request.
   */
  WIDTH_FOLLOWS_LOAD: envVar.bool(true),
  HEARTBEAT_MS: envVar.int(1000, 50),
  /** A registry entry expires this long after its last heartbeat. */
  REGISTRY_TTL_MS: envVar.int(3000, 100),
  /** How often the head re-checks that its pipeline is whole. */
  PIPELINE_CHECK_MS: envVar.int(250, 20),
  /** The head fails a request whose packets get no answer for this long (a lost message). */
  PACKET_TIMEOUT_MS: envVar.int(30_000, 100),
  /**
   * The head's commit-only decisions (PP's one per token) travel to the other stages inside
   * the request's next packet (true) or each as a message of its own to every stage (false,
   * the way before); prunes are broadcast either way (head/grpc-pipeline.ts says why).
   */
  CARRY_DECISIONS: envVar.bool(true),
  /**
   * Distribution-mode acceptance at temperature > 0 over the whole vocabulary: the last
   * stage's and the draft's sampled distributions computed by ONNX Runtime (true: a softmax
   * graph of their own, ~20 us a call plus 3-5 us a row) or in JavaScript (false, the way
   * before: ~130 us a row of 4,096). For an A/B; the tokens agree to f32 rounding.
   */
  RUNTIME_DISTRIBUTIONS: envVar.bool(true),
  /**
   * The head cancels a running job that is cancelled with its client (no keep_running) once
   * no API has relayed its stream for this long: the API that would have cancelled it when
   * the client dropped has crashed. The relay's heartbeat key lives 2.5 s after each beat, so
   * the job ends about this plus 2.5 s after the API died, billed the tokens it wrote.
   */
  RELAY_LOST_CANCEL_MS: envVar.int(2000, 100),
  /** SIGTERM: how long in-flight work may take before it is failed. */
  SHUTDOWN_GRACE_MS: envVar.int(10000, 0),
  /**
   * This stage's KV memory budget in bytes, shared by all requests (#16). The head starts a
   * job only when its worst case fits on every stage beside those running (the rest wait in
   * the queue), and the API refuses one that never could (400 naming max_tokens or the
   * prompt). Default: defaultKvBytes below.
   */
  MAX_KV_BYTES: optionalInt,
  /** ONNX Runtime threads per session: 1 when several stages share a host's cores. */
  ORT_THREADS: envVar.int(1, 1),
  REDIS_PREFIX: envVar.string('pipedec:'),
  /** The model name jobs must ask for (default: the checkpoint folder's name). */
  MODEL_NAME: z.string().min(1).optional(),
  /** STPP's static tree depth; its node budget is the job's width times this. */
  STPP_DEPTH: envVar.int(4, 1),
  /**
   * Temperature of the draft's scores when PipeDec and STPP choose a tree's nodes (the engine's
   * scoreTemperature). 0.5 speculated better than 1 on the demo pair: 3-7% fewer timesteps per
   * token at 14 stages on two of three prompt sets, the same on the third (README, bench).
   */
  DRAFT_SCORE_TEMPERATURE: z.coerce.number().gt(0).max(10).default(DEFAULT_DRAFT_SCORE_TEMPERATURE),
  /**
   * PipeDec's refills (the engine's refillLayers): after a miss, or a hit whose subtree is
   * shallower than the pipeline, the next packet carries up to this many tree layers, drafted
   * one after another while the stages wait, instead of one layer a timestep; 1 is the paper's
   * method. Default: the stage count, at most DEFAULT_REFILL_LAYERS_CAP (below).
   */
  PIPEDEC_REFILL_LAYERS: z.coerce.number().int().min(1).optional(),
  /**
   * The head decodes this many tokens of synthetic requests through its pipeline before it
   * takes the first job (head/warm-up.ts: a fresh process runs its packet path ~2x slower
   * until V8 has compiled it); 0 turns it off. /health says ready only after it.
   */
  WARMUP_TOKENS: envVar.int(3072, 0),
  /** ... or for at most this long. */
  WARMUP_MAX_MS: envVar.int(20_000, 0),
};

export interface StageConfig {
  pipelineId: string;
  stageIndex: number;
  stageCount: number;
  layerRange: { layerStart: number; layerEnd: number } | 'even';
  checkpointDir: string;
  draftCheckpointDir?: string;
  executionProvider: string;
  grpcListen: string;
  grpcAdvertise: string;
  /**
   * The frame socket (null: frames come on the gRPC streams). `advertise` null: the
   * advertised gRPC host with the port bound.
   */
  frames: { listen: string; advertise: string | null } | null;
  healthHost: string;
  healthPort: number;
  redisUrl: string;
  wireDtype: 'FP32' | 'FP16';
  queueName: string;
  queueConcurrency: number;
  heartbeatMs: number;
  registryTtlMs: number;
  pipelineCheckMs: number;
  shutdownGraceMs: number;
  packetTimeoutMs: number;
  carryDecisions: boolean;
  runtimeDistributions: boolean;
  relayLostCancelMs: number;
  maxKvBytes?: number; // unset: defaultKvBytes
  stppDepth: number;
  draftScoreTemperature: number;
  pipeDecRefillLayers: number;
  ortThreads: number;
  batch: { requests: number; rows: number; lanes: number };
  rowBudget: number;
  /** More requests in flight than this (the starting one included): it decodes as PP. */
  speculateMaxInFlight: number;
  widthFollowsLoad: boolean;
  redisPrefix: string;
  modelName: string;
  warmUp: { tokens: number; maxMs: number };
}

/**
 * PIPEDEC_REFILL_LAYERS when unset: min(stage count, this). The first layers of a refill
 * commit most of what it commits; each further one costs a serial draft call while the
 * stages wait. bench:cluster (bench/results/pipedec-refill), scripture, W 8, PipeDec/PP:
 *
 *   14 stages, 10 ms hops:  refill 14: 4.66-4.88x (4 runs)   8: 4.88x (1)   7: 4.90-5.36x (3)
 *   8 stages, 5 ms hops:    refill 8 (the whole pipeline): 3.73-4.25x, against 3.22x at 1
 *   4 stages, loopback:     refill 4: 1.23 timesteps per token against 1.60 at 1
 */
export const DEFAULT_REFILL_LAYERS_CAP = 7;

/** The host of a host:port. */
export const hostOf = (address: string): string => address.slice(0, address.lastIndexOf(':'));

export const isHead = (c: StageConfig): boolean => c.stageIndex === 0;

/** Full context windows the default KV budget holds (see defaultKvBytes). */
export const DEFAULT_KV_CONTEXTS = 16;

/**
 * MAX_KV_BYTES when unset: DEFAULT_KV_CONTEXTS full context windows of this stage's layers
 * (the demo model on 4 stages: 16 x 1,024 rows x 2 KiB = 32 MiB), at most an eighth of the
 * host's memory (a model with a long window: Llama 3 8B on 4 stages would want 128 GiB).
 */
export function defaultKvBytes(bytesPerRow: number, maxPositions: number, hostBytes: number) {
  return Math.min(DEFAULT_KV_CONTEXTS * maxPositions * bytesPerRow, Math.floor(hostBytes / 8));
}

/** Parses the environment; throws ConfigError listing every bad variable. */
export function parseStageConfig(env: Record<string, string | undefined>): StageConfig {
  let raw: z.infer<z.ZodObject<typeof stageEnvShape>>;
  try {
    raw = parseEnv('stage-node', stageEnvShape, env);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    throw new ConfigError('stage-node', [...error.issues, ...crossIssues(env)]);
  }
  const issues = crossIssues(env);
  if (issues.length > 0) throw new ConfigError('stage-node', issues);
  return {
    pipelineId: raw.PIPELINE_ID,
    stageIndex: raw.STAGE_INDEX,
    stageCount: raw.STAGE_COUNT,
    layerRange:
      raw.LAYER_START !== undefined && raw.LAYER_END !== undefined
        ? { layerStart: raw.LAYER_START, layerEnd: raw.LAYER_END }
        : 'even',
    checkpointDir: raw.CHECKPOINT_DIR,
    draftCheckpointDir: raw.DRAFT_CHECKPOINT_DIR,
    executionProvider: raw.EXECUTION_PROVIDER,
    grpcListen: raw.GRPC_LISTEN,
    grpcAdvertise: raw.GRPC_ADVERTISE ?? raw.GRPC_LISTEN,
    frames:
      raw.FRAME_TRANSPORT === 'grpc'
        ? null
        : {
            listen: raw.FRAMES_LISTEN ?? `${hostOf(raw.GRPC_LISTEN)}:0`,
            advertise: raw.FRAMES_ADVERTISE ?? null,
          },
    healthHost: raw.HEALTH_HOST,
    healthPort: raw.HEALTH_PORT,
    redisUrl: raw.REDIS_URL,
    wireDtype: raw.WIRE_DTYPE === 'fp16' ? 'FP16' : 'FP32',
    queueName: raw.QUEUE_NAME,
    queueConcurrency: raw.QUEUE_CONCURRENCY,
    heartbeatMs: raw.HEARTBEAT_MS,
    registryTtlMs: raw.REGISTRY_TTL_MS,
    pipelineCheckMs: raw.PIPELINE_CHECK_MS,
    shutdownGraceMs: raw.SHUTDOWN_GRACE_MS,
    packetTimeoutMs: raw.PACKET_TIMEOUT_MS,
    carryDecisions: raw.CARRY_DECISIONS,
    runtimeDistributions: raw.RUNTIME_DISTRIBUTIONS,
    relayLostCancelMs: raw.RELAY_LOST_CANCEL_MS,
    maxKvBytes: raw.MAX_KV_BYTES,
    stppDepth: raw.STPP_DEPTH,
    draftScoreTemperature: raw.DRAFT_SCORE_TEMPERATURE,
    pipeDecRefillLayers:
      raw.PIPEDEC_REFILL_LAYERS ?? Math.min(raw.STAGE_COUNT, DEFAULT_REFILL_LAYERS_CAP),
    ortThreads: raw.ORT_THREADS,
    batch: {
      requests: raw.STAGE_BATCH_REQUESTS,
      rows: raw.STAGE_BATCH_ROWS,
      lanes: raw.STAGE_LANES ?? raw.STAGE_COUNT,
    },
    rowBudget: raw.ROW_BUDGET,
    speculateMaxInFlight: raw.SPECULATE_MAX_IN_FLIGHT,
    widthFollowsLoad: raw.WIDTH_FOLLOWS_LOAD,
    redisPrefix: raw.REDIS_PREFIX,
    modelName: raw.MODEL_NAME ?? path.basename(path.resolve(raw.CHECKPOINT_DIR)),
    warmUp: { tokens: raw.WARMUP_TOKENS, maxMs: raw.WARMUP_MAX_MS },
  };
}

/** Rules between variables, checked on the raw strings so they add to the per-variable list. */
function crossIssues(env: Record<string, string | undefined>) {
  const issues: { variable: string; message: string }[] = [];
  const set = (k: string) => env[k] !== undefined && env[k] !== '';
  const index = Number(env.STAGE_INDEX);
  const count = Number(env.STAGE_COUNT);
  if (set('STAGE_INDEX') && set('STAGE_COUNT') && index >= count) {
    issues.push({
      variable: 'STAGE_INDEX',
      message: `must be < STAGE_COUNT (${count}), got ${index}`,
    });
  }
  if (set('LAYER_START') !== set('LAYER_END')) {
    issues.push({
      variable: 'LAYER_START',
      message: 'set LAYER_START and LAYER_END together, or neither',
    });
  } else if (set('LAYER_START') && Number(env.LAYER_START) >= Number(env.LAYER_END)) {
    issues.push({ variable: 'LAYER_END', message: 'must be greater than LAYER_START' });
  }
  if (set('STAGE_INDEX') && index === 0 && !set('DRAFT_CHECKPOINT_DIR')) {
    issues.push({
      variable: 'DRAFT_CHECKPOINT_DIR',
      message: 'required on stage 0 (the head runs the draft)',
    });
  }
  return issues;
}
