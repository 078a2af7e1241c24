// The draft's proposals from its graph's top-k (OnnxShard opened with `proposals`) equal those
// of the JavaScript scan of the full logits, on tiny random ONNX models: the same children in
// the same order, and their log-probabilities to f32 rounding; sampled exactly, the same
// seeded draw. Distribution mode over the whole vocabulary takes the top-k from the graph and
// q from the runtime (LayerShard.distributions): the same draws in the same order, q to f32
// rounding; under top-p it asks the graph for nothing and reads the full logits.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

import { OnnxShard, writeRandomCheckpoint } from '@pipedec/model';
import {
  type DraftHost,
  type DraftRow,
  DraftRunner,
  DRAW_POOL,
  NUCLEUS_POOL,
  PAPER_A100_COST,
  type Proposal,
  proposalRequest,
  type SamplingParams,
  SimulatedPipeline,
  type StageShard,
  StageWorker,
} from '../src/index.js';

const TINY = {
  hidden: 32,
  heads: 4,
  kvHeads: 2,
  intermediate: 64,
  vocab: 300,
  dtype: 'f32' as const,
  tied: false,
  maxPositions: 256,
};
const BRANCHING = 4;

let tmp = '';
const shards: OnnxShard[] = [];

beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'pipedec-draft-'));
  for (const [seed, layers] of [
    [31, 2],
    [32, 1],
  ]) {
    const dir = path.join(tmp, `m${seed}`);
    await writeRandomCheckpoint(dir, { ...TINY, layers, seed });
    shards.push(
      await OnnxShard.open({
        checkpointDir: dir,
        cacheDir: path.join(tmp, 'graphs'),
        intraOpThreads: 1,
        proposals: true,
      }),
    );
  }
});

afterAll(async () => {
  for (const s of shards) await s.close();
  await rm(tmp, { recursive: true, force: true });
});

/** The shard as a draft that never asks its graph: the JavaScript path over full logits. */
function withoutGraphTopK(shard: StageShard): StageShard {
  return {
    info: shard.info,
    isFirst: shard.isFirst,
    isLast: shard.isLast,
    forward: (seq, batch) => shard.forward(seq, { ...batch, proposals: undefined }),
    commit: (seq, ids) => shard.commit(seq, ids),
    prune: (seq, keep) => shard.prune(seq, keep),
    release: (seq) => shard.release(seq),
  };
}

/**
 * The shard, counting its forwards, those answered from the graph's top-k, and the rows whose
 * distributions the runtime computed.
 */
function countingTop(shard: OnnxShard) {
  const count = { forwards: 0, fromGraph: 0, distributionRows: 0 };
  const counted: StageShard = {
    ...withoutGraphTopK(shard),
    forward: async (seq, batch) => {
      const out = await shard.forward(seq, batch);
      count.forwards++;
      if (out.top) count.fromGraph++;
      return out;
    },
    distributions: (logits, scales) => {
      count.distributionRows += scales.length;
      return shard.distributions(logits, scales);
    },
  };
  return { shard: counted, count };
}

function host(requestId: string, prompt: number[], sampling: SamplingParams): DraftHost {
  return {
    prompt,
    sampling,
    request: { requestId },
    timeDraft: (_positions, work) => work(),
    timeDraftSync: (work) => work(),
  };
}

/** Prefill, then one tree layer below the last prompt row: every proposal on the way. */
async function proposals(
  shard: StageShard,
  requestId: string,
  prompt: number[],
  sampling: SamplingParams,
  scoreTemperature: number,
): Promise<Proposal[]> {
  const drafter = new DraftRunner(
    shard,
    host(requestId, prompt, sampling),
    BRANCHING,
    scoreTemperature,
  );
  const first = await drafter.prefill(5);
  const layer: DraftRow[] = first.candidates.map((c, i) => ({
    id: 1000 + i,
    parent: prompt.length - 1,
    position: prompt.length,
    token: c.token,
  }));
  const next = await drafter.propose(layer);
  drafter.release();
  return [first, ...next];
}

/** Two sampled distributions agree to f32 rounding (the runtime's softmax against f64). */
function expectCloseDistributions(got: ArrayLike<number>, want: ArrayLike<number>, label: string) {
  expect({ label, length: got.length }).toEqual({ label, length: want.length });
  let worst = 0;
  for (let t = 0; t < want.length; t++) {
    worst = Math.max(worst, Math.abs(got[t] - want[t]) - 1e-5 * want[t]);
  }
  if (!(worst <= 1e-9)) throw new Error(`${label}: a probability off by ${worst} beyond 1e-5`);
}

function expectSameProposals(got: Proposal[], want: Proposal[], label: string): void {
  expect({ label, tokens: got.map((p) => p.candidates.map((c) => c.token)) }).toEqual({
    label,
    tokens: want.map((p) => p.candidates.map((c) => c.token)),
  });
  for (const [i, p] of got.entries()) {
    p.candidates.forEach((c, j) => {
      const diff = Math.abs(c.logProb - want[i].candidates[j].logProb);
      if (!(diff <= 1e-4))
        throw new Error(`${label}: proposal ${i} child ${j} logProb off by ${diff}`);
    });
  }
}

const prompts = [
  [1, 5, 9, 200, 17, 3, 44, 2, 8],
  [250, 251, 7, 7, 7, 19],
  [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5],
];

describe('draft proposals from the graph top-k', () => {
  const cases: [string, SamplingParams, number][] = [
    ['greedy', { temperature: 0, topP: 1, seed: 0 }, 1],
    ['greedy, score temperature 0.5', { temperature: 0, topP: 1, seed: 0 }, 0.5],
    ['T 0.9, top-k 20, top-p 0.9', { temperature: 0.9, topP: 0.9, seed: 11, topK: 20 }, 1],
    ['T 1.2, top-k 64', { temperature: 1.2, topP: 1, seed: 12, topK: DRAW_POOL }, 0.5],
    ['T 1, the whole row', { temperature: 1, topP: 1, seed: 14 }, 1],
    ['T 0.6, top-p 0.9', { temperature: 0.6, topP: 0.9, seed: 15 }, 0.5],
    ['distribution mode', { temperature: 0.8, topP: 1, seed: 13, acceptance: 'distribution' }, 1],
    [
      'distribution mode, score temperature 0.5',
      { temperature: 1.3, topP: 1, seed: 16, acceptance: 'distribution' },
      0.5,
    ],
    [
      'distribution mode, top-p 0.9',
      { temperature: 0.8, topP: 0.9, seed: 17, acceptance: 'distribution' },
      1,
    ],
  ];

  it.each(cases)('equal the JavaScript scan: %s', async (name, sampling, scoreT) => {
    for (const [m, shard] of shards.entries()) {
      for (const [i, prompt] of prompts.entries()) {
        const id = `${name}-${m}-${i}`;
        const counted = countingTop(shard);
        const graph = await proposals(counted.shard, `g-${id}`, prompt, sampling, scoreT);
        const distribution = sampling.acceptance === 'distribution';
        const nucleus = sampling.topP < 1;
        const { forwards, fromGraph, distributionRows } = counted.count;
        expect(fromGraph).toBe(distribution && nucleus ? 0 : forwards);
        // Each prefill chunk's last row (chunks of 5) and the layer's rows propose: the runtime
        // computed q for them.
        const proposing = Math.ceil(prompt.length / 5) + (graph.length - 1);
        expect(distributionRows).toBe(distribution && !nucleus ? proposing : 0);
        const js = await proposals(withoutGraphTopK(shard), `j-${id}`, prompt, sampling, scoreT);
        expectSameProposals(graph, js, id);
        if (distribution) {
          expect(graph.every((p) => p.q !== null)).toBe(true);
          graph.forEach((p, k) => expectCloseDistributions(p.q!, js[k].q!, `${id} q ${k}`));
        }
      }
    }
  });

  it("keeps the runtime's distributions through the simulator's metered draft", async () => {
    const sampling: SamplingParams = {
      temperature: 0.9,
      topP: 1,
      seed: 21,
      acceptance: 'distribution',
    };
    const pipeline = new SimulatedPipeline([new StageWorker(shards[0], 0)], PAPER_A100_COST);
    const counted = countingTop(shards[0]);
    const metered = pipeline.meterDraft(counted.shard);
    const prompt = prompts[0];
    const viaSimulator = await proposals(metered, 'sim', prompt, sampling, 1);
    expect(counted.count.distributionRows).toBeGreaterThan(0);
    const direct = await proposals(shards[0], 'direct', prompt, sampling, 1);
    expectSameProposals(viaSimulator, direct, 'simulator');
  });

  it('asks the graph for the branching, the draw pool, or nothing under top-p in distribution mode', () => {
    const greedy = proposalRequest({ temperature: 0, topP: 1, seed: 0 }, 4, 0.5, 300)!;
    expect({ k: greedy.k, scales: [...greedy.lseScales], logits: greedy.logits }).toEqual({
      k: 4,
      scales: [2],
      logits: false,
    });
    const sampled = proposalRequest({ temperature: 0.5, topP: 1, seed: 0 }, 4, 1, 300)!;
    expect({ k: sampled.k, scales: [...sampled.lseScales], logits: sampled.logits }).toEqual({
      k: DRAW_POOL,
      scales: [1, 2],
      logits: true,
    });
    expect(proposalRequest({ temperature: 1, topP: 0.9, seed: 0 }, 4, 1, 300)!.k).toBe(
      NUCLEUS_POOL,
    );
    expect(proposalRequest({ temperature: 1, topP: 0.9, seed: 0, topK: 8 }, 4, 1, 300)!.k).toBe(8);
    expect(proposalRequest({ temperature: 1, topP: 1, seed: 0, topK: 8 }, 4, 1, 300)!.k).toBe(8);
    expect(proposalRequest({ temperature: 1, topP: 1, seed: 0, topK: 2 }, 4, 1, 300)!.k).toBe(4);
    expect(proposalRequest({ temperature: 1, topP: 1, seed: 0 }, 4, 1, 40)!.k).toBe(40);
    const whole = proposalRequest(
      { temperature: 1, topP: 1, seed: 0, acceptance: 'distribution' },
      4,
      0.5,
      300,
    )!;
    expect({ k: whole.k, scales: [...whole.lseScales], logits: whole.logits }).toEqual({
      k: 4,
      scales: [2],
      logits: true,
    });
    expect(
      proposalRequest(
        { temperature: 1, topP: 0.9, seed: 0, acceptance: 'distribution' },
        4,
        1,
        300,
      ),
    ).toBeUndefined();
    expect(
      proposalRequest(
        { temperature: 1, topP: 1, seed: 0, topK: 8, acceptance: 'distribution' },
        4,
        1,
        300,
      ),
    ).toBeUndefined();
  });
});
