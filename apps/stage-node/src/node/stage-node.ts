// One stage node at run time: its StageWorker driven by the StageRuntime, its registry entry,
// its peers, and (on stage 0) the head's GrpcPipeline. Implements what the gRPC server
// delivers. Readiness, the pipeline-whole check and the failure rules live here:
// - a stage that stops heartbeating, or whose stream to the head breaks, is gone: the head
//   fails the requests in flight at once and takes no jobs until the registry shows the
//   pipeline whole again (a new process for the stage, or the same one alive a full TTL later);
// - a stage that is merely not ready (draining) stops new jobs but lets work in flight finish.
import { Logger } from '@nestjs/common';
import {
  checkPipeline,
  type PipelineState,
  type StageKv,
  type StageRegistration,
} from '@pipedec/contracts';
import { StageWorker, type Decision } from '@pipedec/engine';
import type { LayerShard } from '@pipedec/model';
import { randomUUID } from 'node:crypto';
import type { StageConfig } from '../config/stage-config.js';
import type { PeerLink, PeerLinkEvents } from '../wire/link.js';
import { StageInbox } from '../wire/stage-inbox.js';
import type { WarmUpStatus } from '../head/warm-up.js';
import { GrpcPipeline, type RemoteStages } from '../head/grpc-pipeline.js';
import { StageNodeError } from '../head/stage-node-error.js';
import { PeerDirectory } from '../registry/peer-directory.js';
import type { StageRegistry } from '../registry/stage-registry.js';
import {
  addCodecMs,
  encodeDecisions,
  encodePackets,
  encodeVerdicts,
  type PacketEnvelope,
  type VerdictEnvelope,
} from '../wire/frame.js';
import { StageRuntime } from '../stage/stage-runtime.js';

export interface PipelineStatus {
  /** Every stage registered, ready, matching and contiguous: the head takes jobs. */
  whole: boolean;
  /** Every stage present and matching (some may be draining): work in flight may go on. */
  intact: boolean;
  problems: string[];
}

interface Suspect {
  instanceId: string;
  since: number; // epoch ms
}

export class StageNode extends StageInbox {
  readonly instanceId = randomUUID();
  readonly startedAt = Date.now();
  /** This stage's frame socket as the others dial it; null: frames come on gRPC (boot.ts). */
  framesAddress: string | null = null;
  readonly worker: StageWorker;
  readonly runtime: StageRuntime;
  readonly pipeline: GrpcPipeline | null;
  private readonly log: Logger;
  private readonly directory: PeerDirectory;
  private readonly suspects = new Map<number, Suspect>();
  private readonly outbox: {
    stage: number;
    method: 'Packets' | 'Verdicts';
    write: (link: PeerLink) => void;
    giveUp: () => void;
    since: number;
  }[] = [];
  private flushing = false;
  private registry: StageRegistry | null = null;
  private timer: NodeJS.Timeout | null = null;
  private refreshing: Promise<void> = Promise.resolve();
  /**
   * stop() began: no registry read starts or applies any more. stop() awaits only the latest
   * read, and reads go on starting after it (the head hears announcements until deregister()
   * ends its subscription; wholeNow and the outbox read too): one finishing after
   * directory.close() would dial its peers again on a directory nobody closes.
   */
  private stopping = false;
  private ready = false;
  private draining = false;
  private lastStatus: PipelineStatus = { whole: false, intact: false, problems: ['starting'] };
  /** The head hears the stages' announcements (StageRegistry.watch). */
  private watcher: { listening: () => boolean } | null = null;
  /** Announcements heard so far (and subscription changes). */
  private announced = 0;
  /** `announced` when the registry read in effect began: that read saw them all. */
  private readAfter = -1;
  /** Registry reads begun, and the latest one applied (an older one finishing late is not). */
  private reads = 0;
  private applied = 0;
  /** Called when the head's pipeline becomes whole (true) or stops being whole (false). */
  onWholeChange: ((whole: boolean) => void) | null = null;
  /** The head's warm-up (head/warm-up.ts), set by boot; null elsewhere. */
  warmUp: (() => WarmUpStatus) | null = null;

  constructor(
    readonly config: StageConfig,
    readonly shard: LayerShard,
  ) {
    super();
    this.log = new Logger(`Stage ${config.pipelineId}/${config.stageIndex}`);
    this.worker = new StageWorker(shard, config.stageIndex);
    this.directory = new PeerDirectory((stage, address) => this.linkEvents(stage, address));
    this.runtime = new StageRuntime(
      this.worker,
      {
        forward: (env) => this.forward([env]),
        forwardMany: (envs) => this.forward(envs),
        verdictMany: (envs) => this.sendVerdicts(envs),
        verdict: (env) => this.sendVerdict(env),
        computed: (requestId) => this.pipeline?.stage0Computed(requestId),
      },
      config.batch,
    );
    this.pipeline =
      config.stageIndex === 0
        ? new GrpcPipeline(
            shard.info,
            config.stageCount,
            this.runtime,
            this.remoteStages(),
            config.packetTimeoutMs,
            config.carryDecisions,
          )
        : null;
  }

  get isHead(): boolean {
    return this.config.stageIndex === 0;
  }

  get isReady(): boolean {
    return this.ready && !this.draining;
  }

  get status(): PipelineStatus {
    return this.lastStatus;
  }

  registration(): StageRegistration {
    const c = this.config;
    return {
      pipelineId: c.pipelineId,
      stageIndex: c.stageIndex,
      stageCount: c.stageCount,
      layerStart: this.shard.layerStart,
      layerEnd: this.shard.layerEnd,
      numLayers: this.shard.info.numLayers,
      address: c.grpcAdvertise,
      ...(this.framesAddress ? { framesAddress: this.framesAddress } : {}),
      healthUrl: `http://${c.healthHost}:${c.healthPort}/health`,
      fingerprint: this.shard.info.fingerprint,
      ready: this.isReady,
      instanceId: this.instanceId,
      pid: process.pid,
      startedAt: this.startedAt,
      heartbeatAt: Date.now(),
      residentBytes: process.memoryUsage().rss,
      downstream: this.directory.entry(this.downstreamStage)?.instanceId ?? null,
      kv: this.kvAnnounced(),
    };
  }

  /** What this stage announces about its KV memory (contracts kv-budget.ts). */
  private kvAnnounced(): StageKv {
    const m = this.shard.memory();
    return {
      limitBytes: Number.isFinite(m.kvLimitBytes) ? m.kvLimitBytes : null,
      bytesPerRow: m.kvBytesPerRow,
      maxPositions: this.shard.info.maxPositions,
      treeDepth: this.config.stppDepth,
    };
  }

  /**
   * The KV memory of every stage of the pipeline as last read from the registry (the head's
   * own as it is now); a stage that announces none is left out (unbounded).
   */
  kvStages(): StageKv[] {
    const out = [this.kvAnnounced()];
    for (let s = 1; s < this.config.stageCount; s++) {
      const kv = this.directory.entry(s)?.kv;
      if (kv) out.push(kv);
    }
    return out;
  }

  /** The stage this one sends to: the next, or the head for the last stage. */
  private get downstreamStage(): number {
    return (this.config.stageIndex + 1) % this.config.stageCount;
  }

  /** Registers, then keeps peers and (on the head) the pipeline status current. */
  async start(registry: StageRegistry): Promise<void> {
    this.registry = registry;
    this.ready = true;
    if (this.isHead) {
      this.watcher = registry.watch(this.config.pipelineId, () => {
        this.announced++;
        this.refreshing = this.refresh().catch((error: unknown) => {
          this.log.warn(`registry read failed: ${messageOf(error)}`);
        });
      });
    }
    await registry.start();
    await this.refresh();
    this.timer = setInterval(() => {
      this.refreshing = this.refresh().catch((error: unknown) => {
        this.log.warn(`registry read failed: ${messageOf(error)}`);
      });
    }, this.config.pipelineCheckMs);
  }

  /**
   * Whether the pipeline is whole now, not as of the last poll. The stages announce every
   * change they make on purpose (ready, draining, relinked, gone), and the head reads the
   * registry as soon as it hears one: while it hears them and has read since the last one,
   * that read is current, and a job starts without another round trip. Otherwise (not
   * listening, a read pending, or not whole: a suspect's recovery shows only in a read) it
   * reads now. A stage that dies without a word is caught by its broken link or the poll.
   */
  async wholeNow(): Promise<boolean> {
    if (this.lastStatus.whole && this.watcher?.listening() && this.readAfter === this.announced)
      return true;
    await this.refresh();
    return this.lastStatus.whole;
  }

  /** SIGTERM, step 1: report not ready at once, so the head stops sending new work. */
  async beginDrain(): Promise<void> {
    this.draining = true;
    await this.registry?.beat();
    if (this.isHead) this.setStatus({ ...this.lastStatus, whole: false });
  }

  /** Requests this node still serves (the head: jobs running; other stages: requests held). */
  get busy(): number {
    return this.pipeline ? this.pipeline.inFlight : this.runtime.activeRequests;
  }

  /** SIGTERM, last step: leave the registry, fail what is left, close the links. */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.refreshing;
    this.pipeline?.fail(new StageNodeError('SHUTTING_DOWN', 'the head is shutting down'));
    await this.registry?.deregister();
    this.runtime.releaseAll();
    this.directory.close();
  }

  // StageInbox: what the gRPC server hands over.

  packet(env: PacketEnvelope): void {
    this.runtime.packet(env);
  }

  decision(d: Decision): void {
    this.runtime.decision(d);
  }

  decisionsClosed(): void {
    if (this.isHead) return;
    this.log.warn('the head closed its decision stream; freeing its requests');
    this.runtime.releaseAll();
  }

  refused(requestId: string, seq: number, error: string): void {
    const stage = this.config.stageIndex;
    const env = failure(undefined, stage, `stage ${stage} refused a frame: ${error}`, requestId);
    env.verdict.seq = seq;
    this.sendVerdict(env);
  }

  verdict(env: VerdictEnvelope): void {
    if (!this.pipeline) {
      throw new StageNodeError('JOB_INVALID', `stage ${this.config.stageIndex} is not a head`);
    }
    this.pipeline.verdict(env);
  }

  // Outputs.

  /**
   * Sends on the link to `stage`, in order. A peer not in the directory yet (this stage read
   * the registry before the peer registered) makes the message wait for a registry read; it is
   * given up only when the peer is still unknown after one TTL.
   */
  private send(
    stage: number,
    method: 'Packets' | 'Verdicts',
    write: (link: PeerLink) => void,
    giveUp: () => void,
  ): void {
    if (this.outbox.length === 0) {
      const link = this.directory.link(stage, method);
      if (link) {
        write(link);
        return;
      }
    }
    this.outbox.push({ stage, method, write, giveUp, since: Date.now() });
    void this.flushOutbox();
  }

  private async flushOutbox(): Promise<void> {
    if (this.flushing) return;
    this.flushing = true;
    try {
      while (this.outbox.length > 0) {
        const m = this.outbox[0];
        const link = this.directory.link(m.stage, m.method);
        if (link) {
          this.outbox.shift();
          m.write(link);
          continue;
        }
        if (Date.now() - m.since > this.config.registryTtlMs) {
          this.outbox.shift();
          m.giveUp();
          continue;
        }
        await sleep(Math.min(50, this.config.pipelineCheckMs));
        await this.refresh().catch(() => undefined);
      }
    } finally {
      this.flushing = false;
    }
  }

  /** Packets for the next stage; those of one call go in one frame. */
  private forward(envs: PacketEnvelope[]): void {
    const next = this.config.stageIndex + 1;
    this.send(
      next,
      'Packets',
      (link) => {
        const t = performance.now();
        const frame = encodePackets(envs, this.config.wireDtype);
        addCodecMs(frame, (performance.now() - t) / envs.length); // shared by its packets
        link.write(frame);
      },
      () => {
        for (const env of envs) {
          this.sendVerdict(failure(env, this.config.stageIndex, `stage ${next} is not registered`));
        }
      },
    );
  }

  /** The last stage's answers of one call, in one frame. */
  private sendVerdicts(envs: VerdictEnvelope[]): void {
    if (this.pipeline) {
      for (const env of envs) this.pipeline.verdict(env);
      return;
    }
    this.send(
      0,
      'Verdicts',
      (link) => link.write(encodeVerdicts(envs)),
      () => this.log.warn(`${envs.length} verdicts dropped: the head is not registered`),
    );
  }

  private sendVerdict(env: VerdictEnvelope): void {
    if (this.pipeline) {
      this.pipeline.verdict(env);
      return;
    }
    this.send(
      0,
      'Verdicts',
      (link) => link.write(encodeVerdicts([env])),
      () =>
        this.log.warn(`verdict for ${env.verdict.requestId} dropped: the head is not registered`),
    );
  }

  private remoteStages(): RemoteStages {
    return {
      broadcast: (d) => {
        const frame = encodeDecisions([d]);
        for (let s = 1; s < this.config.stageCount; s++) {
          const link = this.directory.link(s, 'Decisions');
          if (!link) throw new StageNodeError('PIPELINE_BROKEN', `stage ${s} is not registered`);
          link.write(frame);
        }
      },
    };
  }

  private linkEvents(stage: number, address: string): PeerLinkEvents {
    return {
      refused: (ack) => {
        const message = `stage ${stage} (${address}) refused ${ack.requestId}#${ack.seq}: ${ack.error}`;
        this.log.warn(message);
        // The head fails the request; any other stage reports it to the head.
        if (ack.requestId) this.sendVerdict(failure(undefined, stage, ack.error, ack.requestId));
      },
      broken: (error) => {
        if (this.draining && !this.isHead) return;
        if (stage === 0) {
          this.log.warn(`lost the head (${address}): ${error.message}; freeing its requests`);
          this.runtime.releaseAll();
          return;
        }
        if (!this.isHead) return;
        const entry = this.directory.entry(stage);
        this.suspects.set(stage, { instanceId: entry?.instanceId ?? '', since: Date.now() });
        this.log.warn(`stage ${stage} (${address}) is gone: ${error.message}`);
        this.setStatus({
          whole: false,
          intact: false,
          problems: [`stage ${stage} (${address}) is gone: ${error.message}`],
        });
      },
    };
  }

  private async refresh(): Promise<void> {
    if (!this.registry || this.stopping) return;
    const c = this.config;
    const announced = this.announced;
    const read = ++this.reads;
    const entries = await this.registry.read(c.pipelineId, c.stageCount);
    if (read < this.applied || this.stopping) return;
    this.applied = read;
    const linkedBefore = this.directory.entry(this.downstreamStage)?.instanceId;
    this.directory.update(entries);
    // A restarted peer: announce the new link at once, the head waits for it to take jobs.
    const linked = this.directory.entry(this.downstreamStage)?.instanceId;
    if (linked !== linkedBefore) await this.registry.beat();
    if (!this.isHead || read < this.applied || this.stopping) return;
    // The head counts itself as it is, not as the last heartbeat said.
    entries[0] = this.registration();
    this.setStatus(this.evaluate(entries));
    this.readAfter = announced;
  }

  private evaluate(entries: (StageRegistration | undefined)[]): PipelineStatus {
    const problems: string[] = [];
    for (const [stage, s] of this.suspects) {
      const e = entries[stage];
      const replaced = e !== undefined && e.instanceId !== s.instanceId;
      const survived = e !== undefined && e.heartbeatAt > s.since + this.config.registryTtlMs;
      if (replaced || survived) this.suspects.delete(stage);
      else problems.push(`stage ${stage} is gone (its stream broke)`);
    }
    const c = this.config;
    const state: PipelineState = checkPipeline(c.pipelineId, c.stageCount, entries);
    const allReady = entries.map((e) => (e ? { ...e, ready: true } : e));
    const structural = checkPipeline(c.pipelineId, c.stageCount, allReady);
    const intact = structural.whole && problems.length === 0;
    if (!state.whole) problems.push(...state.problems);
    return { whole: state.whole && intact && !this.draining, intact, problems };
  }

  private setStatus(status: PipelineStatus): void {
    const before = this.lastStatus;
    this.lastStatus = status;
    if (!this.pipeline) return;
    if (before.intact && !status.intact) {
      this.pipeline.fail(new StageNodeError('PIPELINE_BROKEN', status.problems.join('; ')));
    } else if (!before.intact && status.intact) {
      this.pipeline.restore();
    }
    if (before.whole !== status.whole) {
      if (status.whole) this.log.log(`pipeline ${this.config.pipelineId} is whole`);
      else
        this.log.warn(
          `pipeline ${this.config.pipelineId} is not whole: ${status.problems.join('; ')}`,
        );
      this.onWholeChange?.(status.whole);
    }
  }
}

function failure(
  env: PacketEnvelope | undefined,
  stage: number,
  message: string,
  requestId = env?.packet.requestId ?? '',
): VerdictEnvelope {
  return {
    verdict: {
      requestId,
      epoch: env?.packet.epoch ?? 0,
      seq: env?.packet.seq ?? 0,
      nodeIds: new Int32Array(0),
      tokens: new Int32Array(0),
      logits: new Float32Array(0),
    },
    trace: env?.trace ?? { computeMs: [], rows: [], codecMs: 0 },
    failure: { stage, message },
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
