// Benchmark of libs/model's ONNX stages (npm run bench:model): forward time versus the number
// of new positions and versus past length, on the demo target's 4-stage shard sizes, plus the
// runtime's per-call overhead (one position, one layer). Prints markdown tables and writes
// bench/results/model.json. Medians over repeated runs; one runtime thread by default, since
// the development machines are shared (pass --threads N to change it, and --out FILE to keep
// bench/results/model.json as it is).
//
// "Several requests per call" (the joint table): R sequences of one stage, each with a past
// of 256 rows and n new rows (or, "mixed", every other one with 1 row), computed as R forward
// calls (one per request, as a stage did before batching) against one forwardMany call joined
// two ways: padded (each sequence an entry of the graph's batch dimension, over its own past;
// onnx-shard.ts computeMany) and ragged (all rows one sequence over the gathered caches with
// block-diagonal masks; cached-shard.ts). CPU per call of each, copies included, the three
// interleaved per repeat; this chose the padded join (issue #16). --only joint runs just it.
//
// "Decode step" (#15's target, the whole model <= 2.0 ms): one new row per call, the calls of
// one case back to back, as a decode loop makes them. The sweeps interleave their cases per
// repeat, so there a 1-row call follows the previous case's 64- or 16-row call, which has just
// pushed the 1-row call's working set out of the caches: the whole model's 1-row row read
// 2.21 ms in the new-positions sweep and 1.65 ms in the past sweep of the same run, at the same
// past of 256 (stop 36). The sweeps compare shapes; this table is what a token costs.
import { access, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

import {
  Checkpoint,
  OnnxShard,
  splitLayers,
  writeRandomCheckpoint,
  type TreeBatch,
} from '@pipedec/model';

const ROOT = path.resolve(import.meta.dirname, '..');
const DEMO_TARGET = path.join(ROOT, 'models', 'demo-target');

const { values: args } = parseArgs({
  options: {
    threads: { type: 'string', default: '1' },
    repeats: { type: 'string', default: '60' },
    only: { type: 'string' },
    out: { type: 'string', default: 'bench/results/model.json' },
  },
});
const THREADS = Number(args.threads);
const REPEATS = Number(args.repeats);
const NEW_POSITIONS = [1, 2, 4, 8, 16, 32, 64];
const PAST_FOR_N_SWEEP = 256;
const PASTS = [0, 128, 256, 512, 960];
const N_FOR_PAST_SWEEP = [1, 16];
const DECODE_PASTS = [128, 256, 512];

interface Row {
  stage: string;
  layers: number;
  n: number;
  past: number;
  medianMs: number;
  p90Ms: number;
  cpuMedianMs: number; // process CPU time per call (one runtime thread: the call's own work)
  pruneMedianMs: number; // KV prune of the call's rows afterwards (whole tree dropped)
}

async function exists(p: string): Promise<boolean> {
  try {
    await access(p);
    return true;
  } catch {
    return false;
  }
}

/** The demo target when it has been trained, else a random model of the same dimensions. */
async function benchCheckpoint(tmp: string): Promise<{ dir: string; source: string }> {
  if (await exists(path.join(DEMO_TARGET, 'config.json'))) {
    return { dir: DEMO_TARGET, source: 'models/demo-target (demo target)' };
  }
  const dir = path.join(tmp, 'random-demo-dims');
  await writeRandomCheckpoint(dir, {
    layers: 16,
    hidden: 192,
    heads: 6,
    kvHeads: 2,
    intermediate: 512,
    vocab: 4096,
    seed: 1,
    dtype: 'bf16',
    tied: true,
    maxPositions: 1024,
    ropeTheta: 10000,
    ropeScaling: { factor: 4, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 256 },
  });
  return {
    dir,
    source: 'random model with the demo target dimensions (models/demo-target absent)',
  };
}

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

interface Case {
  n: number; // new positions per call
  past: number; // committed rows before the call
}

/**
 * Times tree layers on one stage. Every past length gets its own sequence, prefilled once;
 * the cases are then measured round-robin, so a load spike on the shared machine hits all
 * of them alike instead of skewing one row of the table.
 */
class StageBench {
  private nextId = 0;
  private readonly roots = new Map<number, number>(); // past length -> last committed id

  constructor(
    readonly shard: OnnxShard,
    readonly label: string,
  ) {}

  private batch(n: number, past: number, parent: number, chain: boolean): TreeBatch {
    const ids = Int32Array.from({ length: n }, () => this.nextId++);
    const b: TreeBatch = {
      nodeIds: ids,
      // A chain for prefill; for timing, a tree layer: n siblings under the last committed row.
      parentIds: Int32Array.from(ids, (id, i) => (chain && i > 0 ? id - 1 : parent)),
      positions: Int32Array.from(ids, (_, i) => past + (chain ? i : 0)),
    };
    if (this.shard.isFirst) b.tokens = Int32Array.from(ids, (id) => (id * 7919) % 4000);
    else {
      const hidden = this.shard.info.hiddenSize;
      b.hidden = Float32Array.from({ length: n * hidden }, (_, k) => Math.sin(k));
    }
    return b;
  }

  private async prefill(past: number): Promise<void> {
    if (this.roots.has(past)) return;
    let last = -1;
    for (let done = 0; done < past;) {
      const n = Math.min(64, past - done);
      const b = this.batch(n, done, last, true);
      await this.shard.forward(`past-${past}`, b);
      this.shard.commit(`past-${past}`, Array.from(b.nodeIds));
      done += n;
      last = b.nodeIds[n - 1];
    }
    this.roots.set(past, last);
  }

  /** Median and p90 per case of a tree layer call, pruned after each call. */
  async time(cases: Case[]): Promise<Row[]> {
    for (const c of cases) await this.prefill(c.past);
    const samples = cases.map((): number[] => []);
    const pruneSamples = cases.map((): number[] => []); // dropping the call's n rows again
    // Process CPU time of the call: with one runtime thread ORT computes on this thread, so
    // this is the call's own work, much less disturbed than wall time by other processes.
    const cpuSamples = cases.map((): number[] => []);
    for (let r = 0; r < REPEATS + 3; r++) {
      for (const [k, c] of cases.entries()) {
        const seq = `past-${c.past}`;
        const b = this.batch(c.n, c.past, this.roots.get(c.past)!, false);
        const c0 = process.cpuUsage();
        const t0 = process.hrtime.bigint();
        await this.shard.forward(seq, b);
        const t1 = process.hrtime.bigint();
        const cpu = process.cpuUsage(c0);
        this.shard.prune(seq, new Set());
        const t2 = process.hrtime.bigint();
        if (r >= 3) {
          // the first rounds warm the runtime's allocations
          samples[k].push(Number(t1 - t0) / 1e6);
          cpuSamples[k].push((cpu.user + cpu.system) / 1000);
          pruneSamples[k].push(Number(t2 - t1) / 1e6);
        }
      }
    }
    return cases.map((c, k) => {
      const sorted = samples[k].sort((x, y) => x - y);
      return {
        stage: this.label,
        layers: this.shard.layerEnd - this.shard.layerStart,
        n: c.n,
        past: c.past,
        medianMs: quantile(sorted, 0.5),
        p90Ms: quantile(sorted, 0.9),
        cpuMedianMs: quantile(
          cpuSamples[k].sort((x, y) => x - y),
          0.5,
        ),
        pruneMedianMs: quantile(
          pruneSamples[k].sort((x, y) => x - y),
          0.5,
        ),
      };
    });
  }
}

interface JointCase {
  requests: number;
  n: number;
  mixed?: boolean; // every other sequence has 1 new row instead of n
}

interface JointRow {
  stage: string;
  requests: number; // R sequences in the call
  n: number; // new rows per sequence
  mixed: boolean; // every other sequence had 1 row
  past: number; // committed rows per sequence
  separateCpuMs: number; // median CPU of R forward calls
  jointCpuMs: number; // median CPU of one forwardMany call with the same rows, padded join
  raggedCpuMs: number; // the same, ragged join
  separateMs: number; // median wall time of the R calls
  jointMs: number; // median wall time of the one call, padded
  raggedMs: number; // the same, ragged
}

/**
 * R sequences computed one call each against all in one call, interleaved per repeat so load
 * hits both alike. Each sequence is prefilled once; the rows of every call are pruned again.
 */
async function timeJoint(
  shard: OnnxShard,
  label: string,
  cases: JointCase[],
  past: number,
  prefix = '',
): Promise<JointRow[]> {
  const maxR = Math.max(...cases.map((c) => c.requests));
  const seqs = Array.from({ length: maxR }, (_, i) => `${prefix}joint-${i}`);
  let nextId = 1_000_000;
  const hidden = shard.info.hiddenSize;
  const rows = (n: number, parent: number, chain: boolean, from: number): TreeBatch => {
    const ids = Int32Array.from({ length: n }, () => nextId++);
    const b: TreeBatch = {
      nodeIds: ids,
      parentIds: Int32Array.from(ids, (id, i) => (chain && i > 0 ? id - 1 : parent)),
      positions: Int32Array.from(ids, (_, i) => from + (chain ? i : 0)),
    };
    if (shard.isFirst) b.tokens = Int32Array.from(ids, (id) => (id * 7919) % 4000);
    else b.hidden = Float32Array.from({ length: n * hidden }, (_, k) => Math.sin(k + n));
    return b;
  };
  const roots: number[] = [];
  for (const seq of seqs) {
    let last = -1;
    for (let done = 0; done < past;) {
      const n = Math.min(64, past - done);
      const b = rows(n, last, true, done);
      await shard.forward(seq, b);
      shard.commit(seq, Array.from(b.nodeIds));
      done += n;
      last = b.nodeIds[n - 1];
    }
    roots.push(last);
  }
  const samples = cases.map(() => ({
    sc: [] as number[],
    jc: [] as number[],
    rc: [] as number[],
    sw: [] as number[],
    jw: [] as number[],
    rw: [] as number[],
  }));
  const batchesOf = (c: JointCase) =>
    seqs
      .slice(0, c.requests)
      .map((seq, i) => ({ seq, batch: rows(c.mixed && i % 2 ? 1 : c.n, roots[i], false, past) }));
  /** One forwardMany call joined as `join`: [cpu, wall]; the rows are pruned again after it. */
  const timeMany = async (join: 'padded' | 'ragged', c: JointCase): Promise<[number, number]> => {
    shard.join = join;
    const batches = batchesOf(c);
    const c0 = cpuNow();
    const t0 = performance.now();
    const out = await shard.forwardMany(batches);
    const w = performance.now() - t0;
    const cpu = cpuNow() - c0;
    for (const o of out) if (o instanceof Error) throw o;
    for (const { seq } of batches) shard.prune(seq, new Set());
    return [cpu, w];
  };
  const cpuNow = () => {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1000;
  };
  for (let r = 0; r < REPEATS + 3; r++) {
    for (const [k, c] of cases.entries()) {
      /** R forward calls: [cpu, wall]; the rows are pruned again after them. */
      const separate = async (): Promise<[number, number]> => {
        const batches = batchesOf(c);
        const c0 = cpuNow();
        const t0 = performance.now();
        for (const { seq, batch } of batches) await shard.forward(seq, batch);
        const w = performance.now() - t0;
        const cpu = cpuNow() - c0;
        for (const { seq } of batches) shard.prune(seq, new Set());
        return [cpu, w];
      };
      // The three in rotating order, so drift and cache warmth fall on each alike.
      const runs = [separate, () => timeMany('padded', c), () => timeMany('ragged', c)];
      const got: [number, number][] = [];
      for (let q = 0; q < 3; q++) got[(q + r) % 3] = await runs[(q + r) % 3]();
      const [[sc, sw], [jc, jw], [rc, rw]] = got;
      if (r >= 3) {
        const at = samples[k];
        at.sc.push(sc);
        at.jc.push(jc);
        at.rc.push(rc);
        at.sw.push(sw);
        at.jw.push(jw);
        at.rw.push(rw);
      }
    }
  }
  const median = (xs: number[]) =>
    quantile(
      xs.sort((a, b) => a - b),
      0.5,
    );
  return cases.map((c, k) => ({
    stage: label,
    requests: c.requests,
    n: c.n,
    mixed: c.mixed ?? false,
    past,
    separateCpuMs: median(samples[k].sc),
    jointCpuMs: median(samples[k].jc),
    raggedCpuMs: median(samples[k].rc),
    separateMs: median(samples[k].sw),
    jointMs: median(samples[k].jw),
    raggedMs: median(samples[k].rw),
  }));
}

function jointTable(rows: JointRow[]): string {
  const lines = [
    '### Several requests per call: R forward calls against one forwardMany, padded or ragged (CPU ms per step)',
    '',
    '| stage | requests | rows each | past | R calls CPU | padded CPU | ragged CPU | R calls / padded | ragged / padded | R calls wall | padded wall | ragged wall |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of rows) {
    const each = r.mixed ? `${r.n} / 1` : String(r.n);
    lines.push(
      `| ${r.stage} | ${r.requests} | ${each} | ${r.past} | ${r.separateCpuMs.toFixed(3)} | ${r.jointCpuMs.toFixed(3)} | ${r.raggedCpuMs.toFixed(3)} | ${(r.separateCpuMs / r.jointCpuMs).toFixed(2)}x | ${(r.raggedCpuMs / r.jointCpuMs).toFixed(2)}x | ${r.separateMs.toFixed(3)} | ${r.jointMs.toFixed(3)} | ${r.raggedMs.toFixed(3)} |`,
    );
  }
  return lines.join('\n');
}

function table(rows: Row[], title: string): string {
  const lines = [
    `### ${title}`,
    '',
    '| stage | layers | new positions | past | median ms | p90 ms | CPU ms | CPU ms per row | prune ms |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of rows) {
    lines.push(
      `| ${r.stage} | ${r.layers} | ${r.n} | ${r.past} | ${r.medianMs.toFixed(3)} | ${r.p90Ms.toFixed(3)} | ${r.cpuMedianMs.toFixed(3)} | ${(r.cpuMedianMs / r.n).toFixed(3)} | ${r.pruneMedianMs.toFixed(4)} |`,
    );
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'pipedec-bench-model-'));
  try {
    const { dir, source } = await benchCheckpoint(tmp);
    const ckpt = await Checkpoint.open(dir);
    const config = ckpt.config;
    await ckpt.close();
    const cacheDir = path.join(tmp, 'onnx');
    const ranges = splitLayers(config.numLayers, 4);
    const open = (layerStart: number, layerEnd: number) =>
      OnnxShard.open({
        checkpointDir: dir,
        layerStart,
        layerEnd,
        cacheDir,
        intraOpThreads: THREADS,
      });
    // One shard per stage, its join switched per call (OnnxShard.join): two sessions of the
    // same graph differed by up to 1.4x on the same calls here.
    const middle = ranges[1];
    const jointShard = await open(middle.layerStart, middle.layerEnd);
    const joint = await timeJoint(
      jointShard,
      'middle of 4',
      [
        ...[1, 2, 4, 8].flatMap((requests) => [1, 4].map((n) => ({ requests, n }))),
        ...[4, 8].map((requests) => ({ requests, n: 4, mixed: true })),
      ],
      PAST_FOR_N_SWEEP,
    );
    // A long past: the padded join copies each sequence's used rows; alone, a call reads them
    // in place.
    joint.push(
      ...(await timeJoint(
        jointShard,
        'middle of 4',
        [2, 4, 8].flatMap((requests) => [1, 4].map((n) => ({ requests, n }))),
        768,
        'long-',
      )),
    );
    const lastRange = ranges[3];
    const jointLast = await open(lastRange.layerStart, lastRange.layerEnd);
    joint.push(
      ...(await timeJoint(
        jointLast,
        'last of 4 (norm + LM head)',
        [4, 8].map((requests) => ({ requests, n: 4 })),
        PAST_FOR_N_SWEEP,
      )),
    );
    await Promise.all([jointShard.close(), jointLast.close()]);
    console.log(jointTable(joint) + '\n');
    if (args.only === 'joint') {
      await mkdir(path.join(ROOT, 'bench', 'results'), { recursive: true });
      await writeFile(
        path.join(ROOT, 'bench', 'results', 'model-joint.json'),
        JSON.stringify(
          {
            date: new Date().toISOString(),
            loadAverage1m: Number(os.loadavg()[0].toFixed(2)),
            threads: THREADS,
            repeats: REPEATS,
            joint,
          },
          null,
          2,
        ) + '\n',
      );
      return;
    }
    const stages = [
      new StageBench(
        await open(ranges[0].layerStart, ranges[0].layerEnd),
        'first of 4 (embedding)',
      ),
      new StageBench(await open(ranges[1].layerStart, ranges[1].layerEnd), 'middle of 4'),
      new StageBench(
        await open(ranges[3].layerStart, ranges[3].layerEnd),
        'last of 4 (norm + LM head)',
      ),
      new StageBench(await open(0, config.numLayers), 'whole model'),
    ];
    const vsN: Row[] = [];
    for (const s of stages) {
      vsN.push(...(await s.time(NEW_POSITIONS.map((n) => ({ n, past: PAST_FOR_N_SWEEP })))));
    }
    const vsPast: Row[] = [];
    for (const s of [stages[1], stages[3]]) {
      vsPast.push(
        ...(await s.time(PASTS.flatMap((past) => N_FOR_PAST_SWEEP.map((n) => ({ n, past }))))),
      );
    }
    // One case per time() call: its repeats run back to back (header, "Decode step").
    const decodeStep: Row[] = [];
    for (const s of stages) {
      for (const past of DECODE_PASTS) decodeStep.push(...(await s.time([{ n: 1, past }])));
    }
    await Promise.all(stages.map((s) => s.shard.close()));

    const one = new StageBench(await open(1, 2), 'one layer (middle)');
    const overhead = await one.time([0, 256].map((past) => ({ n: 1, past })));
    await one.shard.close();

    const meta = {
      date: new Date().toISOString(),
      model: source,
      dims: {
        layers: config.numLayers,
        hidden: config.hiddenSize,
        heads: config.numHeads,
        kvHeads: config.numKvHeads,
        intermediate: config.intermediateSize,
        vocab: config.vocabSize,
      },
      shardRanges: ranges,
      executionProvider: 'cpu',
      intraOpThreads: THREADS,
      repeats: REPEATS,
      cpu: os.cpus()[0]?.model ?? 'unknown',
      cores: os.cpus().length,
      // Other work on the machine shows up in the p90 column; the 1-minute load at the end.
      loadAverage1m: Number(os.loadavg()[0].toFixed(2)),
      node: process.version,
    };
    console.log(`# libs/model benchmark\n\n${JSON.stringify(meta, null, 2)}\n`);
    console.log(
      table(vsN, `Forward time vs new positions (tree layer on a past of ${PAST_FOR_N_SWEEP})`) +
        '\n',
    );
    console.log(table(vsPast, 'Forward time vs past length') + '\n');
    console.log(
      table(
        decodeStep,
        'Decode step: one new row per call, back to back (target: whole model <= 2.0 ms)',
      ) + '\n',
    );
    console.log(table(overhead, 'Per-call overhead: one position, one layer') + '\n');
    await mkdir(path.join(ROOT, 'bench', 'results'), { recursive: true });
    await writeFile(
      path.resolve(ROOT, args.out),
      JSON.stringify(
        { meta, vsNewPositions: vsN, vsPast, decodeStep, perCallOverhead: overhead, joint },
        null,
        2,
      ) + '\n',
    );
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

await main();
