// Drives one StageWorker (libs/engine) from messages that arrive over the network: packets from
// the previous stage, decisions from the head. Packets run one at a time, in arrival order per
// request. A packet waits until this stage has received every decision the head had broadcast
// before injecting it (its decisionCount), so a stage applies the same decisions before the
// same compute as the in-process pipeline does, whatever the relative delays of the packet and
// decision streams.
import { type Decision, RELEASED_MEMORY, type StageWorker } from '@pipedec/engine';
import type { PacketEnvelope, PacketTrace, VerdictEnvelope } from '../wire/frame.js';

export interface RuntimeOutputs {
  /** The packet for the next stage; rows may be empty (every row was stale): a tombstone. */
  forward(env: PacketEnvelope): void;
  /** The last stage's answer, or a failure report from any stage. */
  verdict(env: VerdictEnvelope): void;
  /** The stage is done with a packet (the head's tick credit). */
  computed?(requestId: string): void;
}

export class StageRuntime {
  private readonly queue: PacketEnvelope[] = [];
  private running: Promise<void> | null = null;
  private readonly decisionsSeen = new Map<string, number>();
  private readonly released = new Set<string>();
  private idleWaiters: (() => void)[] = [];

  constructor(
    private readonly worker: StageWorker,
    private readonly outputs: RuntimeOutputs,
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
    this.queue.push(env);
    this.pump();
  }

  decision(d: Decision): void {
    if (this.released.has(d.requestId)) return;
    if (d.release) {
      this.release(d.requestId);
      return;
    }
    this.decisionsSeen.set(d.requestId, (this.decisionsSeen.get(d.requestId) ?? 0) + 1);
    this.worker.receive(d);
    this.pump();
  }

  /** Frees a request here: its queued packets go, its rows and KV cache too. */
  release(requestId: string): void {
    this.remember(requestId);
    this.decisionsSeen.delete(requestId);
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
    if (this.running === null && this.nextRunnable() < 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private pump(): void {
    if (this.running) return;
    const i = this.nextRunnable();
    if (i < 0) {
      this.notifyIdle();
      return;
    }
    const [env] = this.queue.splice(i, 1);
    this.running = this.run(env).finally(() => {
      this.running = null;
      this.outputs.computed?.(env.packet.requestId);
      this.pump();
    });
  }

  /** The first queued packet whose decisions have arrived and that no earlier packet of the same request precedes. */
  private nextRunnable(): number {
    const blocked = new Set<string>();
    for (let i = 0; i < this.queue.length; i++) {
      const { packet, decisionCount } = this.queue[i];
      if (blocked.has(packet.requestId)) continue;
      if ((this.decisionsSeen.get(packet.requestId) ?? 0) >= decisionCount) return i;
      blocked.add(packet.requestId);
    }
    return -1;
  }

  private async run(env: PacketEnvelope): Promise<void> {
    const { packet } = env;
    let result;
    try {
      result = await this.worker.process(packet);
    } catch (error) {
      this.outputs.verdict({
        verdict: {
          ...packet,
          nodeIds: new Int32Array(0),
          tokens: new Int32Array(0),
          logits: new Float32Array(0),
        },
        trace: env.trace,
        failure: {
          stage: this.worker.index,
          message: error instanceof Error ? error.message : String(error),
        },
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
      this.outputs.verdict({ verdict, trace });
      return;
    }
    const next = out && !('logits' in out) ? out : emptyRows(packet);
    this.outputs.forward({ packet: next, decisionCount: env.decisionCount, trace });
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
