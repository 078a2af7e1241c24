// The ONNX side: execution providers from configuration, graphs with external weights,
// and the on-disk graph cache keyed by fingerprint and layer range.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdir, readdir, stat } from 'node:fs/promises';
import path from 'node:path';

import {
  Checkpoint,
  OnnxShard,
  openShard,
  resolveExecutionProvider,
  runtimeCpuMs,
  splitLayers,
} from '../src/index.js';
import { RuntimeSession } from '../src/onnx-runtime.js';
import { tempDir, tinyCheckpoint } from './helpers.js';

describe('execution providers', () => {
  it('defaults to cpu and accepts cuda by name', () => {
    expect(resolveExecutionProvider()).toBe('cpu');
    expect(resolveExecutionProvider('cuda')).toBe('cuda');
  });

  it('refuses an unknown provider, listing the valid ones', async () => {
    expect(() => resolveExecutionProvider('tpu')).toThrow(
      'UNKNOWN_PROVIDER: unknown execution provider "tpu"; valid choices: cpu, cuda',
    );
    await expect(
      openShard({ checkpointDir: '/nonexistent', executionProvider: 'toString' }),
    ).rejects.toMatchObject({
      code: 'UNKNOWN_PROVIDER',
    });
  });
});

describe('graph cache', () => {
  let tmp: Awaited<ReturnType<typeof tempDir>>;
  beforeAll(async () => {
    tmp = await tempDir('graphs');
  });
  afterAll(() => tmp.cleanup());

  it('keeps weights out of the protobuf and reuses a graph per fingerprint and range', async () => {
    const a = await tinyCheckpoint(tmp.dir, 'a', { seed: 1 });
    const b = await tinyCheckpoint(tmp.dir, 'b', { seed: 2 }); // same shapes, other weights
    const cacheDir = path.join(tmp.dir, 'cache');
    const open = (checkpointDir: string, layerStart: number, layerEnd: number) =>
      OnnxShard.open({ checkpointDir, layerStart, layerEnd, cacheDir });

    const first = await open(a, 0, 2);
    expect(first.graphBuilt).toBe(true);
    const entries = await readdir(cacheDir);
    expect(entries).toHaveLength(1);
    expect(entries[0]).toMatch(
      new RegExp(`^${first.info.fingerprint.slice(0, 24)}-L0-2-f32-g\\d+$`),
    );
    const model = await stat(path.join(cacheDir, entries[0], 'model.onnx'));
    const weights = await stat(path.join(cacheDir, entries[0], 'weights.bin'));
    expect(weights.size).toBe(first.memory().weightBytes);
    expect(model.size * 10).toBeLessThan(weights.size);

    const again = await open(a, 0, 2);
    const otherRange = await open(a, 2, 4);
    const otherWeights = await open(b, 0, 2);
    expect([again.graphBuilt, otherRange.graphBuilt, otherWeights.graphBuilt]).toEqual([
      false,
      true,
      true,
    ]);
    expect((await readdir(cacheDir)).filter((e) => !e.includes('.tmp'))).toHaveLength(3);
    await Promise.all([first, again, otherRange, otherWeights].map((s) => s.close()));
  });

  it("declares each layer's cache input as the Attention op's past: [b, kvHeads, cap, headDim]", async () => {
    const dir = await tinyCheckpoint(tmp.dir, 'dims', { seed: 3 });
    const cacheDir = path.join(tmp.dir, 'cache-dims');
    const shard = await OnnxShard.open({
      checkpointDir: dir,
      layerStart: 1,
      layerEnd: 3,
      cacheDir,
    });
    const [graph] = await readdir(cacheDir);
    const session = await RuntimeSession.create(path.join(cacheDir, graph, 'model.onnx'), {
      provider: 'cpu',
      intraOpThreads: 1,
    });
    const ckpt = await Checkpoint.open(dir);
    const c = ckpt.config;
    await ckpt.close();
    for (const name of ['past_key_0', 'past_value_1']) {
      expect(session.inputDims(name)).toEqual(['b', c.numKvHeads, 'cap', c.headDim]);
    }
    // One sequence per entry of the batch dimension b (forwardMany's padded join).
    expect(session.inputDims('hidden_in')).toEqual(['b', 'n', c.hiddenSize]);
    expect(session.inputDims('past_key_2')).toBeUndefined(); // the stage holds two layers
    // Every layer's new K/V rows in one output (each output costs the binding per call).
    expect(session.outputNames).toEqual(['present_kv', 'hidden_out']);
    await Promise.all([session.release(), shard.close()]);
  });
});

describe('splitLayers', () => {
  it('splits evenly, earlier stages taking the remainder', () => {
    expect(splitLayers(10, 4)).toEqual([
      { layerStart: 0, layerEnd: 3 },
      { layerStart: 3, layerEnd: 6 },
      { layerStart: 6, layerEnd: 8 },
      { layerStart: 8, layerEnd: 10 },
    ]);
    expect(splitLayers(80, 14).map((r) => r.layerEnd - r.layerStart)).toEqual([
      6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 5, 5, 5, 5,
    ]);
    expect(splitLayers(3, 1)).toEqual([{ layerStart: 0, layerEnd: 3 }]);
  });

  it('refuses more stages than layers', () => {
    expect(() => splitLayers(3, 4)).toThrow(/stages must be an integer in \[1, 3\]/);
    expect(() => splitLayers(0, 1)).toThrow(/numLayers must be a positive integer/);
  });
});

describe('compute time of a forward', () => {
  let tmp: Awaited<ReturnType<typeof tempDir>>;
  beforeAll(async () => {
    tmp = await tempDir('timing');
  });
  afterAll(() => tmp.cleanup());

  it('is its own, not the work queued before it on the thread', async () => {
    const dir = await tinyCheckpoint(tmp.dir, 't', { seed: 3 });
    const shard = await OnnxShard.open({
      checkpointDir: dir,
      cacheDir: path.join(tmp.dir, 'cache'),
      intraOpThreads: 1,
    });
    const batch = (seq: number) => ({
      nodeIds: Int32Array.of(seq),
      parentIds: Int32Array.of(seq - 1),
      positions: Int32Array.of(seq),
      tokens: Int32Array.of(5),
    });
    await shard.forward('warm', { ...batch(0), parentIds: Int32Array.of(-1) });
    // Another run on the same thread (at the head: stage 0 beside the draft) goes first. It
    // burns BLOCK_MS of CPU, not of wall time: on a loaded host a spin timed by the clock is
    // preempted and burns less, which the CPU comparison below would take for the runtime's.
    const BLOCK_MS = 40;
    const block = () => {
      const end = process.cpuUsage().user + BLOCK_MS * 1000;
      while (process.cpuUsage().user < end);
    };
    setImmediate(block);
    const t = performance.now();
    const out = await shard.forward('timed', { ...batch(0), parentIds: Int32Array.of(-1) });
    const wall = performance.now() - t;
    expect(wall).toBeGreaterThanOrEqual(BLOCK_MS);
    expect(out.computeMs).toBeGreaterThan(0);
    expect(out.computeMs!).toBeLessThan(wall - BLOCK_MS / 2);
    // The runtime's CPU counter holds this run, and not the 40 ms of other work before it.
    const before = runtimeCpuMs();
    const cpu0 = process.cpuUsage();
    setImmediate(block);
    await shard.forward('counted', { ...batch(0), parentIds: Int32Array.of(-1) });
    const cpu = process.cpuUsage(cpu0);
    const counted = runtimeCpuMs() - before;
    expect(counted).toBeGreaterThan(0);
    expect(counted).toBeLessThan((cpu.user + cpu.system) / 1000 - BLOCK_MS / 2);
    await shard.close();
  });
});

describe('ONNX Runtime telemetry', () => {
  // A child process opens a shard through the compiled library with HOME in a fresh folder, and
  // the test looks for the runtime's telemetry database under it (onnx-runtime.ts's header).
  const telemetryDb = (home: string) =>
    path.join(home, '.cache', 'Microsoft', 'DeveloperTools', '.onnxruntime', 'onnxruntime.db');
  let tmp: Awaited<ReturnType<typeof tempDir>>;
  let checkpointDir: string;
  beforeAll(async () => {
    tmp = await tempDir('telemetry');
    checkpointDir = await tinyCheckpoint(tmp.dir, 'ckpt');
  });
  afterAll(() => tmp.cleanup());

  async function openIn(home: string, env: Record<string, string>): Promise<void> {
    const lib = path.resolve(import.meta.dirname, '..', 'dist', 'index.js');
    const script = `const m = await import(${JSON.stringify(lib)});
      const s = await m.openShard({ checkpointDir: ${JSON.stringify(checkpointDir)}, intraOpThreads: 1 });
      await s.close();`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, ...env },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const [code] = (await once(child, 'exit')) as [number];
    if (code !== 0) throw new Error(`the child exited with ${code}: ${err}`);
  }

  it('is off in our processes, unless the operator turns it on', async () => {
    const quiet = path.join(tmp.dir, 'home-default');
    await mkdir(quiet);
    await openIn(quiet, {});
    expect(existsSync(telemetryDb(quiet))).toBe(false);
    // The same child with telemetry allowed writes the file: the check above can see it.
    const allowed = path.join(tmp.dir, 'home-allowed');
    await mkdir(allowed);
    await openIn(allowed, { ORT_DISABLE_TELEMETRY: '0' });
    expect(existsSync(telemetryDb(allowed))).toBe(true);
  });
});
