// Builds a stage node from its configuration and runs it until SIGTERM: loads the layer shard
// (and on the head the draft and tokenizer), starts the gRPC server and the health endpoint,
// registers in Redis, and on the head consumes the generation queue while the pipeline is
// whole. Shutdown order: not ready -> no new work -> in-flight work finishes (or fails after the
// grace period) -> deregister -> close.
import os from 'node:os';
import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { MicroserviceOptions } from '@nestjs/microservices';
import {
  Checkpoint,
  kvBytesPerRow,
  loadTokenizer,
  openShard,
  splitLayers,
  type LayerShard,
  type LoadedTokenizer,
} from '@pipedec/model';
import { Redis } from 'ioredis';
import { AppModule } from './app.module.js';
import { defaultKvBytes, hostOf, type StageConfig } from './config/stage-config.js';
import { stageServerOptions } from './grpc/grpc-options.js';
import { GenerationConsumer } from './head/generation-consumer.js';
import { BatchMeter } from './registry/batch-meter.js';
import { ComputeMeter, meteredShard } from './registry/compute-meter.js';
import { StageRegistry } from './registry/stage-registry.js';
import { StageNode } from './node/stage-node.js';
import { FrameSocketServer } from './socket/frame-socket-server.js';
import { FrameReceiver } from './wire/frame-receiver.js';

export interface RunningStage {
  node: StageNode;
  shutdown(reason: string): Promise<void>;
}

/** The layers this stage holds and its KV byte budget (MAX_KV_BYTES, or its default). */
async function shardPlan(
  config: StageConfig,
): Promise<{ range: { layerStart: number; layerEnd: number }; maxKvBytes: number }> {
  const ck = await Checkpoint.open(config.checkpointDir);
  try {
    const range =
      config.layerRange !== 'even'
        ? config.layerRange
        : splitLayers(ck.info.numLayers, config.stageCount)[config.stageIndex];
    const perRow = kvBytesPerRow({
      layers: range.layerEnd - range.layerStart,
      kvHeads: ck.config.numKvHeads,
      headDim: ck.config.headDim,
    });
    const maxKvBytes =
      config.maxKvBytes ?? defaultKvBytes(perRow, ck.config.maxPositions, os.totalmem());
    return { range, maxKvBytes };
  } finally {
    await ck.close();
  }
}

export async function bootStage(config: StageConfig): Promise<RunningStage> {
  const log = new Logger(`Boot ${config.pipelineId}/${config.stageIndex}`);
  const { range, maxKvBytes } = await shardPlan(config);
  // Every forward call of this process's models counts towards the utilisation it reports.
  const meter = new ComputeMeter();
  const shard: LayerShard = meteredShard(
    await openShard({
      checkpointDir: config.checkpointDir,
      ...range,
      executionProvider: config.executionProvider,
      maxKvBytes,
      intraOpThreads: config.ortThreads,
    }),
    meter,
    config.runtimeDistributions,
  );
  let draft: LayerShard | null = null;
  let tokenizer: LoadedTokenizer | null = null;
  if (config.stageIndex === 0) {
    draft = meteredShard(
      await openShard({
        checkpointDir: config.draftCheckpointDir!,
        executionProvider: config.executionProvider,
        intraOpThreads: config.ortThreads,
        proposals: true, // top-k and log-sum-exp in the runtime, not in JavaScript
      }),
      meter,
      config.runtimeDistributions,
    );
    tokenizer = await loadTokenizer(config.checkpointDir).catch((e: unknown) => {
      log.warn(`no tokenizer (${e instanceof Error ? e.message : String(e)}): token prompts only`);
      return null;
    });
  }

  const redis = new Redis(config.redisUrl, { lazyConnect: false });
  const node = new StageNode(config, shard);
  let consumer: GenerationConsumer | null = null;
  // Every call of this stage's runtime, and on the head the tokens its consumer streams.
  const batches = new BatchMeter(
    () => {
      const b = node.runtime.batchStats;
      const tokens = node.pipeline ? (consumer?.tokensStreamed ?? 0) : null;
      return { calls: b.calls, requests: b.packets, rows: b.rows, tokens };
    },
    () => node.pipeline?.inFlight ?? null,
  );
  const registry = new StageRegistry(
    redis,
    config.redisPrefix,
    () => ({ ...node.registration(), utilisation: meter.sample(), batch: batches.sample() }),
    config.registryTtlMs,
    config.heartbeatMs,
  );

  const app = await NestFactory.create(AppModule.forNode(node), {
    logger: ['error', 'warn', 'log'],
  });
  app.connectMicroservice<MicroserviceOptions>(stageServerOptions(config.grpcListen));
  const frames = config.frames && {
    ...config.frames,
    server: new FrameSocketServer(config.frames.listen, new FrameReceiver(node)),
  };
  if (frames) app.connectMicroservice<MicroserviceOptions>({ strategy: frames.server });
  await app.startAllMicroservices();
  if (frames) {
    node.framesAddress =
      frames.advertise ?? `${hostOf(config.grpcAdvertise)}:${frames.server.port}`;
  }
  await app.listen(config.healthPort, config.healthHost);

  if (node.pipeline && draft) {
    const c = new GenerationConsumer(
      config,
      node.pipeline,
      draft,
      tokenizer,
      redis,
      () => node.wholeNow(),
      () => node.kvStages(),
    );
    consumer = c;
    node.onWholeChange = (whole) => c.setAccepting(whole);
    node.warmUp = () => c.warmUp.status;
  }
  await node.start(registry);
  log.log(
    `stage ${config.stageIndex}/${config.stageCount} layers [${range.layerStart}, ${range.layerEnd}) ` +
      `grpc ${config.grpcListen} frames ${node.framesAddress ?? 'on grpc'} health ${config.healthHost}:${config.healthPort}`,
  );

  let stopping: Promise<void> | null = null;
  const shutdown = (reason: string): Promise<void> =>
    (stopping ??= (async () => {
      log.log(`shutting down (${reason})`);
      await node.beginDrain();
      await consumer?.pause();
      const deadline = Date.now() + config.shutdownGraceMs;
      while (node.busy > 0 && Date.now() < deadline) await sleep(50);
      if (node.busy > 0)
        log.warn(`${node.busy} requests still in flight after the grace period: failing them`);
      await node.stop();
      await consumer?.close();
      await app.close();
      await shard.close();
      await draft?.close();
      await redis.quit().catch(() => undefined);
      log.log('stopped');
    })());
  return { node, shutdown };
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
