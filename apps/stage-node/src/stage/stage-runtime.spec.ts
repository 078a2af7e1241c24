import type { PacketEnvelope, VerdictEnvelope } from '../wire/frame.js';
import { StageWorker, type Decision, type StageShard } from '@pipedec/engine';
import type { ShardOutput } from '@pipedec/model';
import { callShare, StageRuntime, type BatchLimits } from './stage-runtime.js';

const VOCAB = 8;
const HIDDEN = 2;

/** A layer shard that records what it is asked to do; the last stage picks token position + 1. */
function fakeShard(isLast: boolean, log: string[], fail = false): StageShard {
  const shard: StageShard = {
    info: {
      vocabSize: VOCAB,
      hiddenSize: HIDDEN,
      numLayers: 2,
      maxPositions: 64,
      bosTokenId: 0,
      eosTokenIds: [],
      fingerprint: 'f',
    },
    isFirst: false,
    isLast,
    forward: (seq, b) => {
      log.push(`forward ${seq} [${Array.from(b.nodeIds).join(',')}]`);
      if (fail) return Promise.reject(new Error('ModelError: KV_LIMIT'));
      const n = b.nodeIds.length;
      if (!isLast) return Promise.resolve({ hidden: new Float32Array(n * HIDDEN).fill(1) });
      const logits = new Float32Array(n * VOCAB); // [n, vocab]
      for (let i = 0; i < n; i++) logits[i * VOCAB + ((b.positions[i] + 1) % VOCAB)] = 5;
      return Promise.resolve({ logits });
    },
    commit: (seq, ids) => void log.push(`commit ${seq} [${ids.join(',')}]`),
    prune: (seq, keep) => void log.push(`prune ${seq} [${[...keep].join(',')}]`),
    release: (seq) => void log.push(`release ${seq}`),
    // One call for several requests; a request named 'bad' is refused alone.
    forwardMany: async (items) => {
      log.push(
        `many ${items.map((i) => `${i.seq}[${Array.from(i.batch.nodeIds).join(',')}]`).join(' ')}`,
      );
      const quiet = [...log];
      const out: (ShardOutput | Error)[] = [];
      for (const { seq, batch } of items) {
        out.push(
          seq === 'bad' ? new Error('ModelError: BATCH_INVALID') : await shard.forward(seq, batch),
        );
      }
      log.length = 0;
      log.push(...quiet); // the per-sequence forward lines are the fake's inner work
      return out;
    },
  };
  return shard;
}

function packet(requestId: string, seq: number, ids: number[], decisionCount = 0): PacketEnvelope {
  return {
    packet: {
      requestId,
      epoch: 0,
      seq,
      nodeIds: Int32Array.from(ids),
      parentIds: Int32Array.from(ids.map((id) => id - 1)),
      positions: Int32Array.from(ids),
      hidden: new Float32Array(ids.length * HIDDEN),
      sampling: { temperature: 0, topP: 1, seed: 0 },
    },
    decisionCount,
    trace: { computeMs: [3], rows: [ids.length], codecMs: 0.5 },
  };
}

function decision(requestId: string, seq: number, over: Partial<Decision> = {}): Decision {
  return { requestId, epoch: 0, seq, commit: [], keep: 'all', upTo: -1, ...over };
}

function rig(isLast: boolean, fail = false, limits?: BatchLimits) {
  const log: string[] = [];
  const forwarded: PacketEnvelope[] = [];
  const verdicts: VerdictEnvelope[] = [];
  const runtime = new StageRuntime(
    new StageWorker(fakeShard(isLast, log, fail), 2),
    {
      forward: (env) => {
        log.push(
          `out ${env.packet.requestId}#${env.packet.seq} [${Array.from(env.packet.nodeIds).join(',')}]`,
        );
        forwarded.push(env);
      },
      verdict: (env) => {
        log.push(`verdict ${env.verdict.requestId}#${env.verdict.seq}`);
        verdicts.push(env);
      },
    },
    limits,
  );
  return { log, forwarded, verdicts, runtime };
}

describe('StageRuntime', () => {
  it('computes a packet only after the decisions the head sent before it', async () => {
    const { log, runtime, forwarded } = rig(false);
    runtime.packet(packet('a', 0, [0, 1, 2]));
    await runtime.whenSettled();
    // Packet 1 was injected after decision 0 (prune row 2): it must not run before it.
    runtime.packet(packet('a', 1, [3], 1));
    await runtime.whenSettled();
    expect(forwarded).toHaveLength(1);
    runtime.decision(decision('a', 0, { keep: [0, 1], upTo: 2 }));
    await runtime.whenSettled();
    expect(log).toEqual([
      'forward a [0,1,2]',
      'out a#0 [0,1,2]',
      'prune a [0,1]',
      'forward a [3]',
      'out a#1 [3]',
    ]);
    // The trace gains this stage's compute and rows; the decision barrier travels on.
    expect(forwarded[1].trace.rows).toEqual([1, 1]);
    expect(forwarded[1].trace.computeMs).toHaveLength(2);
    expect(forwarded[1].decisionCount).toBe(1);
  });

  it('applies the decisions a packet carries ahead of it, once, and passes them on', async () => {
    const { log, runtime, forwarded } = rig(false);
    runtime.packet(packet('a', 0, [0, 1, 2]));
    await runtime.whenSettled();
    // Decision 0 arrived on its own (as the head's stage 0 gets every decision); the packet
    // carries 0 and 1: only 1 is new here, and it applies before the packet's compute.
    runtime.decision(decision('a', 0, { commit: [0], upTo: 2 }));
    const carrying = packet('a', 1, [3], 2);
    carrying.decisions = [
      decision('a', 0, { commit: [0], upTo: 2 }),
      decision('a', 1, { keep: [1], upTo: 2 }),
    ];
    runtime.packet(carrying);
    await runtime.whenSettled();
    expect(log).toEqual([
      'forward a [0,1,2]',
      'out a#0 [0,1,2]',
      'commit a [0]',
      'prune a [1]',
      'forward a [3]',
      'out a#1 [3]',
    ]);
    // The next stage has seen none of them: the forwarded packet carries both.
    expect(forwarded[1].decisions).toEqual(carrying.decisions);
    expect(forwarded[1].decisionCount).toBe(2);
  });

  it('applies decisions in seq order when a broadcast one overtakes one carried in a packet', async () => {
    const { log, runtime } = rig(false);
    runtime.packet(packet('a', 0, [0, 1, 2]));
    await runtime.whenSettled();
    // Decision 1 (a prune, broadcast) arrives before the packet that carries decision 0.
    runtime.decision(decision('a', 1, { keep: [2], upTo: 2 }));
    await runtime.whenSettled();
    expect(log).toEqual(['forward a [0,1,2]', 'out a#0 [0,1,2]']); // 1 waits for 0
    const carrying = packet('a', 1, [3], 2);
    carrying.decisions = [decision('a', 0, { commit: [0], upTo: 2 })];
    runtime.packet(carrying);
    await runtime.whenSettled();
    expect(log.slice(2)).toEqual(['commit a [0]', 'prune a [2]', 'forward a [3]', 'out a#1 [3]']);
  });

  it('does not let a waiting request block another one', async () => {
    const { log, runtime } = rig(false);
    runtime.packet(packet('a', 0, [5], 1));
    runtime.packet(packet('b', 0, [7]));
    await runtime.whenSettled();
    expect(log).toEqual(['forward b [7]', 'out b#0 [7]']);
  });

  it('forwards a packet whose rows were all pruned as a packet without rows', async () => {
    const { log, runtime, forwarded } = rig(false);
    runtime.decision(decision('a', 0, { keep: 'none', upTo: 4 }));
    runtime.packet(packet('a', 0, [3, 4], 1));
    await runtime.whenSettled();
    expect(log).toEqual(['out a#0 []']);
    expect(forwarded[0].trace.rows).toEqual([2, 0]);
  });

  it('answers on the last stage with the token per row, and an empty verdict for stale rows', async () => {
    const { runtime, verdicts } = rig(true);
    runtime.packet(packet('a', 0, [3, 4]));
    await runtime.whenSettled();
    expect(Array.from(verdicts[0].verdict.tokens)).toEqual([4, 5]);
    expect(Array.from(verdicts[0].verdict.logits)).toEqual([5, 5]);
    runtime.decision(decision('a', 0, { keep: [3], upTo: 4 }));
    runtime.packet(packet('a', 1, [4], 1));
    await runtime.whenSettled();
    expect(verdicts[1].verdict.nodeIds).toHaveLength(0);
    expect(verdicts[1].failure).toBeUndefined();
  });

  it('drops the queued and later packets of a released request', async () => {
    const { log, runtime } = rig(false);
    runtime.packet(packet('a', 0, [1], 1));
    runtime.decision(decision('a', 0, { release: true }));
    runtime.packet(packet('a', 1, [2]));
    runtime.decision(decision('a', 1));
    await runtime.whenSettled();
    expect(log).toEqual(['release a']);
    expect(runtime.activeRequests).toBe(0);
  });

  it('reports a failed compute to the head with its stage index', async () => {
    const { runtime, verdicts, forwarded } = rig(false, true);
    runtime.packet(packet('a', 0, [1]));
    await runtime.whenSettled();
    expect(forwarded).toHaveLength(0);
    expect(verdicts[0].failure).toEqual({ stage: 2, message: 'ModelError: KV_LIMIT' });
  });

  describe('batching (several requests per compute call)', () => {
    it('runs the packets delivered together in one call, one packet per request', async () => {
      const { log, runtime, forwarded } = rig(false);
      runtime.packet(packet('a', 0, [0])); // one frame's packets arrive in one task
      runtime.packet(packet('b', 0, [0, 1]));
      runtime.packet(packet('a', 1, [1]));
      runtime.packet(packet('c', 0, [0]));
      await runtime.whenSettled();
      expect(log.filter((l) => !l.startsWith('out'))).toEqual([
        'many a[0] b[0,1] c[0]',
        'forward a [1]', // a's second packet waits for the next call
      ]);
      expect(forwarded.map((e) => `${e.packet.requestId}#${e.packet.seq}`)).toEqual([
        'a#0',
        'b#0',
        'c#0',
        'a#1',
      ]);
      expect(forwarded[1].packet.hidden).toHaveLength(2 * HIDDEN);
    });

    it('keeps within the request and row limits, in arrival order', async () => {
      const { log, runtime } = rig(false, false, { requests: 2, rows: 3, lanes: 1 });
      runtime.packet(packet('a', 0, [0]));
      runtime.packet(packet('b', 0, [0, 1]));
      runtime.packet(packet('c', 0, [0, 1]));
      runtime.packet(packet('d', 0, [0]));
      runtime.packet(packet('e', 0, [0]));
      await runtime.whenSettled();
      expect(log.filter((l) => !l.startsWith('out'))).toEqual([
        'many a[0] b[0,1]',
        'many c[0,1] d[0]', // c's 2 rows would have made b's call 4 > 3
        'forward e [0]',
      ]);
      // The counters the health check and the heartbeat read.
      expect(runtime.batchStats).toEqual({ calls: 3, packets: 5, rows: 7, maxRequests: 2 });
    });

    it('with a limit of one request computes one packet per call', async () => {
      const { log, runtime } = rig(false, false, { requests: 1, rows: 64, lanes: 1 });
      runtime.packet(packet('a', 0, [0]));
      runtime.packet(packet('b', 0, [0]));
      runtime.packet(packet('c', 0, [0]));
      await runtime.whenSettled();
      expect(log.filter((l) => !l.startsWith('out'))).toEqual([
        'forward a [0]',
        'forward b [0]',
        'forward c [0]',
      ]);
    });

    it('splits the active requests into one group per lane, so no convoy holds them all', async () => {
      // 5 requests on 2 lanes: calls of at most ceil(5 / 2) = 3, though the limit allows 8.
      const { log, runtime } = rig(false, false, { requests: 8, rows: 64, lanes: 2 });
      for (const id of ['a', 'b', 'c', 'd', 'e']) runtime.packet(packet(id, 0, [0]));
      await runtime.whenSettled();
      expect(log.filter((l) => !l.startsWith('out'))).toEqual([
        'many a[0] b[0] c[0]',
        'many d[0] e[0]',
      ]);
      // Two of them released: 3 active, 2 per call.
      runtime.release('a');
      runtime.release('b');
      log.length = 0;
      for (const id of ['c', 'd', 'e']) runtime.packet(packet(id, 1, [1]));
      await runtime.whenSettled();
      expect(log.filter((l) => !l.startsWith('out'))).toEqual(['many c[1] d[1]', 'forward e [1]']);
    });

    it('computes a lone request alone whatever the lanes', () => {
      for (const lanes of [1, 2, 14]) {
        expect(callShare({ requests: 8, rows: 64, lanes }, 1)).toBe(1);
        expect(callShare({ requests: 8, rows: 64, lanes }, 0)).toBe(1);
      }
      expect(callShare({ requests: 8, rows: 64, lanes: 1 }, 20)).toBe(8);
      expect(callShare({ requests: 8, rows: 64, lanes: 4 }, 8)).toBe(2);
      expect(callShare({ requests: 8, rows: 64, lanes: 4 }, 9)).toBe(3);
    });

    it("fails only the request whose rows were refused; the others' packets go on", async () => {
      const { runtime, forwarded, verdicts } = rig(false);
      runtime.packet(packet('a', 0, [0]));
      runtime.packet(packet('b', 0, [0]));
      runtime.packet(packet('bad', 0, [0]));
      runtime.packet(packet('c', 0, [0]));
      await runtime.whenSettled();
      expect(forwarded.map((e) => e.packet.requestId)).toEqual(['a', 'b', 'c']);
      expect(verdicts).toHaveLength(1);
      expect(verdicts[0].verdict.requestId).toBe('bad');
      expect(verdicts[0].failure).toEqual({ stage: 2, message: 'ModelError: BATCH_INVALID' });
    });
  });
});
