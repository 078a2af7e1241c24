import type { PacketEnvelope } from '../wire/frame.js';
import { StageWorker, type Decision, type LayerPacket, type StageShard } from '@pipedec/engine';
import { StageRuntime } from '../stage/stage-runtime.js';
import { GrpcPipeline } from './grpc-pipeline.js';
import { StageNodeError } from './stage-node-error.js';

const INFO = {
  vocabSize: 8,
  hiddenSize: 2,
  numLayers: 4,
  maxPositions: 64,
  bosTokenId: 0,
  eosTokenIds: [],
  fingerprint: 'f',
};

/** Stage 0 of a 2-stage pipeline whose forward outputs ones. */
const firstStage: StageShard = {
  info: INFO,
  isFirst: true,
  isLast: false,
  forward: (_seq, b) => Promise.resolve({ hidden: new Float32Array(b.nodeIds.length * 2).fill(1) }),
  commit: () => undefined,
  prune: () => undefined,
  release: () => undefined,
};

function packet(seq: number, ids: number[]): LayerPacket {
  return {
    requestId: 'r',
    epoch: 0,
    seq,
    nodeIds: Int32Array.from(ids),
    parentIds: Int32Array.from(ids.map((i) => i - 1)),
    positions: Int32Array.from(ids),
    tokens: Int32Array.from(ids),
    sampling: { temperature: 0, topP: 1, seed: 0 },
  };
}

function rig(stallMs = 5_000, carryDecisions = true) {
  const toStage1: PacketEnvelope[] = [];
  const broadcast: Decision[] = [];
  let pipeline: GrpcPipeline | null = null;
  const runtime = new StageRuntime(new StageWorker(firstStage, 0), {
    forward: (env) => toStage1.push(env),
    verdict: (env) => pipeline!.verdict(env),
    computed: (id) => pipeline!.stage0Computed(id),
  });
  pipeline = new GrpcPipeline(
    INFO,
    2,
    runtime,
    { broadcast: (d) => broadcast.push(d) },
    stallMs,
    carryDecisions,
  );
  return { pipeline, toStage1, broadcast };
}

describe('GrpcPipeline', () => {
  it('carries commit-only decisions in the next packet; broadcasts prunes at once, in order', async () => {
    const { pipeline, toStage1, broadcast } = rig();
    const s = pipeline.open('r');
    await s.next();
    s.send(packet(0, [0, 1]));
    const d0: Decision = { requestId: 'r', epoch: 0, seq: 0, commit: [], keep: 'all', upTo: -1 };
    const d1: Decision = { requestId: 'r', epoch: 0, seq: 1, commit: [], keep: 'all', upTo: 1 };
    s.broadcast(d0);
    s.broadcast(d1);
    expect(await s.next()).toEqual({ kind: 'tick', timestep: 1 });
    // The packet sent before the decisions carries none; the next one carries both, in order.
    expect(toStage1[0].decisions).toBeUndefined();
    s.send(packet(1, [2]));
    await s.next();
    expect(toStage1[1]).toMatchObject({ decisionCount: 2, decisions: [d0, d1] });
    expect(broadcast).toEqual([]);
    // A prune goes out at once, after the commit-only decision still waiting for a packet.
    const d2: Decision = { requestId: 'r', epoch: 0, seq: 2, commit: [], keep: 'all', upTo: 2 };
    const d3: Decision = { requestId: 'r', epoch: 1, seq: 3, commit: [], keep: [0, 1, 2], upTo: 2 };
    s.broadcast(d2);
    expect(broadcast).toEqual([]);
    s.broadcast(d3);
    expect(broadcast).toEqual([d2, d3]);
    await s.close();
    expect(broadcast[2]).toMatchObject({ release: true, seq: 4 });
  });

  it('ticks when stage 0 is free, delivers verdicts, and counts decisions into packets (decisions broadcast)', async () => {
    const { pipeline, toStage1, broadcast } = rig(5_000, false);
    const s = pipeline.open('r');
    expect(await s.next()).toEqual({ kind: 'tick', timestep: 0 });
    s.send(packet(0, [0, 1]));
    s.broadcast({ requestId: 'r', epoch: 0, seq: 0, commit: [], keep: 'all', upTo: -1 });
    // Stage 0 computes and frees up: the next tick, while the packet is on stage 1.
    expect(await s.next()).toEqual({ kind: 'tick', timestep: 1 });
    expect(toStage1).toHaveLength(1);
    expect(toStage1[0].decisionCount).toBe(0);
    expect(broadcast).toHaveLength(1);
    s.send(packet(1, [2]));
    expect(await s.next()).toEqual({ kind: 'tick', timestep: 2 });
    expect(toStage1[1].decisionCount).toBe(1);
    pipeline.verdict({
      verdict: {
        requestId: 'r',
        epoch: 0,
        seq: 0,
        nodeIds: Int32Array.from([0, 1]),
        tokens: Int32Array.from([5, 6]),
        logits: Float32Array.from([1, 1]),
      },
      trace: { computeMs: [2, 3], rows: [2, 2], codecMs: 0.1 },
    });
    const v = await s.next();
    expect(v.kind).toBe('verdict');
    expect(s.usage().map((u) => u.positions)).toEqual([2, 2]);
    await s.close();
    expect(broadcast[broadcast.length - 1]).toMatchObject({ release: true, seq: 1 });
    expect(pipeline.takeStats('r')).toMatchObject({ packets: 1, decisions: 1, computeMs: 5 });
  });

  it('fails the requests in flight and refuses new ones until restored', async () => {
    const { pipeline } = rig();
    const s = pipeline.open('r');
    await s.next();
    s.send(packet(0, [0]));
    await s.next();
    pipeline.fail(new StageNodeError('PIPELINE_BROKEN', 'stage 2 is gone'));
    await expect(s.next()).rejects.toThrow('PIPELINE_BROKEN: stage 2 is gone');
    expect(() => pipeline.open('r2')).toThrow('stage 2 is gone');
    pipeline.restore();
    expect(() => pipeline.open('r2')).not.toThrow();
  });

  it('fails a request whose packets get no answer within the stall time', async () => {
    const { pipeline } = rig(150);
    const s = pipeline.open('r');
    await s.next();
    s.send(packet(0, [0]));
    await s.next(); // stage 0 done; the packet is lost on its way
    s.send(packet(1, [1]));
    const t = Date.now();
    await expect(s.next().then(() => s.next())).rejects.toThrow('no answer from the pipeline');
    expect(Date.now() - t).toBeGreaterThanOrEqual(140);
  });
});
