// StageWorker with several requests: a request released while the stage computes another
// one's packet is freed when that call ends, not at its own next packet (an ended request
// sends none, so its KV rows were held until the stage restarted: bench:batching's 16 clients
// ran a stage out of KV memory with 42 sequences held and at most 16 requests in flight).

import type { ShardOutput, TreeBatch } from '@pipedec/model';
import { StageWorker, type LayerPacket, type SamplingParams } from '../src/index.js';
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
