// libs/engine's Pipeline over the stage nodes: stage 0 runs here, in the head's process, and
// the other stages are remote. A session sends packets into the local stage 0, whose output
// goes to stage 1 over gRPC; verdicts come back from the last stage; decisions go to the local
// stage 0 at once. A decision that only commits (PP's one per token) travels to the remote
// stages inside the request's next packet (wire extension 3), which every stage passes on, so
// it costs no message, and no sleeping stage a wake-up, of its own. A decision that prunes is
// broadcast over gRPC to every remote stage at once (after any still waiting for a packet, so
// the order holds): a stage that holds queued packets of the request then drops their doomed
// rows instead of computing them (measured: carrying PipeDec's prunes too cost it ~10% more
// stage CPU per token on lo4). With `carryDecisions` off every decision is broadcast, as
// before; releases always are. The tick rule is the engine's
// TickLoop, the in-process pipeline's own: stage 0 may take a packet when it holds none of
// this request; here with a stall timer (a lost message fails the request).
//
// Every packet reaches the last stage, even when all its rows were pruned on the way (as a
// packet with no rows), so the head counts the packets in flight exactly and knows when the
// pipeline is empty.
import {
  TickLoop,
  type Decision,
  type LayerPacket,
  type Pipeline,
  type PipelineEvent,
  type PipelineSession,
  type StageUsage,
} from '@pipedec/engine';
import type { ModelInfo } from '@pipedec/model';
import type { StageRuntime } from '../stage/stage-runtime.js';
import { emptyTrace, type PacketEnvelope, type VerdictEnvelope } from '../wire/frame.js';
import { StageNodeError } from './stage-node-error.js';

/** How the head reaches stages 1..S-1 (stage 0's output travels on without the session). */
export interface RemoteStages {
  broadcast(decision: Decision): void;
}

/** Where a request's time went, beyond what the engine's RequestStats records. */
export interface TransportStats {
  packets: number;
  /** Sum over packets of send-to-verdict wall time at the head. */
  roundTripMs: number;
  /** Sum over packets of every stage's compute time for it. */
  computeMs: number;
  /** Sum over packets of hidden-state encode + decode time. */
  codecMs: number;
  /** Wall time with at least one packet of the request in the pipeline (send to verdict). */
  pipelineMs: number;
  /** Hops over the network (stage to stage, and the last stage back to the head). */
  hops: number;
  /** Time spent serialising and writing decisions to every stage. */
  broadcastMs: number;
  decisions: number;
}

export class GrpcPipeline implements Pipeline {
  private readonly sessions = new Map<string, GrpcSession>();
  private readonly finished = new Map<string, TransportStats>();
  private broken: StageNodeError | null = null;

  constructor(
    readonly info: ModelInfo,
    readonly stageCount: number,
    private readonly stage0: StageRuntime,
    private readonly remote: RemoteStages,
    /** A request with packets in flight and no answer for this long fails (a lost message). */
    readonly stallMs = 30_000,
    /** Decisions ride in the next packet (true) or are broadcast on their own (false). */
    readonly carryDecisions = true,
  ) {}

  get inFlight(): number {
    return this.sessions.size;
  }

  open(requestId: string): PipelineSession {
    if (this.broken) throw this.broken;
    if (this.sessions.has(requestId)) {
      throw new StageNodeError('JOB_INVALID', `request ${requestId} is already running here`);
    }
    const s = new GrpcSession(requestId, this, this.stage0, this.remote);
    this.sessions.set(requestId, s);
    return s;
  }

  stage0Computed(requestId: string): void {
    this.sessions.get(requestId)?.onStage0Done();
  }

  verdict(env: VerdictEnvelope): void {
    this.sessions.get(env.verdict.requestId)?.onVerdict(env);
  }

  /** Fails every request in flight; new ones are refused until `restore`. */
  fail(error: StageNodeError): void {
    this.broken = error;
    for (const s of this.sessions.values()) s.fail(error);
  }

  restore(): void {
    this.broken = null;
  }

  /** The transport statistics of a closed request (read once). */
  takeStats(requestId: string): TransportStats | undefined {
    const s = this.finished.get(requestId);
    this.finished.delete(requestId);
    return s;
  }

  /** @internal */
  closed(requestId: string, stats: TransportStats): void {
    this.sessions.delete(requestId);
    this.finished.set(requestId, stats);
    if (this.finished.size > 1024) this.finished.delete(this.finished.keys().next().value!);
  }
}

class GrpcSession implements PipelineSession {
  private readonly usages: StageUsage[];
  private readonly sentAt = new Map<number, number>(); // packet seq -> performance.now()
  private readonly stats: TransportStats = {
    packets: 0,
    roundTripMs: 0,
    computeMs: 0,
    codecMs: 0,
    pipelineMs: 0,
    hops: 0,
    broadcastMs: 0,
    decisions: 0,
  };
  private readonly loop: TickLoop;
  private pending = 0; // packets sent whose verdict has not come back
  private pendingSince = 0; // performance.now() when pending last rose from 0
  private atStage0 = 0; // packets queued or computing on stage 0
  private decisionCount = 0;
  /** Commit-only decisions since the last packet: the next one carries them (carryDecisions). */
  private uncarried: Decision[] = [];
  private closed = false;

  constructor(
    readonly requestId: string,
    private readonly pipeline: GrpcPipeline,
    private readonly stage0: StageRuntime,
    private readonly remote: RemoteStages,
  ) {
    this.usages = Array.from({ length: pipeline.stageCount }, () => ({
      busyMs: 0,
      positions: 0,
      computes: 0,
      simulatedMs: 0,
    }));
    this.loop = new TickLoop(
      pipeline.stageCount,
      { stage0Idle: () => this.atStage0 === 0, inFlight: () => this.pending },
      {
        ms: pipeline.stallMs,
        onStall: () =>
          this.fail(
            new StageNodeError(
              'PIPELINE_BROKEN',
              `request ${this.requestId}: no answer from the pipeline for ${this.pipeline.stallMs} ms ` +
                `with ${this.pending} packets in flight`,
            ),
          ),
      },
    );
  }

  get timestep(): number {
    return this.loop.timestep;
  }

  get simulatedMs(): number {
    return 0;
  }

  get inFlight(): number {
    return this.pending;
  }

  usage(): StageUsage[] {
    return this.usages.map((u) => ({ ...u }));
  }

  send(packet: LayerPacket): void {
    if (this.loop.failed) throw this.loop.failed;
    if (this.pending++ === 0) this.pendingSince = performance.now();
    this.atStage0++;
    this.sentAt.set(packet.seq, performance.now());
    const env: PacketEnvelope = { packet, decisionCount: this.decisionCount, trace: emptyTrace() };
    if (this.uncarried.length > 0) {
      env.decisions = this.uncarried;
      this.uncarried = [];
    }
    this.stage0.packet(env);
  }

  broadcast(decision: Decision): void {
    if (this.loop.failed) throw this.loop.failed;
    const t = performance.now();
    this.decisionCount++;
    this.stage0.decision(decision);
    if (this.pipeline.carryDecisions && decision.keep === 'all') {
      this.uncarried.push(decision);
    } else {
      // A prune goes out at once: a stage that gets it while earlier packets of the request
      // still queue there drops their doomed rows instead of computing them. The decisions
      // waiting for a packet go first, so every stage applies them in order.
      for (const d of this.uncarried) this.remote.broadcast(d);
      this.uncarried = [];
      this.remote.broadcast(decision);
    }
    this.stats.broadcastMs += performance.now() - t;
    this.stats.decisions++;
  }

  next(): Promise<PipelineEvent> {
    return this.loop.next();
  }

  onStage0Done(): void {
    this.atStage0--;
    this.loop.giveCredit();
    this.loop.poke();
  }

  onVerdict(env: VerdictEnvelope): void {
    if (this.closed) return;
    if (env.failure) {
      this.fail(
        new StageNodeError(
          'STAGE_FAILED',
          `stage ${env.failure.stage} failed request ${this.requestId}: ${env.failure.message}`,
        ),
      );
      return;
    }
    if (--this.pending === 0) this.stats.pipelineMs += performance.now() - this.pendingSince;
    const sent = this.sentAt.get(env.verdict.seq);
    this.sentAt.delete(env.verdict.seq);
    const { computeMs, rows } = env.trace;
    for (let s = 0; s < computeMs.length && s < this.usages.length; s++) {
      if (rows[s] === 0) continue;
      this.usages[s].busyMs += computeMs[s];
      this.usages[s].positions += rows[s];
      this.usages[s].computes++;
    }
    if (sent !== undefined) {
      this.stats.packets++;
      this.stats.roundTripMs += performance.now() - sent;
      this.stats.computeMs += computeMs.reduce((a, b) => a + b, 0);
      this.stats.codecMs += env.trace.codecMs;
      this.stats.hops += this.pipeline.stageCount === 1 ? 0 : this.pipeline.stageCount;
    }
    if (env.verdict.nodeIds.length > 0) this.loop.push({ kind: 'verdict', verdict: env.verdict });
    if (this.atStage0 === 0) this.loop.giveCredit();
    this.loop.poke();
  }

  fail(error: Error): void {
    if (this.loop.failed || this.closed) return;
    this.loop.fail(error);
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    if (this.pending > 0) this.stats.pipelineMs += performance.now() - this.pendingSince;
    const release: Decision = {
      requestId: this.requestId,
      epoch: 0,
      seq: this.decisionCount,
      commit: [],
      keep: 'all',
      upTo: -1,
      release: true,
    };
    this.stage0.release(this.requestId);
    try {
      this.remote.broadcast(release);
    } catch {
      // A broken link: that stage frees the request when it notices the head is gone.
    }
    this.pipeline.closed(this.requestId, { ...this.stats });
    return Promise.resolve();
  }
}
