// runMethod hands the job's decoding options to the engine. Each option is checked by what it
// does to the packets stage 0 computes, on a real in-process pipeline of tiny ONNX shards: a
// width that follows load (WIDTH_FOLLOWS_LOAD) and PipeDec's refills (PIPEDEC_REFILL_LAYERS).
// Before this spec, runMethod dropped widthNow and the head's width never followed load.
import { jest } from '@jest/globals';
import { InProcessPipeline, StageWorker, type GenerateRequest } from '@pipedec/engine';
import {
  type LayerShard,
  OnnxShard,
  type ShardOutput,
  splitLayers,
  type TreeBatch,
  writeRandomCheckpoint,
} from '@pipedec/model';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { type MethodOptions, runMethod } from '../src/head/run-method.js';
import { TINY } from './cluster-helpers.js';

jest.setTimeout(120_000);

const MODEL = { ...TINY, layers: 6, maxPositions: 256 };
const STAGES = 3;
const PROMPT = Array.from({ length: 12 }, (_, i) => (i * 37 + 5) % 300);

let tmp = '';
let stages: LayerShard[] = [];
let draft: LayerShard;

beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'pipedec-run-method-'));
  const target = path.join(tmp, 'target');
  const draftDir = path.join(tmp, 'draft');
  await writeRandomCheckpoint(target, { ...MODEL, seed: 17 });
  // An unrelated model: its guesses mostly miss, so PipeDec refills often.
  await writeRandomCheckpoint(draftDir, { ...MODEL, layers: 2, seed: 18 });
  const cacheDir = path.join(tmp, 'graphs');
  for (const r of splitLayers(MODEL.layers, STAGES)) {
    stages.push(await OnnxShard.open({ checkpointDir: target, ...r, cacheDir, intraOpThreads: 1 }));
  }
  draft = await OnnxShard.open({
    checkpointDir: draftDir,
    cacheDir,
    intraOpThreads: 1,
    proposals: true,
  });
});

afterAll(async () => {
  for (const s of [...stages, draft]) await s.close();
  stages = [];
  await rm(tmp, { recursive: true, force: true });
});

/** Runs `method` and returns its tokens and the rows of every packet stage 0 computed. */
async function run(method: 'pp' | 'pipedec', opts: Partial<MethodOptions>, id: string) {
  const rows: number[] = [];
  const shard0 = stages[0];
  const forward = shard0.forward.bind(shard0);
  shard0.forward = (seq: string, batch: TreeBatch): Promise<ShardOutput> => {
    rows.push(batch.nodeIds.length);
    return forward(seq, batch);
  };
  try {
    const pipeline = new InProcessPipeline(stages.map((s, i) => new StageWorker(s, i)));
    const request: GenerateRequest = { requestId: id, prompt: PROMPT, maxTokens: 24 };
    const result = await runMethod(method, pipeline, draft, request, {
      width: 4,
      stppDepth: 4,
      scoreTemperature: 1,
      ...opts,
    });
    // The prompt goes in one prefill packet; the rest are decode packets.
    return { tokens: result.tokens, decodeRows: rows.slice(1), stats: result.stats };
  } finally {
    shard0.forward = forward;
  }
}

describe('runMethod', () => {
  it("passes the head's width under load to PipeDec: at width 0 each token goes alone, as in PP", async () => {
    const pp = await run('pp', { width: 1 }, 'pp');
    const zero = await run('pipedec', { widthNow: () => 0 }, 'zero');
    expect(zero.tokens).toEqual(pp.tokens);
    expect(zero.decodeRows).toEqual(pp.decodeRows);
    expect(Math.max(...zero.decodeRows)).toBe(1);
    // Not narrowed: the tree's layers go 4 wide.
    const wide = await run('pipedec', {}, 'wide');
    expect(wide.tokens).toEqual(pp.tokens);
    expect(Math.max(...wide.decodeRows)).toBe(4);
  });

  it("passes PipeDec's refill depth: a refill packet carries several tree layers", async () => {
    const pp = await run('pp', { width: 1 }, 'pp2');
    const paper = await run('pipedec', { refillLayers: 1 }, 'paper');
    const refill = await run('pipedec', { refillLayers: STAGES }, 'refill');
    expect(paper.tokens).toEqual(pp.tokens);
    expect(refill.tokens).toEqual(pp.tokens);
    // One layer a packet: never more rows than the width.
    expect(Math.max(...paper.decodeRows)).toBeLessThanOrEqual(4);
    // A refill of the root and two layers below it: more rows than one layer holds.
    expect(Math.max(...refill.decodeRows)).toBeGreaterThan(4);
  });
});
