import type { LayerShard, ShardOutput, TreeBatch } from '@pipedec/model';
import { ComputeMeter, meteredShard } from './compute-meter.js';

/** A meter on a clock the test moves, and work that ends when the test says. */
function setup() {
  let t = 0;
  const meter = new ComputeMeter(() => t, 1000);
  const advance = (ms: number) => (t += ms);
  const work = () => {
    let done!: () => void;
    const p = meter.time(() => new Promise<void>((r) => (done = r)));
    return { end: async () => (done(), await p) };
  };
  return { meter, advance, work };
}

describe('ComputeMeter', () => {
  it('reports the busy share of the last span, however often it is read', async () => {
    const { meter, advance, work } = setup();
    advance(100);
    const w = work();
    advance(300);
    await w.end();
    advance(600);
    expect(meter.sample()).toBeCloseTo(0.3);
    // Reading again changes nothing: a reader that samples late still sees the burst.
    expect(meter.sample()).toBeCloseTo(0.3);
    advance(200); // the span is now (200, 1200]: 200 of the 300 ms remain inside it
    expect(meter.sample()).toBeCloseTo(0.2);
    advance(1000);
    expect(meter.sample()).toBe(0); // idle span
  });

  it('uses the time since start while younger than the span', async () => {
    const { meter, advance, work } = setup();
    const w = work();
    advance(250);
    await w.end();
    advance(250);
    expect(meter.sample()).toBeCloseTo(0.5);
  });

  it('counts overlapping calls once', async () => {
    const { meter, advance, work } = setup();
    const a = work();
    advance(200);
    const b = work();
    advance(200);
    await a.end();
    advance(200);
    await b.end();
    advance(400);
    expect(meter.sample()).toBeCloseTo(0.6);
  });

  it('counts a call still running up to now', async () => {
    const { meter, advance, work } = setup();
    advance(500);
    const w = work();
    advance(500);
    expect(meter.sample()).toBeCloseTo(0.5);
    advance(250);
    await w.end();
    advance(250);
    expect(meter.sample()).toBeCloseTo(0.75); // span (500, 1500]: busy 500..1250
  });

  it('times the forward calls of a metered shard, including failed ones', async () => {
    const { meter, advance } = setup();
    let fail = false;
    const calls: string[] = [];
    const inner = {
      forward: (seq: string) => {
        calls.push(seq);
        advance(100);
        return fail ? Promise.reject(new Error('boom')) : Promise.resolve({} as ShardOutput);
      },
      release: (seq: string) => calls.push(`release ${seq}`),
    } as unknown as LayerShard;
    const shard = meteredShard(inner, meter);
    await shard.forward('a', {} as TreeBatch);
    fail = true;
    await expect(shard.forward('b', {} as TreeBatch)).rejects.toThrow('boom');
    shard.release('a');
    advance(200);
    expect(meter.sample()).toBeCloseTo(0.5);
    expect(calls).toEqual(['a', 'b', 'release a']);
  });

  it("times a shard's runtime distributions, and leaves them out when told to (RUNTIME_DISTRIBUTIONS false)", async () => {
    const { meter, advance } = setup();
    const probs = new Float32Array(4);
    const inner = {
      distributions: () => {
        advance(100);
        return Promise.resolve({ probs, runMs: 0.1 });
      },
    } as unknown as LayerShard;
    const shard = meteredShard(inner, meter);
    const scales = Float32Array.of(1);
    expect((await shard.distributions!(new Float32Array(4), scales)).probs).toBe(probs);
    advance(100);
    expect(meter.sample()).toBeCloseTo(0.5);
    expect(meteredShard(inner, meter, false).distributions).toBeUndefined();
    // A shard without them gets none.
    expect(meteredShard({} as LayerShard, meter).distributions).toBeUndefined();
  });
});
