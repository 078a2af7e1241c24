// Benchmark of libs/engine (npm run bench:engine): PP, STPP and PipeDec on the demo pair, in
// the simulator (real target and draft computation, lockstep timesteps, time from a stated
// cost model). For S = 4, 8, 14 stages and W = 1, 4, 8, 16, on each held-out prompt set, with
// greedy decoding: timesteps per token (the hardware-independent metric), the speedups, hit
// rate, refills per 100 tokens, simulated ms per token, and the engine's own work per
// timestep. STPP is swept over depth / branching / budget and its best configuration (fewest
// timesteps per token) is the one compared. Prints markdown tables and writes
// bench/results/engine.json.
import { access, mkdir, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

import {
  type Acceptance,
  type CostModel,
  defaultBranching,
  generatePipeDec,
  generatePP,
  generateSTPP,
  type GenerateResult,
  PAPER_A100_COST,
  type SamplingParams,
  SimulatedPipeline,
  StageWorker,
  type StppOptions,
  type TimestepLoad,
  timestepMs,
} from '@pipedec/engine';
import {
  Checkpoint,
  type LayerShard,
  loadTokenizer,
  OnnxShard,
  splitLayers,
  type TreeBatch,
} from '@pipedec/model';

const ROOT = path.resolve(import.meta.dirname, '..');

const { values: args } = parseArgs({
  options: {
    target: { type: 'string' },
    draft: { type: 'string' },
    stages: { type: 'string', default: '4,8,14' },
    widths: { type: 'string', default: '1,4,8,16' },
    sets: { type: 'string', default: '' }, // default: every models/prompts/*.jsonl
    prompts: { type: 'string', default: '6' }, // per set
    'prompt-tokens': { type: 'string', default: '64' },
    tokens: { type: 'string', default: '40' },
    threads: { type: 'string', default: '1' },
    out: { type: 'string', default: path.join(ROOT, 'bench', 'results', 'engine.json') },
    // Beyond the paper: "k,r;k,r" = variants with k tree layers per packet and refill packets
    // of up to r layers (r = S: one packet refills the whole pipeline), drafted serially;
    // "k,r,m" = drafting ahead on a tree m times wider than the stages', k layers per tick
    // drafted while the stages compute, refills of up to r x W nodes from that tree; '' = off.
    beyond: { type: 'string', default: '1,14;2,2,2' },
    // PipeDec's top-k per node; '' = defaultBranching: min(W, 4), min(W, 8) in distribution mode.
    branching: { type: 'string', default: '' },
    // Temperature of the draft's scores when PipeDec and STPP choose a tree's best nodes.
    'score-temperature': { type: 'string', default: '1' },
    // STPP shapes to sweep, "D/k/M;D/k/M" (depth, top-k per node, node budget); '' = the
    // default grid.
    'stpp-grid': { type: 'string', default: '' },
    'beyond-stages': { type: 'string', default: '14' },
    // Sampled rows: PP and PipeDec at these temperatures (seed = prompt index, top-p 1), at
    // the sampled stage counts and width, beside a greedy row of the same shape; '' = off.
    temperatures: { type: 'string', default: '0.7,1' },
    'sampled-stages': { type: 'string', default: '8,14' },
    'sampled-width': { type: 'string', default: '16' },
    // Acceptance modes of the sampled rows (SamplingParams.acceptance).
    acceptance: { type: 'string', default: 'exact,distribution' },
  },
});

const STAGES = args.stages ? args.stages.split(',').map(Number) : []; // '' = sampled rows only
const WIDTHS = args.widths.split(',').map(Number);
const PROMPTS_PER_SET = Number(args.prompts);
const PROMPT_TOKENS = Number(args['prompt-tokens']);
const MAX_TOKENS = Number(args.tokens);
const THREADS = Number(args.threads);
interface Variant {
  layersPerStep: number;
  /** Serial refills: most layers per refill packet. Drafting ahead: refill budget in units of W. */
  refillLayers: number;
  /** Drafting ahead: the draft's tree is this many times wider than the stages' (0: off). */
  draftWidthFactor: number;
}
const BEYOND: Variant[] = args.beyond
  ? args.beyond.split(';').map((v) => {
      const [layersPerStep, refillLayers, draftWidthFactor = 0] = v.split(',').map(Number);
      return { layersPerStep, refillLayers, draftWidthFactor };
    })
  : [];
const variantOptions = (v: Variant, W: number) =>
  v.draftWidthFactor > 0
    ? {
        layersPerStep: v.layersPerStep,
        draftWidth: v.draftWidthFactor * W,
        refillBudget: v.refillLayers * W,
      }
    : { layersPerStep: v.layersPerStep, refillLayers: v.refillLayers };
const variantName = (v: Variant) =>
  v.draftWidthFactor > 0
    ? `drafting ahead on a ${v.draftWidthFactor}x wider tree, ${v.layersPerStep} layer(s) per packet, refills of up to ${v.refillLayers}W nodes from it`
    : `${v.layersPerStep} tree layer(s) per packet, refill packets of up to ${v.refillLayers} layers (drafted serially)`;
const BEYOND_STAGES = new Set(args['beyond-stages'].split(',').map(Number));
const PAPER = { pp: [4.46, 7.79], stpp: [2.2, 2.69] };
/** STPP shapes swept: depth D, top-k per node, node budget M. */
const STPP_GRID: StppOptions[] = args['stpp-grid']
  ? args['stpp-grid'].split(';').map((v) => {
      const [depth, branching, budget] = v.split('/').map(Number);
      return { depth, branching, budget };
    })
  : [
      { depth: 4, branching: 1, budget: 4 },
      { depth: 8, branching: 1, budget: 8 },
      { depth: 6, branching: 2, budget: 32 },
      { depth: 4, branching: 4, budget: 32 },
      { depth: 8, branching: 4, budget: 64 },
    ];
/** PipeDec's top-k per node at width W. */
const SCORE_T = Number(args['score-temperature']);
const branchingFor = (W: number, sampling?: SamplingParams) =>
  args.branching ? Number(args.branching) : defaultBranching(W, sampling);

async function exists(p: string): Promise<boolean> {
  return access(p).then(
    () => true,
    () => false,
  );
}

async function firstExisting(candidates: string[]): Promise<string> {
  for (const c of candidates) if (await exists(path.join(c, 'config.json'))) return c;
  throw new Error(`no checkpoint in any of: ${candidates.join(', ')}`);
}

const targetDir =
  args.target ??
  (await firstExisting([
    path.join(ROOT, 'models', 'demo-target'),
    path.join(ROOT, 'models', 'target'),
  ]));
const draftDir =
  args.draft ??
  (await firstExisting([
    path.join(ROOT, 'models', 'demo-draft'),
    path.join(ROOT, 'models', 'draft'),
  ]));

const TARGET_LAYERS = await Checkpoint.open(targetDir).then(async (c) => {
  const n = c.config.numLayers;
  await c.close();
  return n;
});

const open = (checkpointDir: string, r?: { layerStart: number; layerEnd: number }) =>
  OnnxShard.open({ checkpointDir, ...r, intraOpThreads: THREADS });

// ---- prompts ---------------------------------------------------------------------------
const tokenizer = await loadTokenizer(targetDir);
const promptDir = path.join(ROOT, 'models', 'prompts');
const setNames = args.sets
  ? args.sets.split(',')
  : (await import('node:fs/promises').then((fs) => fs.readdir(promptDir)))
      .filter((f) => f.endsWith('.jsonl'))
      .map((f) => f.replace(/\.jsonl$/, ''))
      .sort();
const promptSets = new Map<string, number[][]>();
for (const name of setNames) {
  const lines = (await readFile(path.join(promptDir, `${name}.jsonl`), 'utf8'))
    .split('\n')
    .filter((l) => l.trim());
  const texts = lines.map((l) => (JSON.parse(l) as { text: string }).text);
  promptSets.set(
    name,
    texts.slice(0, PROMPTS_PER_SET).map((t) => tokenizer.encode(t).slice(0, PROMPT_TOKENS)),
  );
}

// ---- cost model calibration: the real ONNX shard on this machine ------------------------
async function medianMs(shard: LayerShard, n: number, past: number, repeats = 15): Promise<number> {
  const times: number[] = [];
  const hidden = shard.info.hiddenSize;
  const batch = (start: number, count: number): TreeBatch => ({
    nodeIds: Int32Array.from({ length: count }, (_, i) => start + i),
    parentIds: Int32Array.from({ length: count }, (_, i) => (i === 0 ? -1 : start + i - 1)),
    positions: Int32Array.from({ length: count }, (_, i) => start + i),
    tokens: shard.isFirst ? Int32Array.from({ length: count }, (_, i) => 10 + (i % 50)) : undefined,
    hidden: shard.isFirst ? undefined : new Float32Array(count * hidden).fill(0.01),
  });
  for (let r = 0; r < repeats + 2; r++) {
    const seq = `cal-${r}`;
    await shard.forward(seq, batch(0, past));
    shard.commit(
      seq,
      Array.from({ length: past }, (_, i) => i),
    );
    const rows = Int32Array.from({ length: n }, (_, i) => past + i);
    const t = performance.now();
    await shard.forward(seq, {
      nodeIds: rows,
      parentIds: new Int32Array(n).fill(-1), // n siblings: a tree layer
      positions: new Int32Array(n).fill(past),
      tokens: shard.isFirst ? new Int32Array(n).fill(7) : undefined,
      hidden: shard.isFirst ? undefined : new Float32Array(n * hidden).fill(0.01),
    });
    if (r >= 2) times.push(performance.now() - t);
    shard.release(seq);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}

async function calibrate(): Promise<CostModel> {
  const layers = TARGET_LAYERS;
  // The largest stage of a 14-stage split, with the LM head (the last stage is the slowest).
  const ranges = splitLayers(layers, Math.min(14, layers));
  const last = await open(targetDir, ranges[ranges.length - 1]);
  const t1 = await medianMs(last, 1, PROMPT_TOKENS);
  const t16 = await medianMs(last, 16, PROMPT_TOKENS);
  await last.close();
  const draft = await open(draftDir);
  const d1 = await medianMs(draft, 1, PROMPT_TOKENS);
  const d16 = await medianMs(draft, 16, PROMPT_TOKENS);
  await draft.close();
  const b = Math.max(0, (t16 - t1) / 15);
  const db = Math.max(0, (d16 - d1) / 15);
  return {
    name: `measured here: ONNX CPU, ${THREADS} thread(s), last of 14 stages`,
    stageFixedMs: t1 - b,
    stagePerPositionMs: b,
    hopMs: 0.12, // gRPC loopback round trip of a small message (docs/environment.md)
    draftFixedMs: d1 - db,
    draftPerPositionMs: db,
  };
}

// ---- runs ---------------------------------------------------------------------------------
interface Agg {
  decodeTimesteps: number;
  /** Tokens that came more than one timestep after the previous one (the pipeline refilled). */
  stalls: number;
  /** Draft forwards the stages waited for (STPP's drafting; PipeDec+'s extra layers). */
  decodeSerialDraftCalls: number;
  decodeTokens: number;
  committed: number;
  verifications: number;
  hits: number;
  refills: number;
  simMs: Record<string, number>; // cost model name -> decode ms
  engineMs: number;
  engineMedians: number[]; // per request: median controller ms per timestep
  engineP90s: number[];
  timesteps: number;
  tokens: number[][];
}

function emptyAgg(): Agg {
  return {
    decodeTimesteps: 0,
    stalls: 0,
    decodeSerialDraftCalls: 0,
    decodeTokens: 0,
    committed: 0,
    verifications: 0,
    hits: 0,
    refills: 0,
    simMs: {},
    engineMs: 0,
    engineMedians: [],
    engineP90s: [],
    timesteps: 0,
    tokens: [],
  };
}

let costs: CostModel[] = [];

function add(agg: Agg, res: GenerateResult, loads: TimestepLoad[]): void {
  const s = res.stats;
  agg.decodeTimesteps += s.timesteps - s.prefillTimesteps;
  for (const l of loads.slice(s.prefillTimesteps)) agg.decodeSerialDraftCalls += l.serialDraftCalls;
  agg.decodeTokens += s.committedTokens - 1;
  agg.committed += s.committedTokens;
  agg.verifications += s.verifications;
  agg.hits += s.hits;
  agg.refills += s.refills;
  agg.engineMs += s.engineMs;
  agg.engineMedians.push(s.engineMsMedian);
  agg.engineP90s.push(s.engineMsP90);
  agg.timesteps += s.timesteps;
  agg.tokens.push(res.tokens);
  for (const c of costs) {
    const ms = loads.slice(s.prefillTimesteps).reduce((t, l) => t + timestepMs(c, l), 0);
    agg.simMs[c.name] = (agg.simMs[c.name] ?? 0) + ms;
  }
}

type Runner = (
  pipeline: SimulatedPipeline,
  draft: ReturnType<SimulatedPipeline['meterDraft']>,
  prompt: number[],
  id: string,
) => Promise<GenerateResult>;

async function runSet(stages: LayerShard[], draft: LayerShard, prompts: number[][], run: Runner) {
  const agg = emptyAgg();
  for (const [i, prompt] of prompts.entries()) {
    const sim = new SimulatedPipeline(
      stages.map((s, k) => new StageWorker(s, k)),
      costs[0],
    );
    commitTimesteps = [];
    const res = await run(sim, sim.meterDraft(draft), prompt, `p${i}`);
    add(agg, res, sim.loads);
    agg.stalls += commitTimesteps.filter((t, j) => j > 0 && t - commitTimesteps[j - 1] > 1).length;
  }
  return agg;
}

/** Timesteps at which the run in progress committed its tokens. */
let commitTimesteps: number[] = [];
const request = (prompt: number[], requestId: string) => ({
  requestId,
  prompt,
  maxTokens: MAX_TOKENS,
  eosTokenIds: [], // fixed-length outputs: every method generates the same count
  prefillChunk: 32,
  onEvent: (e: { timestep: number }) => commitTimesteps.push(e.timestep),
});

/**
 * How often the target's token along its own greedy output is the draft's top 1, top 2, ...:
 * what bounds any tree built from the draft's top-k children (a token outside them is a miss).
 */
async function draftAgreement(shard: LayerShard, prompts: number[][], outputs: number[][]) {
  const ranks: number[] = [];
  const vocab = shard.info.vocabSize;
  for (const [i, prompt] of prompts.entries()) {
    const seq = [...prompt, ...outputs[i]];
    const n = seq.length;
    const out = await shard.forward(`agree-${i}`, {
      nodeIds: Int32Array.from({ length: n }, (_, j) => j),
      parentIds: Int32Array.from({ length: n }, (_, j) => j - 1),
      positions: Int32Array.from({ length: n }, (_, j) => j),
      tokens: Int32Array.from(seq),
    });
    shard.release(`agree-${i}`);
    const logits = out.logits!;
    for (let j = prompt.length - 1; j < n - 1; j++) {
      const row = j * vocab;
      const mine = logits[row + seq[j + 1]];
      let rank = 0;
      for (let t = 0; t < vocab; t++) if (logits[row + t] > mine) rank++;
      ranks.push(rank);
    }
  }
  const share = (k: number) => ranks.filter((r) => r < k).length / ranks.length;
  return {
    positions: ranks.length,
    top1: share(1),
    top2: share(2),
    top4: share(4),
    top8: share(8),
    top16: share(16),
  };
}
const agreement: Record<string, Awaited<ReturnType<typeof draftAgreement>>> = {};

const perToken = (a: Agg) => a.decodeTimesteps / a.decodeTokens;
/** Timesteps per token when every draft forward the stages wait for counts as a timestep. */
const perTokenDrafting = (a: Agg) =>
  (a.decodeTimesteps + a.decodeSerialDraftCalls) / a.decodeTokens;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;

interface Row {
  stages: number;
  width: number;
  promptSet: string;
  /** Greedy rows: temperature 0, where both acceptance modes give the same tokens. */
  temperature: 0;
  acceptance: 'exact';
  timestepsPerToken: { pp: number; stpp: number; pipedec: number };
  speedup: { overPP: number; overSTPP: number; overSTPPDrafting: number };
  /** STPP's timesteps per token with its serial drafting counted, one timestep a draft call. */
  stppTimestepsPerTokenDrafting: number;
  stppBest: StppOptions;
  hitRate: number;
  refillsPer100Tokens: number;
  /** Tokens per 100 that waited for a refill (a miss, or a hit on a child sent late). */
  stallsPer100Tokens: number;
  simulatedMsPerToken: Record<string, { pp: number; stpp: number; pipedec: number }>;
  /** Controller ms per timestep: mean (GC pauses included), median and 90th percentile. */
  engineMsPerTimestep: { mean: number; median: number; p90: number };
  /** Median controller time per timestep over one stage's compute of a W-row layer. */
  engineShareOfStage: Record<string, number>;
  /** Beyond the paper (not PipeDec as published): k layers per packet, r-layer refills. */
  beyond: {
    layersPerStep: number;
    refillLayers: number;
    draftWidthFactor: number;
    timestepsPerToken: number;
    timestepsPerTokenDrafting: number;
    speedup: { overPP: number; overSTPP: number; overSTPPDrafting: number };
    hitRate: number;
    stallsPer100Tokens: number;
    simulatedMsPerToken: Record<string, number>;
  }[];
}

const started = Date.now();
costs = [PAPER_A100_COST, await calibrate()];
console.error(`calibrated: ${JSON.stringify(costs[1])}`);
// The decoding draft ranks its proposals in its graph (TopK, ReduceLogSumExp), as at the head.
const draft = await OnnxShard.open({
  checkpointDir: draftDir,
  intraOpThreads: THREADS,
  proposals: true,
});
const rows: Row[] = [];
const mismatches: string[] = [];

for (const S of STAGES) {
  const shards: LayerShard[] = [];
  for (const r of splitLayers(TARGET_LAYERS, S)) shards.push(await open(targetDir, r));
  for (const [setName, prompts] of promptSets) {
    const pp = await runSet(shards, draft, prompts, (sim, _d, p, id) =>
      generatePP(sim, request(p, id)),
    );
    agreement[setName] ??= await draftAgreement(draft, prompts, pp.tokens);
    let stpp = emptyAgg();
    let stppBest = STPP_GRID[0];
    for (const shape of STPP_GRID) {
      const a = await runSet(shards, draft, prompts, (sim, d, p, id) =>
        generateSTPP(sim, d, request(p, id), { ...shape, scoreTemperature: SCORE_T }),
      );
      if (stpp.decodeTokens === 0 || perToken(a) < perToken(stpp)) {
        stpp = a;
        stppBest = shape;
      }
    }
    for (const W of WIDTHS) {
      const pd = await runSet(shards, draft, prompts, (sim, d, p, id) =>
        generatePipeDec(sim, d, request(p, id), {
          width: W,
          branching: branchingFor(W),
          scoreTemperature: SCORE_T,
        }),
      );
      for (const [i, t] of pd.tokens.entries()) {
        if (t.join() !== pp.tokens[i].join() || t.join() !== stpp.tokens[i].join()) {
          mismatches.push(`S=${S} W=${W} ${setName} prompt ${i}`);
        }
      }
      const sim: Row['simulatedMsPerToken'] = {};
      const share: Record<string, number> = {};
      const engine = {
        mean: pd.engineMs / pd.timesteps,
        median: median(pd.engineMedians),
        p90: median(pd.engineP90s),
      };
      for (const c of costs) {
        sim[c.name] = {
          pp: pp.simMs[c.name] / pp.decodeTokens,
          stpp: stpp.simMs[c.name] / stpp.decodeTokens,
          pipedec: pd.simMs[c.name] / pd.decodeTokens,
        };
        share[c.name] = engine.median / (c.stageFixedMs + c.stagePerPositionMs * W);
      }
      const row: Row = {
        stages: S,
        width: W,
        promptSet: setName,
        temperature: 0,
        acceptance: 'exact',
        timestepsPerToken: { pp: perToken(pp), stpp: perToken(stpp), pipedec: perToken(pd) },
        speedup: {
          overPP: perToken(pp) / perToken(pd),
          overSTPP: perToken(stpp) / perToken(pd),
          overSTPPDrafting: perTokenDrafting(stpp) / perTokenDrafting(pd),
        },
        stppTimestepsPerTokenDrafting: perTokenDrafting(stpp),
        stppBest,
        hitRate: pd.hits / Math.max(1, pd.verifications),
        refillsPer100Tokens: (100 * pd.refills) / pd.committed,
        stallsPer100Tokens: (100 * pd.stalls) / pd.decodeTokens,
        simulatedMsPerToken: sim,
        engineMsPerTimestep: engine,
        engineShareOfStage: share,
        beyond: [],
      };
      for (const v of BEYOND_STAGES.has(S) ? BEYOND : []) {
        const plus = await runSet(shards, draft, prompts, (sim, d, p, id) =>
          generatePipeDec(sim, d, request(p, id), {
            width: W,
            branching: branchingFor(W),
            scoreTemperature: SCORE_T,
            ...variantOptions(v, W),
          }),
        );
        for (const [i, t] of plus.tokens.entries()) {
          if (t.join() !== pp.tokens[i].join())
            mismatches.push(`beyond ${variantName(v)} S=${S} W=${W} ${setName} ${i}`);
        }
        row.beyond.push({
          ...v,
          timestepsPerToken: perToken(plus),
          timestepsPerTokenDrafting: perTokenDrafting(plus),
          speedup: {
            overPP: perToken(pp) / perToken(plus),
            overSTPP: perToken(stpp) / perToken(plus),
            overSTPPDrafting: perTokenDrafting(stpp) / perTokenDrafting(plus),
          },
          hitRate: plus.hits / Math.max(1, plus.verifications),
          stallsPer100Tokens: (100 * plus.stalls) / plus.decodeTokens,
          simulatedMsPerToken: Object.fromEntries(
            costs.map((c) => [c.name, plus.simMs[c.name] / plus.decodeTokens]),
          ),
        });
      }
      rows.push(row);
      console.error(
        `S=${S} W=${W} ${setName}: pipedec ${row.timestepsPerToken.pipedec.toFixed(2)} ts/tok, x${row.speedup.overPP.toFixed(2)} PP, x${row.speedup.overSTPP.toFixed(2)} STPP (${((Date.now() - started) / 1000).toFixed(0)} s)`,
      );
    }
  }
  for (const s of shards) await s.close();
}
// ---- sampled rows: the same runs at temperature > 0, per acceptance mode -------------------
// "exact": a drafted child is accepted only if it is the target's seeded draw (every method
// emits PP's tokens); "distribution": recursive rejection sampling (libs/engine acceptance.ts),
// tokens distributed as the target's. PP has no draft: one PP run serves both modes.
interface SampledRow {
  stages: number;
  width: number;
  promptSet: string;
  temperature: number;
  acceptance: Acceptance;
  /** PipeDec's timesteps per token (the field the greedy rows carry per method). */
  timestepsPerToken: number;
  ppTimestepsPerToken: number;
  speedupOverPP: number;
  hitRate: number;
  /** Drafted tokens accepted per verification (PipeDec verifies one node per verdict). */
  acceptedPerVerification: number;
  /** Tokens committed per verification (accepted drafted tokens and the target's own). */
  tokensPerVerification: number;
}
const sampledRows: SampledRow[] = [];
const TEMPERATURES = args.temperatures ? args.temperatures.split(',').map(Number) : [];
const SAMPLED_W = Number(args['sampled-width']);
const ACCEPTANCES = args.acceptance.split(',') as Acceptance[];
for (const S of TEMPERATURES.length > 0 ? args['sampled-stages'].split(',').map(Number) : []) {
  const shards: LayerShard[] = [];
  for (const r of splitLayers(TARGET_LAYERS, S)) shards.push(await open(targetDir, r));
  for (const [setName, prompts] of promptSets) {
    for (const temperature of [0, ...TEMPERATURES]) {
      const sampled = (p: number[], id: string, acceptance: Acceptance) => ({
        ...request(p, id),
        sampling: { temperature, topP: 1, seed: Number(id.slice(1)), acceptance },
      });
      const pp = await runSet(shards, draft, prompts, (sim, _d, p, id) =>
        generatePP(sim, sampled(p, id, 'exact')),
      );
      for (const acceptance of ACCEPTANCES) {
        const pd = await runSet(shards, draft, prompts, (sim, d, p, id) =>
          generatePipeDec(sim, d, sampled(p, id, acceptance), {
            width: SAMPLED_W,
            branching: branchingFor(SAMPLED_W, sampled(p, id, acceptance).sampling),
            scoreTemperature: SCORE_T,
          }),
        );
        // Exact mode must emit PP's tokens; at temperature 0 both modes must (greedy has one
        // answer). Distribution mode at T > 0 emits other tokens of the same distribution.
        if (acceptance === 'exact' || temperature === 0) {
          for (const [i, t] of pd.tokens.entries()) {
            if (t.join() !== pp.tokens[i].join()) {
              mismatches.push(
                `S=${S} W=${SAMPLED_W} T=${temperature} ${acceptance} ${setName} prompt ${i}`,
              );
            }
          }
        }
        const row: SampledRow = {
          stages: S,
          width: SAMPLED_W,
          promptSet: setName,
          temperature,
          acceptance,
          timestepsPerToken: perToken(pd),
          ppTimestepsPerToken: perToken(pp),
          speedupOverPP: perToken(pp) / perToken(pd),
          hitRate: pd.hits / pd.verifications,
          acceptedPerVerification: pd.hits / pd.verifications,
          tokensPerVerification: pd.committed / pd.verifications,
        };
        sampledRows.push(row);
        console.error(
          `sampled S=${S} W=${SAMPLED_W} T=${temperature} ${acceptance} ${setName}: pipedec ${row.timestepsPerToken.toFixed(2)} ts/tok, x${row.speedupOverPP.toFixed(2)} PP, hit ${row.hitRate.toFixed(2)}`,
        );
      }
    }
  }
  for (const s of shards) await s.close();
}
await draft.close();

// ---- report -------------------------------------------------------------------------------
const f = (x: number, d = 2) => x.toFixed(d);
const [paper, here] = costs;
const lines: string[] = [];
lines.push(
  `## libs/engine benchmark: PP vs STPP vs PipeDec (greedy, ${MAX_TOKENS} tokens, ${PROMPTS_PER_SET} prompts per set, first ${PROMPT_TOKENS} prompt tokens)`,
  '',
  `Paper (arXiv 2504.04104, 14 stages): PipeDec ${PAPER.pp[0]}-${PAPER.pp[1]}x over PP, ${PAPER.stpp[0]}-${PAPER.stpp[1]}x over STPP.`,
  `STPP: best of ${STPP_GRID.length} shapes (depth/top-k/budget) per row by timesteps per token. PipeDec: top-k per node = ${args.branching || 'min(W, 4), min(W, 8) in distribution mode'}. Draft scores at temperature ${SCORE_T} (both methods).`,
  'Timesteps follow docs/pipedec.md (a round in which each stage computes at most one packet), so STPP drafting between passes is free in them; [drafting counted] adds one timestep per draft forward the stages wait for (STPP drafts D layers serially; PipeDec drafts while the stages compute). The simulated ms columns price everything.',
  '',
  '| S | W | prompts | ts/tok PP | ts/tok STPP (D/k/M) [drafting counted] | ts/tok PipeDec | PipeDec/PP (paper 4.46-7.79) | PipeDec/STPP (paper 2.2-2.69) [drafting counted] | hit rate | refills/100 tok | stalls/100 tok | sim ms/tok PP / STPP / PipeDec (paper cost) | same (cost measured here) | engine ms/timestep median (p90, mean) |',
  '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|',
);
for (const r of rows) {
  const a = r.simulatedMsPerToken[paper.name];
  const b = r.simulatedMsPerToken[here.name];
  lines.push(
    `| ${r.stages} | ${r.width} | ${r.promptSet} | ${f(r.timestepsPerToken.pp)} | ${f(r.timestepsPerToken.stpp)} (${r.stppBest.depth}/${r.stppBest.branching}/${r.stppBest.budget}) [${f(r.stppTimestepsPerTokenDrafting)}] | ${f(r.timestepsPerToken.pipedec)} | ${f(r.speedup.overPP)}x | ${f(r.speedup.overSTPP)}x [${f(r.speedup.overSTPPDrafting)}x] | ${f(100 * r.hitRate, 1)}% | ${f(r.refillsPer100Tokens, 1)} | ${f(r.stallsPer100Tokens, 1)} | ${f(a.pp)} / ${f(a.stpp)} / ${f(a.pipedec)} | ${f(b.pp)} / ${f(b.stpp)} / ${f(b.pipedec)} | ${f(r.engineMsPerTimestep.median, 3)} (${f(r.engineMsPerTimestep.p90, 3)}, ${f(r.engineMsPerTimestep.mean, 3)}) |`,
  );
}
for (const [v, variant] of BEYOND.entries()) {
  lines.push(
    '',
    `### Beyond the paper (not the published method): ${variantName(variant)}`,
    '',
    '| S | W | prompts | ts/tok PipeDec+ [drafting counted] | PipeDec+/PP | PipeDec+/STPP [drafting counted] | hit rate | stalls/100 tok | sim ms/tok (paper cost) | sim ms/tok (cost here) |',
    '|---|---|---|---|---|---|---|---|---|---|',
  );
  for (const row of rows.filter((x) => x.beyond[v])) {
    const b = row.beyond[v];
    lines.push(
      `| ${row.stages} | ${row.width} | ${row.promptSet} | ${f(b.timestepsPerToken)} [${f(b.timestepsPerTokenDrafting)}] | ${f(b.speedup.overPP)}x | ${f(b.speedup.overSTPP)}x [${f(b.speedup.overSTPPDrafting)}x] | ${f(100 * b.hitRate, 1)}% | ${f(b.stallsPer100Tokens, 1)} | ${f(b.simulatedMsPerToken[paper.name])} | ${f(b.simulatedMsPerToken[here.name])} |`,
    );
  }
}
if (sampledRows.length > 0) {
  lines.push(
    '',
    `### Sampled requests (top-p 1, seed = prompt index). Acceptance "exact": a drafted child is accepted only if it is the target's seeded draw, a Gumbel-max draw whose noise the draft shares (PP's tokens); "distribution": recursive rejection sampling over the draft's Gumbel-top-k children (tokens distributed as the target's)`,
    '',
    '| S | W | prompts | temperature | acceptance | ts/tok PP | ts/tok PipeDec | PipeDec/PP | hit rate | accepted/verification | tokens/verification |',
    '|---|---|---|---|---|---|---|---|---|---|---|',
    ...sampledRows.map(
      (r) =>
        `| ${r.stages} | ${r.width} | ${r.promptSet} | ${r.temperature} | ${r.acceptance} | ${f(r.ppTimestepsPerToken)} | ${f(r.timestepsPerToken)} | ${f(r.speedupOverPP)}x | ${f(100 * r.hitRate, 1)}% | ${f(r.acceptedPerVerification)} | ${f(r.tokensPerVerification)} |`,
    ),
  );
}
const cost = (c: CostModel) =>
  `- ${c.name}: stage = ${f(c.stageFixedMs, 3)} ms + ${f(c.stagePerPositionMs, 4)} ms x rows; hop ${f(c.hopMs, 2)} ms; draft = ${f(c.draftFixedMs, 3)} ms + ${f(c.draftPerPositionMs, 4)} ms x rows per call`;
const maxShare = (name: string) => Math.max(0, ...rows.map((r) => r.engineShareOfStage[name]));
lines.push(
  '',
  'Cost model (simulator): timestep = serial draft + max(busiest stage, overlapped draft) + hop.',
  cost(paper),
  cost(here),
  '',
  `Engine overhead (controller: tree, expansion, verification, decisions, stop rules; draft compute and the stages' applying of decisions excluded), median per timestep: at most ${f(100 * maxShare(paper.name), 2)}% of a stage's compute under the paper cost model, ${f(100 * maxShare(here.name), 2)}% of the stage measured here (means include garbage-collection pauses: see the table).`,
  '',
  "Draft agreement along the target's own greedy output (share of tokens within the draft's top k: a tree of top-k children misses the rest, and every miss or late child stalls the pipeline for a refill, S timesteps):",
  '',
  '| prompts | positions | top 1 | top 2 | top 4 | top 8 | top 16 |',
  '|---|---|---|---|---|---|---|',
  ...Object.entries(agreement).map(
    ([set, a]) =>
      `| ${set} | ${a.positions} | ${f(100 * a.top1, 1)}% | ${f(100 * a.top2, 1)}% | ${f(100 * a.top4, 1)}% | ${f(100 * a.top8, 1)}% | ${f(100 * a.top16, 1)}% |`,
  ),
  '',
  `Lossless check: ${mismatches.length === 0 ? 'PP, STPP and PipeDec emitted identical tokens in every row' : `MISMATCH in ${mismatches.join('; ')}`}.`,
);
console.log(lines.join('\n'));

await mkdir(path.dirname(args.out), { recursive: true });
// A run of sampled rows only (--stages '') keeps the greedy rows of the file it updates.
const previous =
  rows.length === 0 && (await exists(args.out))
    ? (JSON.parse(await readFile(args.out, 'utf8')) as {
        meta: { date: string; greedyRowsFrom?: string };
        agreement: unknown;
        rows: unknown[];
      })
    : null;
await writeFile(
  args.out,
  JSON.stringify(
    {
      meta: {
        date: new Date().toISOString(),
        target: path.relative(ROOT, targetDir),
        draft: path.relative(ROOT, draftDir),
        tokens: MAX_TOKENS,
        promptsPerSet: PROMPTS_PER_SET,
        promptTokens: PROMPT_TOKENS,
        decoding: 'greedy',
        stppGrid: STPP_GRID,
        pipedecBranching: args.branching
          ? Number(args.branching)
          : 'min(W, 4); sampled rows in distribution mode min(W, 8)',
        scoreTemperature: SCORE_T,
        costModels: costs,
        paper: PAPER,
        cpu: os.cpus()[0]?.model,
        threads: THREADS,
        seconds: (Date.now() - started) / 1000,
        lossless: mismatches.length === 0,
        ...(previous ? { greedyRowsFrom: previous.meta.greedyRowsFrom ?? previous.meta.date } : {}),
      },
      agreement: previous ? previous.agreement : agreement,
      // Greedy rows written before they named their temperature and acceptance get them.
      rows: previous
        ? previous.rows.map((r) => ({ temperature: 0, acceptance: 'exact', ...(r as object) }))
        : rows,
      sampledRows,
    },
    null,
    2,
  ) + '\n',
);
