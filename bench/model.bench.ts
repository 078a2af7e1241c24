// Benchmark of libs/model's ONNX stages (npm run bench:model): forward time versus the number
// of new positions and versus past length, on the demo target's 4-stage shard sizes, plus the
// runtime's per-call overhead (one position, one layer). Prints markdown tables and writes
// bench/results/model.json. Medians over repeated runs; one runtime thread by default, since
// the development machines are shared (pass --threads N to change it).
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
const DEMO_TARGET = path.join(ROOT, 'models', 'target');

const { values: args } = parseArgs({
  options: {
    threads: { type: 'string', default: '1' },
    repeats: { type: 'string', default: '25' },
  },
});
const THREADS = Number(args.threads);
const REPEATS = Number(args.repeats);
const NEW_POSITIONS = [1, 2, 4, 8, 16, 32];
const PAST_FOR_N_SWEEP = 256;
const PASTS = [0, 128, 256, 512, 960];
const N_FOR_PAST_SWEEP = [1, 16];

interface Row {
  stage: string;
  layers: number;
  n: number;
  past: number;
  medianMs: number;
  p90Ms: number;
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
    return { dir: DEMO_TARGET, source: 'models/target (demo target)' };
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
  return { dir, source: 'random model with the demo target dimensions (models/target absent)' };
}

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

class StageBench {
  private nextId = 0;
  private lastCommitted = -1;
  private committed = 0;

  constructor(
    readonly shard: OnnxShard,
    readonly label: string,
    private readonly seq: string,
  ) {}

  private batch(n: number, parent: number, chain: boolean): TreeBatch {
    const ids = Int32Array.from({ length: n }, () => this.nextId++);
    const b: TreeBatch = {
      nodeIds: ids,
      // A chain for prefill; for timing, a tree layer: n siblings under the last committed row.
      parentIds: Int32Array.from(ids, (id, i) => (chain && i > 0 ? id - 1 : parent)),
      positions: Int32Array.from(ids, (_, i) => this.committed + (chain ? i : 0)),
    };
    if (this.shard.isFirst) b.tokens = Int32Array.from(ids, (id) => (id * 7919) % 4000);
    else
      b.hidden = Float32Array.from({ length: n * this.shard.info.hiddenSize }, (_, k) =>
        Math.sin(k),
      );
    return b;
  }

  /** Grows the committed prefix to `past` rows. */
  async prefill(past: number): Promise<void> {
    this.shard.release(this.seq);
    this.committed = 0;
    this.lastCommitted = -1;
    while (this.committed < past) {
      const n = Math.min(64, past - this.committed);
      const b = this.batch(n, this.lastCommitted, true);
      await this.shard.forward(this.seq, b);
      this.shard.commit(this.seq, Array.from(b.nodeIds));
      this.committed += n;
      this.lastCommitted = b.nodeIds[n - 1];
    }
  }

  /** Median time of a tree layer of n rows on the current prefix (pruned after each call). */
  async time(n: number): Promise<{ medianMs: number; p90Ms: number }> {
    const samples: number[] = [];
    for (let r = 0; r < REPEATS + 3; r++) {
      const b = this.batch(n, this.lastCommitted, false);
      const t0 = process.hrtime.bigint();
      await this.shard.forward(this.seq, b);
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      this.shard.prune(this.seq, new Set());
      if (r >= 3) samples.push(ms); // the first calls warm the runtime's allocations
    }
    samples.sort((a, b) => a - b);
    return { medianMs: quantile(samples, 0.5), p90Ms: quantile(samples, 0.9) };
  }
}

function table(rows: Row[], title: string): string {
  const lines = [
    `### ${title}`,
    '',
    '| stage | layers | new positions | past | median ms | p90 ms |',
    '|---|---:|---:|---:|---:|---:|',
  ];
  for (const r of rows) {
    lines.push(
      `| ${r.stage} | ${r.layers} | ${r.n} | ${r.past} | ${r.medianMs.toFixed(3)} | ${r.p90Ms.toFixed(3)} |`,
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
    const stages = [
      new StageBench(
        await open(ranges[0].layerStart, ranges[0].layerEnd),
        'first of 4 (embedding)',
        's',
      ),
      new StageBench(await open(ranges[1].layerStart, ranges[1].layerEnd), 'middle of 4', 's'),
      new StageBench(
        await open(ranges[3].layerStart, ranges[3].layerEnd),
        'last of 4 (norm + LM head)',
        's',
      ),
      new StageBench(await open(0, config.numLayers), 'whole model', 's'),
    ];
    const layersOf = (s: StageBench) => s.shard.layerEnd - s.shard.layerStart;

    const vsN: Row[] = [];
    for (const s of stages) {
      await s.prefill(PAST_FOR_N_SWEEP);
      for (const n of NEW_POSITIONS) {
        vsN.push({
          stage: s.label,
          layers: layersOf(s),
          n,
          past: PAST_FOR_N_SWEEP,
          ...(await s.time(n)),
        });
      }
    }
    const vsPast: Row[] = [];
    for (const s of [stages[1], stages[3]]) {
      for (const past of PASTS) {
        await s.prefill(past);
        for (const n of N_FOR_PAST_SWEEP) {
          vsPast.push({ stage: s.label, layers: layersOf(s), n, past, ...(await s.time(n)) });
        }
      }
    }
    await Promise.all(stages.map((s) => s.shard.close()));

    const one = new StageBench(await open(1, 2), 'one layer (middle)', 'o');
    const overhead: Row[] = [];
    for (const past of [0, 256]) {
      await one.prefill(past);
      overhead.push({ stage: one.label, layers: 1, n: 1, past, ...(await one.time(1)) });
    }
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
      node: process.version,
    };
    console.log(`# libs/model benchmark\n\n${JSON.stringify(meta, null, 2)}\n`);
    console.log(
      table(vsN, `Forward time vs new positions (tree layer on a past of ${PAST_FOR_N_SWEEP})`) +
        '\n',
    );
    console.log(table(vsPast, 'Forward time vs past length') + '\n');
    console.log(table(overhead, 'Per-call overhead: one position, one layer') + '\n');
    await mkdir(path.join(ROOT, 'bench', 'results'), { recursive: true });
    await writeFile(
      path.join(ROOT, 'bench', 'results', 'model.json'),
      JSON.stringify({ meta, vsNewPositions: vsN, vsPast, perCallOverhead: overhead }, null, 2) +
        '\n',
    );
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

await main();
