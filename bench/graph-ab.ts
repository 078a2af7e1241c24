// A/B benchmark of libs/model's ONNX graph (npm run bench:graph -- --base <git ref>): the stage
// graph this checkout builds against the one a base commit built, on the demo target's weights,
// both run alternately in one process (A, B, B, A, ...) so a shared host's drift, which moves
// separate runs by ±30% here, falls on both alike. Per case (layer range, new rows, past
// length): the median process CPU per call of each, their ratio, and the largest difference
// between their outputs (the hidden states or logits). Prints a markdown table and writes
// bench/results/graph-ab.json.
//
// The base graph is built from the base commit's own graph builder: a detached git worktree
// under .cache/graph-ab/<commit> (inside the repository, so its imports resolve to this
// checkout's node_modules), its libs/model compiled there. Inputs are fed as each graph
// declares them (rank of the cache inputs read from the session), so graphs whose layouts
// differ compare. One runtime thread, as the stage nodes run.
import { execFileSync } from 'node:child_process';
import { access, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

import { Checkpoint } from '@pipedec/model';
import { buildStageGraph, GRAPH_VERSION } from '../libs/model/dist/onnx-graph.js';
import { RuntimeSession, type Feed } from '../libs/model/dist/onnx-runtime.js';
import { quantile } from './load-client.js';

type BuildStageGraph = typeof buildStageGraph;

const ROOT = path.resolve(import.meta.dirname, '..');
const DEMO_TARGET = path.join(ROOT, 'models', 'demo-target');

const { values: args } = parseArgs({
  options: {
    base: { type: 'string', default: 'HEAD~1' },
    repeats: { type: 'string', default: '300' },
    out: { type: 'string', default: path.join(ROOT, 'bench', 'results', 'graph-ab.json') },
  },
});
const REPEATS = Number(args.repeats);
const WARM = Math.min(40, Math.floor(REPEATS / 5)); // first calls of each, not counted

interface Case {
  label: string;
  layerStart: number;
  layerEnd: number;
  n: number;
  past: number;
}
const PASTS = [64, 128, 256, 512, 960];
const CASES: Case[] = [
  ...PASTS.flatMap((past) =>
    [1, 16].map((n) => ({ label: 'whole model', layerStart: 0, layerEnd: 16, n, past })),
  ),
  ...[1, 4, 16].map((n) => ({ label: 'middle of 4', layerStart: 4, layerEnd: 8, n, past: 256 })),
  // Batched calls (#16): R requests' caches gathered into one past, R x 4 new rows.
  ...[4, 8].map((r) => ({
    label: `middle of 4, ${r} requests batched`,
    layerStart: 4,
    layerEnd: 8,
    n: 4 * r,
    past: 256 * r,
  })),
];

/** A detached worktree of `ref` with libs/model compiled; returns its graph builder. */
async function baseBuilder(ref: string): Promise<{ commit: string; build: BuildStageGraph }> {
  const git = (...a: string[]) => execFileSync('git', a, { cwd: ROOT, encoding: 'utf8' }).trim();
  const commit = git('rev-parse', '--verify', `${ref}^{commit}`);
  const dir = path.join(ROOT, '.cache', 'graph-ab', commit);
  const built = path.join(dir, 'libs', 'model', 'dist', 'onnx-graph.js');
  try {
    await access(built);
  } catch {
    await rm(dir, { recursive: true, force: true });
    git('worktree', 'prune');
    await mkdir(path.dirname(dir), { recursive: true });
    git('worktree', 'add', '--detach', '--force', dir, commit);
    execFileSync(path.join(ROOT, 'node_modules', '.bin', 'tsc'), ['-b', 'libs/model'], {
      cwd: dir,
      stdio: 'inherit',
    });
  }
  const mod = (await import(built)) as { buildStageGraph: BuildStageGraph };
  return { commit, build: mod.buildStageGraph };
}

interface Graph {
  session: RuntimeSession;
  output: string;
  fetches: string[];
  /** Each input's declared rank (graphs differ: v7 gave the cache a leading 1, v9 every input b). */
  rank: (input: string) => number | undefined;
}

async function open(
  build: BuildStageGraph,
  ckpt: Checkpoint,
  c: Case,
  tmp: string,
): Promise<Graph> {
  const dir = await mkdtemp(path.join(tmp, 'g-'));
  await build(ckpt, c.layerStart, c.layerEnd, dir);
  const session = await RuntimeSession.create(path.join(dir, 'model.onnx'), {
    provider: 'cpu',
    intraOpThreads: 1,
  });
  const output = c.layerEnd === ckpt.config.numLayers ? 'logits' : 'hidden_out';
  const fetches = [...session.outputNames]; // what a stage fetches: its output and the new K/V
  const rank = (input: string) => session.inputDims(input)?.length;
  return { session, output, fetches, rank };
}

/** The same random inputs for both graphs, each cache shaped as its graph declares. */
function feeds(
  ckpt: Checkpoint,
  c: Case,
  ranks: ((input: string) => number | undefined)[],
): Record<string, Feed>[] {
  const cfg = ckpt.config;
  const { n, past } = c;
  const rnd = (len: number) => Float32Array.from({ length: len }, () => Math.random() - 0.5);
  const common: Record<string, Feed> = {};
  if (c.layerStart === 0) {
    const ids = Int32Array.from({ length: n }, (_, i) => 10 + i);
    common.input_ids = { type: 'int32', data: ids, dims: [n] };
  } else {
    common.hidden_in = {
      type: 'float32',
      data: rnd(n * cfg.hiddenSize),
      dims: [n, cfg.hiddenSize],
    };
  }
  const positions = Int32Array.from({ length: n }, (_, i) => (past + i) % cfg.maxPositions);
  common.position_ids = { type: 'int32', data: positions, dims: [n] };
  common.mask_cache = { type: 'float32', data: new Float32Array(n * past), dims: [n, past] };
  const maskNew = new Float32Array(n * n);
  for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) maskNew[i * n + j] = -1e9;
  common.mask_new = { type: 'float32', data: maskNew, dims: [n, n] };
  for (let j = 0; j < 2 * (c.layerEnd - c.layerStart); j++) {
    const name = `past_${j % 2 ? 'value' : 'key'}_${j >> 1}`;
    const data = rnd(cfg.numKvHeads * past * cfg.headDim);
    common[name] = { type: 'float32', data, dims: [cfg.numKvHeads, past, cfg.headDim] };
  }
  // The same data for each graph, with leading 1s up to the rank it declares.
  return ranks.map((rank) =>
    Object.fromEntries(
      Object.entries(common).map(([name, f]) => {
        const dims = [...f.dims];
        while (dims.length < (rank(name) ?? dims.length)) dims.unshift(1);
        return [name, { ...f, dims }];
      }),
    ),
  );
}

async function main(): Promise<void> {
  const base = await baseBuilder(args.base);
  const ckpt = await Checkpoint.open(DEMO_TARGET);
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'graph-ab-'));
  const loadStart = os.loadavg()[0];
  const rows = [];
  try {
    for (const c of CASES) {
      const graphs = [
        await open(base.build, ckpt, c, tmp),
        await open(buildStageGraph, ckpt, c, tmp),
      ];
      const inputs = feeds(
        ckpt,
        c,
        graphs.map((g) => g.rank),
      );
      const cpu: number[][] = [[], []];
      const last: Float32Array[] = [];
      for (let r = 0; r < REPEATS; r++) {
        for (const i of r % 2 ? [0, 1] : [1, 0]) {
          const g = graphs[i];
          const start = process.cpuUsage();
          const out = await g.session.run(inputs[i], g.fetches);
          const used = process.cpuUsage(start);
          if (r >= WARM) cpu[i].push((used.user + used.system) / 1000);
          last[i] = out[g.output] as Float32Array;
        }
      }
      let maxDiff = 0;
      for (let k = 0; k < last[0].length; k++) {
        const d = Math.abs(last[0][k] - last[1][k]);
        if (Number.isNaN(d)) {
          maxDiff = NaN; // a non-finite output in either graph
          break;
        }
        maxDiff = Math.max(maxDiff, d);
      }
      const [baseMs, headMs] = cpu.map((xs) => quantile(xs, 0.5));
      rows.push({ ...c, baseCpuMs: baseMs, headCpuMs: headMs, ratio: headMs / baseMs, maxDiff });
      await Promise.all(graphs.map((g) => g.session.release()));
    }
  } finally {
    await ckpt.close();
    await rm(tmp, { recursive: true, force: true });
  }
  const meta = {
    date: new Date().toISOString(),
    base: { ref: args.base, commit: base.commit },
    head: { graphVersion: GRAPH_VERSION },
    repeats: REPEATS,
    warmupCalls: WARM,
    intraOpThreads: 1,
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cores: os.cpus().length,
    loadAverage1m: { start: loadStart, end: os.loadavg()[0] },
  };
  const lines = [
    `# bench:graph: this checkout's graph (v${GRAPH_VERSION}) against ${args.base} (${base.commit.slice(0, 10)})`,
    '',
    `${REPEATS} calls of each, alternated, the first ${WARM} not counted; CPU per call, medians; load ${loadStart.toFixed(2)} at start, ${meta.loadAverage1m.end.toFixed(2)} at the end.`,
    '',
    '| stage | layers | new rows | past | base CPU ms | this CPU ms | this / base | max abs output diff |',
    '|---|---:|---:|---:|---:|---:|---:|---:|',
    ...rows.map(
      (r) =>
        `| ${r.label} | ${r.layerEnd - r.layerStart} | ${r.n} | ${r.past} | ${r.baseCpuMs.toFixed(3)} | ${r.headCpuMs.toFixed(3)} | ${r.ratio.toFixed(3)} | ${r.maxDiff.toExponential(1)} |`,
    ),
  ];
  console.log(lines.join('\n'));
  await mkdir(path.dirname(args.out), { recursive: true });
  await writeFile(args.out, JSON.stringify({ meta, rows }, null, 2) + '\n');
}

await main();
