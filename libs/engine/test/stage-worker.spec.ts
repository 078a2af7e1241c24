// StageWorker with several requests: a request released while the stage computes another
// one's packet is freed when that call ends, not at its own next packet (an ended request
// sends none, so its KV rows were held until the stage restarted: bench:batching's 16 clients
// ran a stage out of KV memory with 42 sequences held and at most 16 requests in flight).
// A last stage in distribution mode takes its rows' distributions from the shard's runtime
// where it has them (LayerShard.distributions), and fails only the packet they failed for.

import type { ShardOutput, TreeBatch } from '@pipedec/model';
import {
  sampledDistribution,
  StageWorker,
  type LayerPacket,
  type SamplingParams,
  type StageResult,
  type Verdict,
} from '../src/index.js';
import { type ToyConfig, ToyShard } from './toy-model.js';

const TOY: ToyConfig = { layers: 4, vocab: 17, maxPositions: 64, seed: 5, eosTokenIds: [] };
const GREEDY: SamplingParams = { temperature: 0, topP: 1, seed: 0 };

/** A prompt packet into stage 0: rows 0..n-1 in a chain. */
function prompt(requestId: string, n: number): LayerPacket {
  return {
    requestId,
    epoch: 0,
    seq: 0,
    nodeIds: Int32Array.from({ length: n }, (_, i) => i),
    parentIds: Int32Array.from({ length: n }, (_, i) => i - 1),
    positions: Int32Array.from({ length: n }, (_, i) => i),
    tokens: Int32Array.from({ length: n }, (_, i) => 1 + i),
    sampling: GREEDY,
  };
}

/** A shard whose next forward waits until the test lets it go. */
class HeldShard extends ToyShard {
  private hold: Promise<void> | null = null;
  private letGo: (() => void) | null = null;
  started: (() => void) | null = null;

  holdNext(): { started: Promise<void>; letGo: () => void } {
    this.hold = new Promise((r) => (this.letGo = r));
    const started = new Promise<void>((r) => (this.started = r));
    return { started, letGo: () => this.letGo!() };
  }

  override async forward(seq: string, batch: TreeBatch): Promise<ShardOutput> {
    const hold = this.hold;
    this.hold = null;
    if (hold) {
      this.started?.();
      await hold;
    }
    return super.forward(seq, batch);
  }
}

describe('StageWorker', () => {
  it.each([
    ['a release from the transport', (w: StageWorker, id: string) => w.release(id)],
    [
      "the head's release decision",
      (w: StageWorker, id: string) =>
        w.receive({
          requestId: id,
          epoch: 0,
          seq: 0,
          commit: [],
          keep: 'all',
          upTo: -1,
          release: true,
        }),
    ],
  ])('frees a request released while another request computes (%s)', async (_label, free) => {
    const shard = new HeldShard(TOY, 0, 2);
    const worker = new StageWorker(shard, 0);
    await worker.process(prompt('ended', 5));
    expect(shard.seqs.has('ended')).toBe(true);

    const held = shard.holdNext();
    const busy = worker.process(prompt('running', 3));
    await held.started;
    free(worker, 'ended'); // arrives while the stage computes 'running'
    held.letGo();
    await busy;

    expect(shard.seqs.has('ended')).toBe(false);
    expect(shard.seqs.has('running')).toBe(true);
    expect(worker.treeRows('ended')).toEqual([]);
  });

  it('frees a request released during its own call once the call ends', async () => {
    const shard = new HeldShard(TOY, 0, 2);
    const worker = new StageWorker(shard, 0);
    const held = shard.holdNext();
    const busy = worker.process(prompt('self', 4));
    await held.started;
    worker.release('self');
    held.letGo();
    const result = await busy;
    expect(result.output).toBeNull(); // released: nothing goes on to the next stage
    expect(shard.seqs.has('self')).toBe(false);
  });
});

/**
 * A whole toy model that computes sampled distributions the way a runtime would
 * (LayerShard.distributions): here with sampledDistribution, counting its calls, or failing.
 */
class DistributionShard extends ToyShard {
  calls: { rows: number; scale: number }[] = [];
  fail: string | null = null;

  distributions(logits: Float32Array, scales: Float32Array) {
    if (this.fail) return Promise.reject(new Error(this.fail));
    const vocab = this.info.vocabSize;
    this.calls.push({ rows: scales.length, scale: scales[0] });
    const probs = new Float32Array(scales.length * vocab);
    for (let i = 0; i < scales.length; i++) {
      const params = { temperature: 1 / scales[i], topP: 1, seed: 0 };
      probs.set(sampledDistribution(logits, i * vocab, vocab, params), i * vocab);
    }
    return Promise.resolve({ probs, runMs: 7 });
  }
}

describe('StageWorker, last stage in distribution mode', () => {
  const sampled = (id: string, n: number, sampling: SamplingParams): LayerPacket => ({
    ...prompt(id, n),
    sampling,
  });
  const whole: SamplingParams = { temperature: 0.5, topP: 1, seed: 3, acceptance: 'distribution' };

  it("takes the rows' distributions from the shard when sampling the whole vocabulary", async () => {
    const shard = new DistributionShard(TOY, 0, TOY.layers);
    const worker = new StageWorker(shard, 0);
    const result = await worker.process(sampled('whole', 3, whole));
    expect(shard.calls).toEqual([{ rows: 3, scale: 2 }]);
    const verdict = result.output as Verdict;
    expect(verdict.probs).toHaveLength(3 * TOY.vocab);
    // The runtime's time for them counts as the stage's compute.
    expect(result.computeMs).toBeGreaterThanOrEqual(7);
    // The same distributions JavaScript computes where the shard cannot.
    const plain = new StageWorker(new ToyShard(TOY, 0, TOY.layers), 0);
    const js = (await plain.process(sampled('whole', 3, whole))).output as Verdict;
    expect(Array.from(verdict.probs!)).toEqual(Array.from(js.probs!));
    expect(Array.from(verdict.tokens)).toEqual(Array.from(js.tokens));
  });

  it.each([
    ['top-p 0.9', { ...whole, topP: 0.9 }, true],
    ['top-k 5', { ...whole, topK: 5 }, true],
    ['exact acceptance', { ...whole, acceptance: 'exact' as const }, false],
    ['greedy', { temperature: 0, topP: 1, seed: 0, acceptance: 'distribution' as const }, false],
  ])('computes them itself, or sends none, otherwise (%s)', async (_label, sampling, probs) => {
    const shard = new DistributionShard(TOY, 0, TOY.layers);
    const worker = new StageWorker(shard, 0);
    const verdict = (await worker.process(sampled('other', 2, sampling))).output as Verdict;
    expect(shard.calls).toEqual([]);
    expect(verdict.probs !== undefined).toBe(probs);
  });

  it('fails only the packet whose distributions failed', async () => {
    const shard = new DistributionShard(TOY, 0, TOY.layers);
    const worker = new StageWorker(shard, 0);
    shard.fail = 'softmax failed';
    const [bad, good] = await worker.processMany([
      sampled('bad', 2, whole),
      sampled('good', 2, GREEDY),
    ]);
    expect(bad).toBeInstanceOf(Error);
    expect((bad as Error).message).toBe('softmax failed');
    expect((good as StageResult).output).not.toBeNull();
  });
});
