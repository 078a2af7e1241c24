// The only module that imports onnxruntime-node. It maps execution-provider names from
// configuration to the runtime's, creates sessions and runs them on plain typed arrays.
//
// Telemetry: onnxruntime-node 1.30 records usage events for Microsoft by default, from a native
// thread of every process that creates a session, into ~/.cache/Microsoft/DeveloperTools/
// .onnxruntime/onnxruntime.db, one SQLite file shared by all of a user's ORT processes and
// flushed with fsync when each exits (it made test workers miss jest's exit grace; stage nodes
// are long-lived, but a service should not report on its users' hosts unasked). It is off in
// our processes unless the operator sets ORT_DISABLE_TELEMETRY=0; the runtime reads the
// variable when the first session is created, so setting it here, at load, is early enough.
import * as ort from 'onnxruntime-node';

process.env.ORT_DISABLE_TELEMETRY ??= '1';

import { ModelError } from './errors.js';

/** Provider names accepted in configuration, mapped to onnxruntime-node's backend names. */
export const EXECUTION_PROVIDERS = {
  cpu: 'cpu',
  cuda: 'cuda',
} as const;

export type ExecutionProviderName = keyof typeof EXECUTION_PROVIDERS;

/** Validates a configured provider name; the error lists the valid ones. */
export function resolveExecutionProvider(name = 'cpu'): ExecutionProviderName {
  const valid = Object.keys(EXECUTION_PROVIDERS);
  if (!Object.hasOwn(EXECUTION_PROVIDERS, name)) {
    throw new ModelError(
      'UNKNOWN_PROVIDER',
      `unknown execution provider "${name}"; valid choices: ${valid.join(', ')}`,
    );
  }
  return name as ExecutionProviderName;
}

export type Feed =
  | { type: 'float32'; data: Float32Array; dims: readonly number[] }
  | { type: 'int32'; data: Int32Array; dims: readonly number[] };

/** An output as the graphs here produce them: f32 tensors, and int32 token ids. */
export type OutputArray = Float32Array | Int32Array;

/**
 * CPU time this process has spent inside runtime calls, all sessions together (process
 * user + system time from each call's start mark to its return; the runtime computes on the
 * calling thread, ORT_THREADS 1). What a stage's packet path costs is its process CPU minus
 * this (bench:cluster's CPU table); two getrusage calls per run, about 2 us.
 */
let runtimeCpuMicros = 0;
export function runtimeCpuMs(): number {
  return runtimeCpuMicros / 1000;
}

export interface RuntimeOptions {
  provider: ExecutionProviderName;
  intraOpThreads?: number; // default: the runtime's choice (all cores)
}

export class RuntimeSession {
  private constructor(private readonly session: ort.InferenceSession) {}

  /**
   * Loads a model file (external data resolved next to it), or a model's bytes (a graph built
   * in memory, without external data).
   */
  static async create(model: string | Uint8Array, opts: RuntimeOptions): Promise<RuntimeSession> {
    const provider = EXECUTION_PROVIDERS[opts.provider];
    const modelPath = typeof model === 'string' ? model : 'a graph built in memory';
    const sessionOptions: ort.InferenceSession.SessionOptions = {
      executionProviders: [provider],
      graphOptimizationLevel: 'all',
      executionMode: 'sequential',
      ...(opts.intraOpThreads ? { intraOpNumThreads: opts.intraOpThreads } : {}),
    };
    try {
      // Two calls, not one: create's overloads take a path or bytes, not either.
      const session =
        typeof model === 'string'
          ? await ort.InferenceSession.create(model, sessionOptions)
          : await ort.InferenceSession.create(model, sessionOptions);
      return new RuntimeSession(session);
    } catch (cause) {
      const hint =
        provider === 'cpu'
          ? ''
          : ` (is the ${provider} build of onnxruntime-node installed? its install script downloads it)`;
      throw new ModelError(
        'RUNTIME_FAILED',
        `cannot create an ONNX Runtime session for ${modelPath} on "${opts.provider}"${hint}: ${String(cause)}`,
        { cause },
      );
    }
  }

  /** Runs the graph; returns the named outputs (f32 or int32 arrays). */
  async run(
    feeds: Record<string, Feed>,
    outputs: readonly string[],
  ): Promise<Record<string, OutputArray>> {
    return (await this.runTimed(feeds, outputs)).outputs;
  }

  /**
   * run, and how long the runtime itself took. onnxruntime-node runs a session synchronously
   * inside a setImmediate callback, so the wall time of `await run` also holds whatever else
   * the thread ran first (at the head: the draft's run, or stage 0's). A mark queued just
   * before it runs immediately before the runtime's callback (immediates run in order, and
   * nothing is queued between the two), and the awaits after it resolve in the microtasks that
   * follow that callback: from the mark to the return is the runtime's own time.
   */
  async runTimed(
    feeds: Record<string, Feed>,
    outputs: readonly string[],
  ): Promise<{ outputs: Record<string, OutputArray>; runMs: number }> {
    const tensors: Record<string, ort.Tensor> = {};
    for (const [name, f] of Object.entries(feeds)) {
      tensors[name] = new ort.Tensor(f.type, f.data, f.dims);
    }
    const called = performance.now();
    let started = 0;
    let cpu: NodeJS.CpuUsage | undefined;
    setImmediate(() => {
      started = performance.now();
      cpu = process.cpuUsage();
    });
    let result: ort.InferenceSession.ReturnType;
    try {
      result = await this.session.run(tensors, outputs);
    } catch (cause) {
      throw new ModelError('RUNTIME_FAILED', `ONNX Runtime run failed: ${String(cause)}`, {
        cause,
      });
    }
    const runMs = performance.now() - (started || called);
    if (cpu) {
      const d = process.cpuUsage(cpu);
      runtimeCpuMicros += d.user + d.system;
    }
    const out: Record<string, OutputArray> = {};
    for (const name of outputs) out[name] = result[name].data as OutputArray;
    return { outputs: out, runMs };
  }

  /** The graph's outputs, in order. */
  get outputNames(): readonly string[] {
    return this.session.outputNames;
  }

  /** The dimensions an input is declared with (names for symbolic ones), if it exists. */
  inputDims(name: string): (number | string)[] | undefined {
    const meta = this.session.inputMetadata.find((m) => m.name === name);
    return meta?.isTensor ? [...meta.shape] : undefined;
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
