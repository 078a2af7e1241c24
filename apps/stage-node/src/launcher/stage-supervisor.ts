// Keeps a set of stage processes running on one host: each is spawned, and spawned again when
// it exits without being asked to (a crash, kill -9, the OOM killer), after a backoff that
// doubles from `initialMs` to `maxMs` and starts over once a process has stayed up for
// `resetAfterMs`. Every exit and restart is logged. This is what `npm start` runs the demo
// pipeline under (start-pipeline.ts); on several hosts systemd (Restart=always) or Kubernetes
// (restartPolicy: Always) do the same job (docs/deployment.md). A restarted stage registers
// again with a new instance id and the head waits until its pipeline is whole before taking
// jobs, so nothing here needs to know what a stage is.
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter, once } from 'node:events';

export interface SupervisedProcess {
  /** A name for the logs ("stage 2"). */
  name: string;
  command: string;
  args: string[];
  env: Record<string, string>;
}

export interface Backoff {
  /** Delay before the first restart. */
  initialMs: number;
  /** The delay doubles after each restart up to this. */
  maxMs: number;
  /** A process that stayed up this long is healthy again: the next restart waits initialMs. */
  resetAfterMs: number;
}

export const DEFAULT_BACKOFF: Backoff = { initialMs: 250, maxMs: 10_000, resetAfterMs: 30_000 };

export interface ExitRecord {
  index: number;
  name: string;
  /** The exited process's pid (-1 if it never got one). */
  pid: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  /** How long the process had run, ms. */
  uptimeMs: number;
  /** The delay before it is started again. */
  restartInMs: number;
  /** Restarts of this process so far, this one included. */
  restarts: number;
}

interface Slot {
  spec: SupervisedProcess;
  child: ChildProcess | null;
  exited: Promise<void>;
  startedAt: number;
  delayMs: number;
  restarts: number;
  timer: NodeJS.Timeout | null;
}

/**
 * Events: 'spawn' (index, pid) each time a process starts; 'exit' (ExitRecord) when one exits
 * unasked and is about to be restarted.
 */
export class StageSupervisor extends EventEmitter {
  private readonly slots: Slot[];
  private stopping = false;

  constructor(
    specs: SupervisedProcess[],
    private readonly backoff: Backoff = DEFAULT_BACKOFF,
    private readonly log: (line: string) => void = (line) =>
      process.stderr.write(`supervisor: ${line}\n`),
    private readonly stdio: 'inherit' | 'ignore' = 'inherit',
  ) {
    super();
    this.slots = specs.map((spec) => ({
      spec,
      child: null,
      exited: Promise.resolve(),
      startedAt: 0,
      delayMs: backoff.initialMs,
      restarts: 0,
      timer: null,
    }));
  }

  /** Starts every process. */
  start(): void {
    for (let i = 0; i < this.slots.length; i++) this.spawn(i);
  }

  /** The pid of process `index` now (undefined while it waits to be restarted). */
  pid(index: number): number | undefined {
    return this.slots[index].child?.pid;
  }

  restarts(index: number): number {
    return this.slots[index].restarts;
  }

  /**
   * Stops supervising and sends `signal` to every process (in order: the head first, so it
   * stops taking jobs), then waits for all to exit; SIGKILL after `timeoutMs`.
   */
  async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 20_000): Promise<void> {
    this.stopping = true;
    const live: Slot[] = [];
    for (const s of this.slots) {
      if (s.timer) clearTimeout(s.timer);
      s.timer = null;
      if (s.child && s.child.exitCode === null && s.child.signalCode === null) {
        s.child.kill(signal);
        live.push(s);
      }
    }
    const timer = setTimeout(() => {
      for (const s of live) s.child?.kill('SIGKILL');
    }, timeoutMs);
    await Promise.all(live.map((s) => s.exited));
    clearTimeout(timer);
  }

  private spawn(index: number): void {
    const slot = this.slots[index];
    const { spec } = slot;
    const child = spawn(spec.command, spec.args, {
      env: spec.env,
      stdio: ['ignore', this.stdio, this.stdio],
    });
    slot.child = child;
    slot.startedAt = Date.now();
    slot.exited = once(child, 'exit').then(([code, signal]) =>
      this.exited(index, child, code as number | null, signal as NodeJS.Signals | null),
    );
    // A spawn failure (no such command) also ends in 'exit'; 'error' must not throw.
    child.on('error', (e) => this.log(`${spec.name}: ${e.message}`));
    if (child.pid !== undefined) this.emit('spawn', index, child.pid);
  }

  private exited(
    index: number,
    child: ChildProcess,
    code: number | null,
    signal: NodeJS.Signals | null,
  ): void {
    const slot = this.slots[index];
    if (slot.child !== child) return;
    slot.child = null;
    if (this.stopping) return;
    const uptimeMs = Date.now() - slot.startedAt;
    if (uptimeMs >= this.backoff.resetAfterMs) slot.delayMs = this.backoff.initialMs;
    const restartInMs = slot.delayMs;
    slot.delayMs = Math.min(this.backoff.maxMs, slot.delayMs * 2);
    slot.restarts++;
    const record: ExitRecord = {
      index,
      name: slot.spec.name,
      pid: child.pid ?? -1,
      code,
      signal,
      uptimeMs,
      restartInMs,
      restarts: slot.restarts,
    };
    this.log(
      `${slot.spec.name} (pid ${child.pid}) exited ` +
        `${signal ? `on ${signal}` : `with code ${code}`} after ${(uptimeMs / 1000).toFixed(1)} s; ` +
        `restarting in ${restartInMs} ms (restart ${slot.restarts})`,
    );
    this.emit('exit', record);
    slot.timer = setTimeout(() => {
      slot.timer = null;
      if (!this.stopping) this.spawn(index);
    }, restartInMs);
  }
}
