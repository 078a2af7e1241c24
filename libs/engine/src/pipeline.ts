// The transport the controllers talk to. A controller opens a session per request, sends
// layer packets into stage 0 (at most one per tick), broadcasts decisions, and consumes
// events: verdicts from the last stage, and ticks (stage 0 can take the next packet).
// Asynchronous transports offer a tick only while fewer than S + 1 packets are in flight
// (IN_FLIGHT_WINDOW): the lockstep pipeline holds at most S, one per stage, and a stage 0
// faster than the stages after it must not run ahead of them, or the tree grows far deeper
// than the pipeline and every miss discards that work.
// Implementations: InProcessPipeline (below: real async stages in this process),
// SimulatedPipeline (simulator.ts: lockstep timesteps, time from a cost model), and the
// gRPC pipeline of the stage nodes. The asynchronous ones share one event loop, TickLoop.

import type { ModelInfo } from '@pipedec/model';
import { EngineError } from './errors.js';
import type { Decision, LayerPacket, Verdict } from './messages.js';
import type { StageResult, StageWorker } from './stage.js';

export type PipelineEvent =
  { kind: 'verdict'; verdict: Verdict } | { kind: 'tick'; timestep: number };

export interface StageUsage {
  busyMs: number; // wall time computing this request
  positions: number; // rows computed
  computes: number; // packets computed
  simulatedMs: number; // busy time under the cost model (0 outside the simulator)
}

export interface PipelineSession {
  readonly requestId: string;
  /** Hands a packet to stage 0; call at most once per tick. */
  send(packet: LayerPacket): void;
  /** Delivers a decision to every stage, in order. */
  broadcast(decision: Decision): void;
  /** The next verdict or tick. */
  next(): Promise<PipelineEvent>;
  /** Packets sent whose answer (a verdict, or their drop on the way) has not come back. */
  readonly inFlight: number;
  /** Timesteps elapsed so far (ticks issued). */
  readonly timestep: number;
  /** Simulated wall-clock so far, ms (0 outside the simulator). */
  readonly simulatedMs: number;
  usage(): StageUsage[];
  /** Frees the request on every stage; waits for computes in flight. Idempotent. */
  close(): Promise<void>;
}

export interface Pipeline {
  readonly info: ModelInfo;
  readonly stageCount: number;
  open(requestId: string): PipelineSession;
}

/** Most packets an asynchronous session keeps in flight for an S-stage pipeline. */
export function inFlightWindow(stageCount: number): number {
  return stageCount + 1;
}

export function emptyUsage(): StageUsage {
  return { busyMs: 0, positions: 0, computes: 0, simulatedMs: 0 };
}

export function addUsage(u: StageUsage, r: StageResult): void {
  if (r.positions === 0) return;
  u.busyMs += r.computeMs;
  u.positions += r.positions;
  u.computes++;
}

/** Stages in this process, each running as soon as a packet reaches it (real async). */
export class InProcessPipeline implements Pipeline {
  constructor(readonly workers: StageWorker[]) {
    if (workers.length === 0) throw new EngineError('BAD_REQUEST', 'a pipeline needs a stage');
  }

  get info(): ModelInfo {
    return this.workers[0].shard.info;
  }

  get stageCount(): number {
    return this.workers.length;
  }

  open(requestId: string): PipelineSession {
    return new InProcessSession(requestId, this.workers);
  }
}

/** What a TickLoop reads from its transport. */
export interface TickState {
  /** Stage 0 holds no packet of this request (queued or computing). */
  stage0Idle(): boolean;
  /** Packets sent whose answer has not come back. */
  inFlight(): number;
}

/**
 * The event loop of an asynchronous session, one owner for InProcessPipeline and the stage
 * nodes' gRPC pipeline: events (verdicts) first, in arrival order; then a tick when stage 0
 * has given credit, holds none of this request and fewer than inFlightWindow packets are in
 * flight; with nothing in flight, credit again (the driver stops a controller that keeps
 * declining with nothing in flight); otherwise wait until the transport pokes. With `stall`,
 * a wait longer than stall.ms calls stall.onStall (which should fail the loop).
 */
export class TickLoop {
  private readonly events: PipelineEvent[] = [];
  private wake: (() => void) | null = null;
  private failure: Error | null = null;
  private credit = true; // stage 0 can take a packet and no tick has offered it yet
  private ticks = 0;

  constructor(
    private readonly stageCount: number,
    private readonly state: TickState,
    private readonly stall?: { ms: number; onStall(): void },
  ) {}

  get timestep(): number {
    return this.ticks;
  }

  get failed(): Error | null {
    return this.failure;
  }

  /** Queues an event for next() (call poke() to deliver it to a waiting next()). */
  push(event: PipelineEvent): void {
    this.events.push(event);
  }

  /** Stage 0 can take a packet again. */
  giveCredit(): void {
    this.credit = true;
  }

  /** next() throws `error` from now on. */
  fail(error: Error): void {
    this.failure = error;
    this.poke();
  }

  /** Wakes a waiting next(). */
  poke(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  async next(): Promise<PipelineEvent> {
    for (;;) {
      if (this.failure) throw this.failure;
      const e = this.events.shift();
      if (e) return e;
      const inFlight = this.state.inFlight();
      if (this.credit && this.state.stage0Idle() && inFlight < inFlightWindow(this.stageCount)) {
        this.credit = false;
        return { kind: 'tick', timestep: this.ticks++ };
      }
      if (inFlight === 0 && this.state.stage0Idle()) {
        this.credit = true;
        continue;
      }
      await this.waitForPoke();
    }
  }

  private async waitForPoke(): Promise<void> {
    const stall = this.stall;
    if (!stall) {
      await new Promise<void>((resolve) => (this.wake = resolve));
      return;
    }
    const woken = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), stall.ms);
      this.wake = () => {
        clearTimeout(timer);
        resolve(true);
      };
    });
    if (!woken) stall.onStall();
  }
}

class InProcessSession implements PipelineSession {
  private readonly inbox: LayerPacket[][];
  private readonly running: (Promise<void> | null)[];
  private readonly usages: StageUsage[];
  private readonly loop: TickLoop;
  private closed = false;

  constructor(
    readonly requestId: string,
    private readonly workers: StageWorker[],
  ) {
    this.inbox = workers.map(() => []);
    this.running = workers.map(() => null);
    this.usages = workers.map(emptyUsage);
    this.loop = new TickLoop(workers.length, {
      stage0Idle: () => this.stage0Idle(),
      inFlight: () => this.inFlight,
    });
  }

  get timestep(): number {
    return this.loop.timestep;
  }

  get simulatedMs(): number {
    return 0;
  }

  get inFlight(): number {
    let n = 0;
    for (let s = 0; s < this.workers.length; s++) {
      n += this.inbox[s].length + (this.running[s] ? 1 : 0);
    }
    return n;
  }

  usage(): StageUsage[] {
    return this.usages.map((u) => ({ ...u }));
  }

  send(packet: LayerPacket): void {
    this.inbox[0].push(packet);
    this.pump(0);
  }

  broadcast(decision: Decision): void {
    for (const w of this.workers) w.receive(decision);
  }

  next(): Promise<PipelineEvent> {
    return this.loop.next();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const q of this.inbox) q.length = 0;
    await Promise.allSettled(this.running.filter((r) => r !== null));
    for (const w of this.workers) w.release(this.requestId);
  }

  private stage0Idle(): boolean {
    return this.running[0] === null && this.inbox[0].length === 0;
  }

  private pump(s: number): void {
    if (this.closed || this.running[s] || this.inbox[s].length === 0) return;
    const packet = this.inbox[s].shift()!;
    this.running[s] = this.workers[s]
      .process(packet)
      .then((r) => {
        addUsage(this.usages[s], r);
        this.running[s] = null;
        if (r.output && !this.closed) {
          if (s + 1 < this.workers.length) {
            this.inbox[s + 1].push(r.output as LayerPacket);
            this.pump(s + 1);
          } else {
            this.loop.push({ kind: 'verdict', verdict: r.output as Verdict });
            // A verdict may give the controller something to send (PP, a refill).
            if (this.stage0Idle()) this.loop.giveCredit();
          }
        }
        if (s === 0) this.loop.giveCredit();
        this.pump(s);
      })
      .catch((err: unknown) => {
        this.running[s] = null;
        this.loop.fail(err instanceof Error ? err : new Error(String(err)));
      })
      .finally(() => this.loop.poke());
  }
}
