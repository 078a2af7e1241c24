// Benchmark of one draft call (npm run bench:draft): DraftRunner.propose on the demo draft,
// before and after issue #15's top-k in the graph. "js": the draft's graph without proposal
// outputs, full logits to JavaScript, which scans the vocabulary for top-k, log-sum-exp and
// the seeded draw (as before). "graph": the graph's TopK and ReduceLogSumExp, JavaScript reads
// k + 2 numbers per row. Both run in the same process, interleaved call by call (the order
// alternating per round), one runtime thread, so process CPU time is the call's own work;
// medians. The machine is shared: the 1-minute load average is recorded before and after.
//
// It also checks, at every position of the held-out prompts, that both paths propose the same
// children (the graph path's seeded draw is chooseToken's, computed from the top-k: 100% is
// the only right answer).
//
// Overlap (issue #15: "the draft runs beside stage 0"): stage 0 of a 4-stage demo target and
// the draft on a 4-row layer, wall time of each alone, of both in flight on this thread (the
// head today: the runtime runs one after the other), and of both with the draft on a worker
// thread (bench/draft-worker.mjs, its own session). Prints markdown tables and writes
// bench/results/draft.json.
import { once } from 'node:events';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';

import {
  type DraftHost,
  type DraftRow,
  DraftRunner,
  DRAW_POOL,
  NUCLEUS_POOL,
  type SamplingParams,
} from '@pipedec/engine';
import { loadTokenizer, OnnxShard, splitLayers, type TreeBatch } from '@pipedec/model';

const ROOT = path.resolve(import.meta.dirname, '..');
const DRAFT = path.join(ROOT, 'models', 'demo-draft');
const TARGET = path.join(ROOT, 'models', 'demo-target'); // its tokenizer, shared by the draft

const { values: args } = parseArgs({
  options: {
    repeats: { type: 'string', default: '200' },
    past: { type: 'string', default: '64' },
  },
});
const REPEATS = Number(args.repeats);
const PAST = Number(args.past);
const BRANCHING = 4;
const SCORE_T = 0.5; // the service's draftScoreTemperature
const ROWS = [1, 4, 16];
const MODES: [string, SamplingParams][] = [
  ['greedy', { temperature: 0, topP: 1, seed: 0 }],
  ['T 0.8', { temperature: 0.8, topP: 1, seed: 7 }],
  ['T 0.8, top-p 0.95', { temperature: 0.8, topP: 0.95, seed: 7 }],
];
const PATHS = ['js', 'graph'] as const;
type PathName = (typeof PATHS)[number];

function host(requestId: string, sampling: SamplingParams): DraftHost {
  return {
    prompt: [],
    sampling,
    request: { requestId },
    timeDraft: (_positions, work) => work(),
    timeDraftSync: (work) => work(),
  };
}

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

async function promptTokens(): Promise<number[][]> {
  const tokenizer = await loadTokenizer(TARGET);
  const out: number[][] = [];
  for (const set of ['scripture', 'quotes', 'code']) {
    const lines = (await readFile(path.join(ROOT, 'models', 'prompts', `${set}.jsonl`), 'utf8'))
      .split('\n')
      .filter((l) => l.trim());
    for (const line of lines) {
      out.push(tokenizer.encode((JSON.parse(line) as { text: string }).text).slice(0, 256));
    }
  }
  return out.filter((p) => p.length > PAST);
}

const chainRows = (tokens: number[]): DraftRow[] =>
  tokens.map((token, i) => ({ id: i, parent: i - 1, position: i, token }));

interface Row {
  mode: string;
  rows: number;
  path: PathName;
  cpuMedianMs: number;
  wallMedianMs: number;
  wallP90Ms: number;
}

const OVERLAP_CASES = [
  'stage 0 alone',
  'draft alone, this thread',
  'draft alone, worker',
  'both in flight, one thread',
  'both in flight, draft on a worker',
] as const;

/** Wall time of stage 0 and the draft on one tree layer, alone and together (header). */
async function overlap(draft: OnnxShard, prompt: number[]) {
  const whole = await OnnxShard.open({ checkpointDir: TARGET, intraOpThreads: 1 });
  const layers = whole.info.numLayers;
  await whole.close();
  const stage0 = await OnnxShard.open({
    checkpointDir: TARGET,
    ...splitLayers(layers, 4)[0],
    intraOpThreads: 1,
  });
  const worker = new Worker(new URL('./draft-worker.mjs', import.meta.url), {
    workerData: { checkpointDir: DRAFT },
    execArgv: [], // not this process's --conditions=source: the worker loads the built library
  });
  await once(worker, 'message');
  const ask = (m: object) =>
    new Promise<void>((resolve, reject) => {
      worker.once('message', (r: { error?: string }) =>
        r.error ? reject(new Error(r.error)) : resolve(),
      );
      worker.postMessage(m);
    });
  const proposals = { k: BRANCHING, lseScales: Float32Array.of(1 / SCORE_T), logits: false };
  const ids = Int32Array.from({ length: PAST }, (_, i) => i);
  const prefix: TreeBatch = {
    nodeIds: ids,
    parentIds: ids.map((i) => i - 1),
    positions: ids,
    tokens: Int32Array.from(prompt.slice(0, PAST)),
  };
  const layer: TreeBatch = {
    nodeIds: Int32Array.from({ length: 4 }, (_, i) => 10_000 + i),
    parentIds: new Int32Array(4).fill(PAST - 1),
    positions: new Int32Array(4).fill(PAST),
    tokens: Int32Array.from(prompt.slice(PAST, PAST + 4)),
  };
  await stage0.forward('o', prefix);
  stage0.commit('o', [...ids]);
  await draft.forward('o', { ...prefix, proposals });
  draft.commit('o', [...ids]);
  await ask({ op: 'forward', seq: 'o', batch: { ...prefix, proposals } });
  worker.postMessage({ op: 'commit', seq: 'o', ids: [...ids] });

  const s0 = async () => {
    await stage0.forward('o', layer);
    stage0.prune('o', new Set());
  };
  const here = async () => {
    await draft.forward('o', { ...layer, proposals });
    draft.prune('o', new Set());
  };
  const there = async () => {
    await ask({ op: 'forward', seq: 'o', batch: { ...layer, proposals } });
    worker.postMessage({ op: 'prune', seq: 'o', keep: [] });
  };
  const run: Record<(typeof OVERLAP_CASES)[number], () => Promise<unknown>> = {
    'stage 0 alone': s0,
    'draft alone, this thread': here,
    'draft alone, worker': there,
    'both in flight, one thread': () => Promise.all([s0(), here()]),
    'both in flight, draft on a worker': () => Promise.all([s0(), there()]),
  };
  const wall = new Map<string, number[]>(OVERLAP_CASES.map((c) => [c, []]));
  for (let r = 0; r < REPEATS + 5; r++) {
    const order = OVERLAP_CASES.map((_, i) => OVERLAP_CASES[(i + r) % OVERLAP_CASES.length]);
    for (const c of order) {
      const t0 = performance.now();
      await run[c]();
      if (r >= 5) wall.get(c)!.push(performance.now() - t0);
    }
  }
  await ask({ op: 'forward', seq: 'o', batch: { ...layer, proposals } }); // drains the queue
  worker.postMessage({ op: 'close' });
  await once(worker, 'exit');
  draft.release('o');
  await stage0.close();
  return OVERLAP_CASES.map((c) => {
    const w = wall.get(c)!.sort((a, b) => a - b);
    return { case: c, wallMedianMs: quantile(w, 0.5), wallP90Ms: quantile(w, 0.9) };
  });
}

async function main(): Promise<void> {
  const open = (proposals: boolean) =>
    OnnxShard.open({ checkpointDir: DRAFT, intraOpThreads: 1, proposals });
  const shards: Record<PathName, OnnxShard> = { js: await open(false), graph: await open(true) };
  const prompts = await promptTokens();
  const loadBefore = os.loadavg()[0];

  // Call cost: a tree layer of `rows` siblings below a PAST-token prefix, pruned after each call.
  const results: Row[] = [];
  for (const [mode, sampling] of MODES) {
    const drafters = {} as Record<PathName, DraftRunner>;
    for (const p of PATHS) {
      drafters[p] = new DraftRunner(shards[p], host(`${mode}-${p}`, sampling), BRANCHING, SCORE_T);
      await drafters[p].propose(chainRows(prompts[0].slice(0, PAST)), true);
      drafters[p].commit(Array.from({ length: PAST }, (_, i) => i));
    }
    for (const n of ROWS) {
      const layer: DraftRow[] = Array.from({ length: n }, (_, i) => ({
        id: 10_000 + i,
        parent: PAST - 1,
        position: PAST,
        token: prompts[1][i],
      }));
      const cpu: Record<PathName, number[]> = { js: [], graph: [] };
      const wall: Record<PathName, number[]> = { js: [], graph: [] };
      for (let r = 0; r < REPEATS + 5; r++) {
        for (const p of r % 2 === 0 ? PATHS : [...PATHS].reverse()) {
          const c0 = process.cpuUsage();
          const t0 = performance.now();
          await drafters[p].propose(layer);
          const t1 = performance.now();
          const c = process.cpuUsage(c0);
          drafters[p].prune(new Set());
          if (r >= 5) {
            cpu[p].push((c.user + c.system) / 1000);
            wall[p].push(t1 - t0);
          }
        }
      }
      for (const p of PATHS) {
        const w = wall[p].sort((a, b) => a - b);
        results.push({
          mode,
          rows: n,
          path: p,
          cpuMedianMs: quantile(
            cpu[p].sort((a, b) => a - b),
            0.5,
          ),
          wallMedianMs: quantile(w, 0.5),
          wallP90Ms: quantile(w, 0.9),
        });
      }
    }
    for (const p of PATHS) drafters[p].release();
  }

  const overlapRows = await overlap(shards.graph, prompts[0]);

  // Agreement: every position of every prompt, both paths.
  const agreement: { mode: string; positions: number; sameDraw: number; sameChildren: number }[] =
    [];
  for (const [mode, sampling] of MODES) {
    let positions = 0;
    let sameDraw = 0;
    let sameChildren = 0;
    for (const [i, prompt] of prompts.entries()) {
      const got = {} as Record<PathName, { candidates: { token: number }[] }[]>;
      for (const p of PATHS) {
        const d = new DraftRunner(shards[p], host(`agree-${mode}-${i}-${p}`, sampling), BRANCHING);
        got[p] = await d.propose(chainRows(prompt));
        d.release();
      }
      for (let j = 0; j < prompt.length; j++) {
        const a = got.js[j].candidates.map((c) => c.token);
        const b = got.graph[j].candidates.map((c) => c.token);
        positions++;
        if (a[0] === b[0]) sameDraw++;
        if (a.join() === b.join()) sameChildren++;
      }
    }
    agreement.push({ mode, positions, sameDraw, sameChildren });
  }
  const loadAfter = os.loadavg()[0];
  for (const s of Object.values(shards)) await s.close();

  const meta = {
    date: new Date().toISOString(),
    model: 'models/demo-draft',
    executionProvider: 'cpu',
    intraOpThreads: 1,
    repeats: REPEATS,
    past: PAST,
    branching: BRANCHING,
    scoreTemperature: SCORE_T,
    drawPool: DRAW_POOL,
    nucleusPool: NUCLEUS_POOL,
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cores: os.cpus().length,
    loadAverage1m: { before: Number(loadBefore.toFixed(2)), after: Number(loadAfter.toFixed(2)) },
    node: process.version,
  };
  const lines = [
    `# Draft call benchmark\n\n${JSON.stringify(meta, null, 2)}\n`,
    '### One draft call (propose: forward + proposals), js = before, graph = after',
    '',
    '| mode | rows | js CPU ms | graph CPU ms | CPU saved | js wall ms | graph wall ms | js p90 | graph p90 |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const [mode] of MODES) {
    for (const n of ROWS) {
      const js = results.find((r) => r.mode === mode && r.rows === n && r.path === 'js')!;
      const g = results.find((r) => r.mode === mode && r.rows === n && r.path === 'graph')!;
      lines.push(
        `| ${mode} | ${n} | ${js.cpuMedianMs.toFixed(3)} | ${g.cpuMedianMs.toFixed(3)} | ${(100 * (1 - g.cpuMedianMs / js.cpuMedianMs)).toFixed(0)}% | ${js.wallMedianMs.toFixed(3)} | ${g.wallMedianMs.toFixed(3)} | ${js.wallP90Ms.toFixed(3)} | ${g.wallP90Ms.toFixed(3)} |`,
      );
    }
  }
  lines.push(
    '',
    '### Stage 0 (4-stage demo target) and the draft on a 4-row layer, wall ms',
    '',
    '| case | median | p90 |',
    '|---|---:|---:|',
    ...overlapRows.map(
      (o) => `| ${o.case} | ${o.wallMedianMs.toFixed(3)} | ${o.wallP90Ms.toFixed(3)} |`,
    ),
  );
  lines.push(
    '',
    `### Proposals of both paths at every prompt position (sampling: graph top ${DRAW_POOL}, ${NUCLEUS_POOL} with top-p)`,
    '',
    '| mode | positions | same draw | same children |',
    '|---|---:|---:|---:|',
  );
  for (const a of agreement) {
    lines.push(
      `| ${a.mode} | ${a.positions} | ${((100 * a.sameDraw) / a.positions).toFixed(2)}% | ${((100 * a.sameChildren) / a.positions).toFixed(2)}% |`,
    );
  }
  console.log(lines.join('\n') + '\n');
  await mkdir(path.join(ROOT, 'bench', 'results'), { recursive: true });
  await writeFile(
    path.join(ROOT, 'bench', 'results', 'draft.json'),
    JSON.stringify(
      { meta, calls: results, overlap: overlapRows, drawAgreement: agreement },
      null,
      2,
    ) + '\n',
  );
}

await main();
