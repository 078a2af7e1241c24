// Drives one StageWorker (libs/engine) from messages that arrive over the network: packets from
// the previous stage, decisions from the head. Packets run one at a time, in arrival order per
// request. A packet waits until this stage has received every decision the head had broadcast
// before injecting it (its decisionCount), so a stage applies the same decisions before the
// same compute as the in-process pipeline does, whatever the relative delays of the packet and
// decision streams.
//
// Batching (issue #16): when the stage becomes free it takes every runnable packet at the
// front of each request's queue, up to `batch.requests` requests and `batch.rows` rows, and
// computes them in one call (StageWorker.processMany): requests join at the next call after
// their packet arrives and leave when they end, and a request that fails leaves the others'
// results alone. With one request in flight this is exactly one packet per call.
//
// How many requests one call takes: at most ceil(active / lanes), `lanes` being how many of
// the pipeline's stages can compute at the same moment (a stage per host: all of them; npm
// start's stages on one host: its cores). Requests whose packets share a call come out of it
// together and reach the next stage together, so a call that takes every request marches them
// all through the pipeline as one convoy, and every stage but the convoy's waits: GPipe's rule
// (at least as many micro-batches as stages that can run at once) keeps the lanes busy
// while the shared calls still save their CPU. bench:batching, 4 loopback stages on 2 cores,
// 8 clients, PP, up to 8 requests per call, 3 alternated runs each: every runnable request per
// call 267 tokens/s (median; 230-276), 2 lanes 306 (275-312)
// (bench/results/batching-lanes). Against one request per call it did not measure better
// here (the pairs crossed), which is why STAGE_BATCH_REQUESTS stays 1 by default.
import {
  type Decision,
  RELEASED_MEMORY,
  type StageResult,
  type StageWorker,
} from '@pipedec/engine';
import type { PacketEnvelope, PacketTrace, VerdictEnvelope } from '../wire/frame.js';

export interface RuntimeOutputs {
  /** The packet for the next stage; rows may be empty (every row was stale): a tombstone. */
  forward(env: PacketEnvelope): void;
  /** The last stage's answer, or a failure report from any stage. */
  verdict(env: VerdictEnvelope): void;
  /** The stage is done with a packet (the head's tick credit). */
  computed?(requestId: string): void;
  /** Several packets of one call for the next stage, in one frame where the transport can. */
  forwardMany?(envs: PacketEnvelope[]): void;
  /** Several answers of one call (last stage). */
  verdictMany?(envs: VerdictEnvelope[]): void;
}

/** How much one call may take: requests (one packet each) and rows in all. */
export interface BatchLimits {
  requests: number;
  rows: number;
  /**
   * Stages of the pipeline that can compute at once: a call takes at most ceil(requests
   * active here / lanes) requests (header). 1: every runnable request, up to `requests`.
   */
  lanes: number;
}

export const DEFAULT_BATCH_LIMITS: BatchLimits = { requests: 4, rows: 64, lanes: 1 };

/** Requests one call may take with `active` requests at this stage (header). */
export function callShare(limits: BatchLimits, active: number): number {
  return Math.max(1, Math.min(limits.requests, Math.ceil(active / Math.max(1, limits.lanes))));
}

export class StageRuntime {
  private readonly queue: PacketEnvelope[] = [];
  private running: Promise<void> | null = null;
  private readonly decisionsSeen = new Map<string, number>();
  /** Per request, decisions that arrived before an earlier one (by seq), waiting their turn. */
  private readonly early = new Map<string, Map<number, Decision>>();
  private readonly released = new Set<string>();
  private idleWaiters: (() => void)[] = [];
  /** A pump is queued as a microtask: packets delivered together (one frame) run together. */
  private pumpQueued = false;
  /**
   * Compute calls, the packets (one request each) and rows they took, and the most requests
   * in one call: plain counters, read by /health and, as differences, by the heartbeat.
   */
  readonly batchStats = { calls: 0, packets: 0, rows: 0, maxRequests: 0 };

  constructor(
    private readonly worker: StageWorker,
    private readonly outputs: RuntimeOutputs,
    private readonly batch: BatchLimits = DEFAULT_BATCH_LIMITS,
  ) {}

  get index(): number {
    return this.worker.index;
  }

  /** Requests this stage holds state for (decisions seen and not released). */
  get activeRequests(): number {
    return this.decisionsSeen.size;
  }

  packet(env: PacketEnvelope): void {
    if (this.released.has(env.packet.requestId)) return;
    if (!this.decisionsSeen.has(env.packet.requestId)) {
      this.decisionsSeen.set(env.packet.requestId, 0);
    }
    // Decisions the packet carries (wire extension 3) apply now, ahead of it, as if they had
    // arrived on their own (those seen already are ignored: the head's own stage 0 got each
    // as it was made).
    if (env.decisions) for (const d of env.decisions) this.decision(d);
    this.queue.push(env);
    this.schedulePump();
  }

  /**
   * Applies a request's decisions in seq order. They reach a stage on two paths, broadcast on
   * their own and carried in packets (wire extension 3), so one may overtake another: a
   * decision ahead of its turn waits here for the ones before it; one seen already is ignored.
   */
  decision(d: Decision): void {
    if (this.released.has(d.requestId)) return;
    if (d.release) {
      this.release(d.requestId);
      return;
    }
    const seen = this.decisionsSeen.get(d.requestId) ?? 0;
    if (d.seq < seen) return;
    if (d.seq > seen) {
      let early = this.early.get(d.requestId);
      if (!early) this.early.set(d.requestId, (early = new Map<number, Decision>()));
      early.set(d.seq, d);
      return;
    }
    this.worker.receive(d);
    let next = seen + 1;
    const early = this.early.get(d.requestId);
    for (let e = early?.get(next); e; e = early!.get(next)) {
      early!.delete(next);
      this.worker.receive(e);
      next++;
    }
    if (early?.size === 0) this.early.delete(d.requestId);
    this.decisionsSeen.set(d.requestId, next);
    this.schedulePump();
  }

  /** Frees a request here: its queued packets go, its rows and KV cache too. */
  release(requestId: string): void {
    this.remember(requestId);
    this.decisionsSeen.delete(requestId);
    this.early.delete(requestId);
    for (let i = this.queue.length - 1; i >= 0; i--) {
      if (this.queue[i].packet.requestId === requestId) this.queue.splice(i, 1);
    }
    this.worker.release(requestId);
    this.notifyIdle();
  }

  /** Frees every request (the head went away, or shutdown). */
  releaseAll(): void {
    for (const id of [...this.decisionsSeen.keys()]) this.release(id);
  }

  /** Resolves once nothing computes and no queued packet can run (it waits for decisions). */
  whenSettled(): Promise<void> {
    if (this.running === null && !this.pumpQueued && this.runnable().length === 0) {
      return Promise.resolve();
    }
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /**
   * Pumps once the current task's messages are all in: the packets of one frame, or several
   * sent by the head in one go, then share a call instead of the first running alone.
   */
  private schedulePump(): void {
    if (this.pumpQueued) return;
    this.pumpQueued = true;
    queueMicrotask(() => {
      this.pumpQueued = false;
      this.pump();
    });
  }

  private pump(): void {
    if (this.running) return;
    const picked = this.runnable();
    if (picked.length === 0) {
      this.notifyIdle();
      return;
    }
    const envs = picked.map((i) => this.queue[i]);
    this.batchStats.calls++;
    this.batchStats.packets += envs.length;
    for (const env of envs) this.batchStats.rows += env.packet.nodeIds.length;
    this.batchStats.maxRequests = Math.max(this.batchStats.maxRequests, envs.length);
    for (let k = picked.length - 1; k >= 0; k--) this.queue.splice(picked[k], 1);
    this.running = this.run(envs).finally(() => {
      this.running = null;
      for (const env of envs) this.outputs.computed?.(env.packet.requestId);
      this.pump();
    });
  }

  /**
   * Queue indexes (ascending) of the packets the next call computes: per request the first
   * queued packet, if its decisions have arrived, in arrival order, within the batch limits.
   */
  private runnable(): number[] {
    const picked: number[] = [];
    const passed = new Set<string>(); // requests whose first packet is taken or waiting
    let rows = 0;
    const share = callShare(this.batch, this.decisionsSeen.size);
    for (let i = 0; i < this.queue.length && picked.length < share; i++) {
      const { packet, decisionCount } = this.queue[i];
      if (passed.has(packet.requestId)) continue;
      passed.add(packet.requestId);
      if ((this.decisionsSeen.get(packet.requestId) ?? 0) < decisionCount) continue;
      const n = packet.nodeIds.length;
      if (picked.length > 0 && rows + n > this.batch.rows) continue;
      picked.push(i);
      rows += n;
    }
    return picked;
  }

  private async run(envs: PacketEnvelope[]): Promise<void> {
    let results: (StageResult | Error)[];
    try {
      results = await this.worker.processMany(envs.map((e) => e.packet));
    } catch (error) {
      results = envs.map(() => (error instanceof Error ? error : new Error(String(error))));
    }
    const forwards: PacketEnvelope[] = [];
    const verdicts: VerdictEnvelope[] = [];
    envs.forEach((env, k) => this.deliver(env, results[k], forwards, verdicts));
    const { outputs } = this;
    if (forwards.length > 1 && outputs.forwardMany) outputs.forwardMany(forwards);
    else for (const f of forwards) outputs.forward(f);
    if (verdicts.length > 1 && outputs.verdictMany) outputs.verdictMany(verdicts);
    else for (const v of verdicts) outputs.verdict(v);
  }

  /** What a packet's result sends on: a packet for the next stage or a verdict. */
  private deliver(
    env: PacketEnvelope,
    result: StageResult | Error,
    forwards: PacketEnvelope[],
    verdicts: VerdictEnvelope[],
  ): void {
    const { packet } = env;
    if (result instanceof Error) {
      verdicts.push({
        verdict: {
          ...packet,
          nodeIds: new Int32Array(0),
          tokens: new Int32Array(0),
          logits: new Float32Array(0),
        },
        trace: env.trace,
        failure: { stage: this.worker.index, message: result.message },
      });
      return;
    }
    if (this.released.has(packet.requestId)) return;
    const trace: PacketTrace = {
      computeMs: [...env.trace.computeMs, result.computeMs],
      rows: [...env.trace.rows, result.positions],
      codecMs: env.trace.codecMs,
    };
    const out = result.output;
    if (this.worker.isLast) {
      const verdict =
        out && 'tokens' in out && 'logits' in out
          ? out
          : { ...emptyRows(packet), tokens: new Int32Array(0), logits: new Float32Array(0) };
      verdicts.push({ verdict, trace });
      return;
    }
    const next = out && !('logits' in out) ? out : emptyRows(packet);
    const forward: PacketEnvelope = { packet: next, decisionCount: env.decisionCount, trace };
    if (env.decisions) forward.decisions = env.decisions; // every later stage needs them too
    forwards.push(forward);
  }

  private remember(requestId: string): void {
    this.released.add(requestId);
    if (this.released.size > RELEASED_MEMORY) {
      this.released.delete(this.released.values().next().value!);
    }
  }

  private notifyIdle(): void {
    if (this.running !== null) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }
}

/** The packet with no rows: tells the stages after it (and the head) that it was dropped. */
function emptyRows(p: PacketEnvelope['packet']): PacketEnvelope['packet'] {
  return {
    requestId: p.requestId,
    epoch: p.epoch,
    seq: p.seq,
    nodeIds: new Int32Array(0),
    parentIds: new Int32Array(0),
    positions: new Int32Array(0),
    sampling: p.sampling,
  };
}
