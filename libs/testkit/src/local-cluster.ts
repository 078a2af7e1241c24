// TEST HARNESS (`@pipedec/testkit/local-cluster`): starts a pipeline of stage processes on
// this host (or inside network namespaces), each a real `node apps/stage-node/dist/main.js` on
// its own ports, and waits until the head reports its pipeline whole. Used by the tests of
// every app and by the benchmarks; it can kill, stop and restart single stages and keeps each
// stage's output. It runs the stage node by path and imports nothing from apps/, so no app
// imports another. Production starts its stages with apps/stage-node's start-pipeline.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The stage node's compiled entry point (Nest needs decorator metadata, which only tsc
 * emits), from libs/testkit/src or libs/testkit/dist alike.
 */
export const STAGE_MAIN = fileURLToPath(
  new URL('../../../apps/stage-node/dist/main.js', import.meta.url),
);

export interface StagePlacement {
  /** Address the stage binds and advertises (a namespace's address, or 127.0.0.1). */
  host: string;
  /** Command prefix, e.g. ['ip', 'netns', 'exec', 'pd-ns1']. */
  wrap?: string[];
  /** What the other stages dial, when not the bound address (a proxy in front of the stage). */
  advertise?: (grpcPort: number) => string;
  /** The same for the frame socket (FRAME_TRANSPORT=tcp), when `ports` fixes its port. */
  advertiseFrames?: (framesPort: number) => string;
}

export interface ClusterOptions {
  pipelineId: string;
  stages: number;
  checkpointDir: string;
  draftCheckpointDir: string;
  redisUrl: string;
  redisPrefix: string;
  /** Extra environment for every stage (WIRE_DTYPE, QUEUE_CONCURRENCY, MODEL_NAME, ...). */
  env?: Record<string, string>;
  placement?: (stage: number) => StagePlacement;
  /**
   * Fixed ports per stage (default: free ports the OS picks; the frame socket's, one the
   * stage binds).
   */
  ports?: (stage: number) => { grpc: number; health: number; frames?: number };
  /** Where each stage's output goes ('inherit' to see logs); default: kept in memory. */
  stdio?: 'inherit' | 'pipe';
  readyTimeoutMs?: number;
}

interface StageProcess {
  env: Record<string, string>;
  placement: StagePlacement;
  child: ChildProcess;
  exited: Promise<number | null>;
  log: string[];
  healthPort: number;
}

export class LocalCluster {
  private readonly procs: StageProcess[] = [];

  private constructor(readonly options: ClusterOptions) {}

  static async start(options: ClusterOptions): Promise<LocalCluster> {
    const c = new LocalCluster(options);
    try {
      for (let s = 0; s < options.stages; s++) await c.spawnStage(s);
      await c.waitWhole(options.readyTimeoutMs ?? 60_000);
    } catch (error) {
      await c.stop();
      throw error;
    }
    return c;
  }

  get stageCount(): number {
    return this.procs.length;
  }

  pid(stage: number): number | undefined {
    return this.procs[stage].child.pid;
  }

  logs(stage: number): string {
    return this.procs[stage].log.join('');
  }

  /** The address other stages dial for this stage. */
  grpcAddress(stage: number): string {
    return this.procs[stage].env.GRPC_ADVERTISE;
  }

  healthUrl(stage: number): string {
    const p = this.procs[stage];
    return `http://${p.placement.host}:${p.healthPort}/health`;
  }

  /** GET /health of a stage: status and body, or null when it does not answer. */
  async health(stage: number): Promise<{ status: number; body: Record<string, unknown> } | null> {
    try {
      const res = await fetch(this.healthUrl(stage), { signal: AbortSignal.timeout(1000) });
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    } catch {
      return null;
    }
  }

  /** Sends a signal and waits for the process to exit. */
  async kill(stage: number, signal: NodeJS.Signals = 'SIGKILL'): Promise<number | null> {
    const p = this.procs[stage];
    if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill(signal);
    return p.exited;
  }

  /** Starts the stage again with the same configuration and ports. */
  async restart(stage: number, timeoutMs = 60_000): Promise<void> {
    await this.kill(stage);
    await this.spawnStage(stage, this.procs[stage].env);
    await this.waitWhole(timeoutMs);
  }

  /** Waits until the head's health says its pipeline is whole. */
  async waitWhole(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      for (const [s, p] of this.procs.entries()) {
        if (p.child.exitCode !== null) {
          throw new Error(
            `stage ${s} exited with ${p.child.exitCode}:\n${this.logs(s).slice(-4000)}`,
          );
        }
      }
      const h = await this.health(0);
      if (h?.status === 200) return;
      if (Date.now() > deadline) {
        throw new Error(
          `pipeline ${this.options.pipelineId} not whole after ${timeoutMs} ms: ${JSON.stringify(h?.body)}`,
        );
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** SIGTERM to every stage (the head first, so it stops taking jobs), then waits. */
  async stop(timeoutMs = 20_000): Promise<void> {
    const live = this.procs.filter((p) => p.child.exitCode === null && p.child.signalCode === null);
    for (const p of live) p.child.kill('SIGTERM');
    const timer = setTimeout(() => {
      for (const p of live) p.child.kill('SIGKILL');
    }, timeoutMs);
    await Promise.all(live.map((p) => p.exited));
    clearTimeout(timer);
  }

  private async spawnStage(stage: number, reuse?: Record<string, string>): Promise<void> {
    const o = this.options;
    const placement = o.placement?.(stage) ?? { host: '127.0.0.1' };
    const env =
      reuse ??
      (await (async () => {
        const fixed = o.ports?.(stage);
        const grpcPort = fixed?.grpc ?? (await freePort());
        const healthPort = fixed?.health ?? (await freePort());
        return {
          // Tests start many short-lived pipelines: no warm-up unless a test asks for one.
          WARMUP_TOKENS: '0',
          ...o.env,
          PIPELINE_ID: o.pipelineId,
          STAGE_INDEX: String(stage),
          STAGE_COUNT: String(o.stages),
          CHECKPOINT_DIR: o.checkpointDir,
          DRAFT_CHECKPOINT_DIR: o.draftCheckpointDir,
          REDIS_URL: o.redisUrl,
          REDIS_PREFIX: o.redisPrefix,
          GRPC_LISTEN: `${placement.host}:${grpcPort}`,
          GRPC_ADVERTISE: placement.advertise?.(grpcPort) ?? `${placement.host}:${grpcPort}`,
          HEALTH_HOST: placement.host,
          HEALTH_PORT: String(healthPort),
          ...(fixed?.frames === undefined
            ? {}
            : {
                FRAMES_LISTEN: `${placement.host}:${fixed.frames}`,
                FRAMES_ADVERTISE:
                  placement.advertiseFrames?.(fixed.frames) ?? `${placement.host}:${fixed.frames}`,
              }),
        };
      })());
    // PIPEDEC_STAGE_NODE_FLAGS passes Node flags to every stage process, for profiling the hot
    // path where it runs: PIPEDEC_STAGE_NODE_FLAGS="--cpu-prof --cpu-prof-dir=/tmp/prof" (or
    // "--perf-basic-prof" for perf, bench/perf-breakdown.ts; "--trace-gc" with the next).
    // PIPEDEC_STAGE_LOG_DIR: each stage's output also goes to <dir>/stage-<index>.log.
    const flags = (process.env.PIPEDEC_STAGE_NODE_FLAGS ?? '').split(/\s+/).filter(Boolean);
    const [cmd, ...args] = [...(placement.wrap ?? []), process.execPath, ...flags, STAGE_MAIN];
    // Of the caller's environment only PATH reaches a stage, and ORT_DISABLE_TELEMETRY when the
    // caller set it (a stage's libs/model turns ONNX Runtime's telemetry off unless it says 0).
    const telemetry = process.env.ORT_DISABLE_TELEMETRY;
    const child = spawn(cmd, args, {
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        ...(telemetry === undefined ? {} : { ORT_DISABLE_TELEMETRY: telemetry }),
        ...env,
      },
      stdio: ['ignore', o.stdio ?? 'pipe', o.stdio ?? 'pipe'],
    });
    const log: string[] = [];
    const logDir = process.env.PIPEDEC_STAGE_LOG_DIR;
    const file = logDir
      ? createWriteStream(path.join(logDir, `stage-${stage}.log`), { flags: 'a' })
      : null;
    for (const out of [child.stdout, child.stderr]) {
      out?.on('data', (d: Buffer) => {
        log.push(d.toString());
        file?.write(d);
      });
    }
    const exited = once(child, 'exit').then(([code]) => code as number | null);
    if (file) void exited.then(() => file.end());
    this.procs[stage] = { env, placement, child, exited, log, healthPort: Number(env.HEALTH_PORT) };
  }
}

/**
 * A TCP port on 127.0.0.1 nothing listens on right now, for a process to bind a moment later.
 * Drawn at random below the kernel's ephemeral range (ip_local_port_range): a port the OS
 * picked (listen on 0) goes back to that range when released, and before the stage bound it
 * the OS could hand it to any outgoing connection or listen(0) on the host (a Redis client, a
 * stage's frame socket); seen as a stage failing with EADDRINUSE at start. Never the same port
 * twice in one process.
 */
export async function freePort(): Promise<number> {
  const low = ephemeralLow();
  const floor = 10_000;
  if (low - floor >= 1_000) {
    for (let tries = 0; tries < 50; tries++) {
      const port = floor + Math.floor(Math.random() * (low - floor));
      if (handedOut.has(port) || !(await bindable(port))) continue;
      handedOut.add(port);
      return port;
    }
  }
  // No room below the ephemeral range (or all tries taken): the OS's pick, as before.
  for (;;) {
    const srv = createServer();
    srv.listen(0, '127.0.0.1');
    await once(srv, 'listening');
    const addr = srv.address();
    srv.close();
    if (addr === null || typeof addr === 'string') throw new Error('no port');
    if (handedOut.has(addr.port)) continue;
    handedOut.add(addr.port);
    return addr.port;
  }
}

const handedOut = new Set<number>();

/** Where the kernel's ephemeral port range starts (Linux); 65536 where it cannot be read. */
function ephemeralLow(): number {
  try {
    const low = Number(
      readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').split(/\s+/)[0],
    );
    if (Number.isInteger(low)) return low;
  } catch {
    // not Linux, or no /proc: fall back below
  }
  return 65_536;
}

async function bindable(port: number): Promise<boolean> {
  const srv = createServer();
  try {
    srv.listen(port, '127.0.0.1');
    await once(srv, 'listening');
    return true;
  } catch {
    return false;
  } finally {
    srv.close();
  }
}
