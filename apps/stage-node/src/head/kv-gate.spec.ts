import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { kvSlotsFor, type StageKv } from '@pipedec/contracts';
import { ReferenceModel, writeRandomCheckpoint } from '@pipedec/model';
import { KvGate, type KvLease } from './kv-gate.js';

// Two stages of 100 and 1,000 slots (a row is 8 bytes here): the smaller one decides.
const STAGES: StageKv[] = [
  { limitBytes: 800, bytesPerRow: 8, maxPositions: 1024, treeDepth: 4 },
  { limitBytes: 8000, bytesPerRow: 8, maxPositions: 1024, treeDepth: 4 },
];
const ROWS_30 = 30; // kvSlotsFor(30) = 94 slots: one such job at a time
const ROWS_1 = 1; // 65 slots

/** The gate's acquire for jobs that are never withdrawn: a lease, never null. */
function acquirer(gate: KvGate) {
  return async (rows: number, signal: AbortSignal): Promise<KvLease> => {
    const lease = await gate.acquire(rows, signal);
    if (!lease) throw new Error('withdrawn');
    return lease;
  };
}

/** Settles pending promise callbacks (the gate resolves synchronously on release). */
const settled = () => new Promise((r) => setImmediate(r));

describe('KvGate', () => {
  it('starts a job that fits at once and holds the next until the first ends', async () => {
    const gate = new KvGate(() => STAGES);
    const acquire = acquirer(gate);
    expect(gate.capacitySlots()).toBe(100);
    const first = await acquire(ROWS_30, new AbortController().signal);
    expect(gate.state).toEqual({ waiting: 0, heldSlots: kvSlotsFor(ROWS_30) });
    let started = false;
    const second = acquire(ROWS_30, new AbortController().signal).then((lease) => {
      started = true;
      return lease;
    });
    await settled();
    expect(started).toBe(false);
    expect(gate.state.waiting).toBe(1);
    first();
    first(); // ending twice releases once
    (await second)();
    expect(started).toBe(true);
    expect(gate.state).toEqual({ waiting: 0, heldSlots: 0 });
  });

  it('admits in arrival order: a small job does not overtake a large one waiting', async () => {
    const gate = new KvGate(() => STAGES);
    const acquire = acquirer(gate);
    const running = await acquire(ROWS_1, new AbortController().signal); // 65 of 100
    const order: string[] = [];
    const large = acquire(ROWS_30, new AbortController().signal).then((l) => {
      order.push('large');
      return l;
    });
    // 16 slots would fit beside the 65 held, but the large job came first.
    const small = acquire(0, new AbortController().signal).then((l) => {
      order.push('small');
      return l;
    });
    await settled();
    expect(order).toEqual([]);
    running();
    (await large)();
    (await small)();
    expect(order).toEqual(['large', 'small']);
  });

  it('lets a job cancelled while waiting go at once, holding nothing, and unblocks the rest', async () => {
    const gate = new KvGate(() => STAGES);
    const acquire = acquirer(gate);
    const running = await acquire(ROWS_1, new AbortController().signal);
    const abort = new AbortController();
    const large = acquire(ROWS_30, abort.signal);
    const small = acquire(0, new AbortController().signal);
    await settled();
    expect(gate.state.waiting).toBe(2);
    abort.abort();
    (await large)(); // a lease that holds nothing
    const smallLease = await small; // fits beside the running job now that the large one left
    expect(gate.state).toEqual({ waiting: 0, heldSlots: kvSlotsFor(ROWS_1) + kvSlotsFor(0) });
    smallLease();
    running();
    expect(gate.state.heldSlots).toBe(0);
  });

  it('withdraws every waiting job with null when the head stops taking jobs', async () => {
    const gate = new KvGate(() => STAGES);
    const running = await acquirer(gate)(ROWS_30, new AbortController().signal);
    const waiting = [0, 1].map(() => gate.acquire(ROWS_30, new AbortController().signal));
    await settled();
    gate.withdrawAll();
    expect(await Promise.all(waiting)).toEqual([null, null]);
    expect(gate.state).toEqual({ waiting: 0, heldSlots: kvSlotsFor(ROWS_30) });
    running();
    // It still admits afterwards (the head may take jobs again).
    expect(await gate.acquire(ROWS_30, new AbortController().signal)).toEqual(expect.any(Function));
  });

  it('says whether a job could ever fit; unbounded stages fit anything', () => {
    const gate = new KvGate(() => STAGES);
    expect(gate.canEverFit(36)).toBe(true); // 100 slots
    expect(gate.canEverFit(37)).toBe(false);
    const open = new KvGate(() => [{ ...STAGES[0], limitBytes: null }]);
    expect(open.canEverFit(1e9)).toBe(true);
  });
});

describe('kvSlotsFor against a real shard', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'kv-gate-'));
    await writeRandomCheckpoint(path.join(dir, 'ckpt'), {
      layers: 2,
      hidden: 32,
      heads: 4,
      kvHeads: 2,
      intermediate: 64,
      vocab: 300,
      seed: 3,
      dtype: 'f32',
      tied: false,
    });
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('bounds the bytes a sequence grows to, row by row and in chunks', async () => {
    const shard = await ReferenceModel.open({ checkpointDir: path.join(dir, 'ckpt') });
    const perRow = shard.memory().kvBytesPerRow;
    try {
      for (const chunk of [1, 7, 50]) {
        const seq = `chunk-${chunk}`;
        let rows = 0;
        while (rows < 400) {
          const n = Math.min(chunk, 400 - rows);
          await shard.forward(seq, {
            nodeIds: Int32Array.from({ length: n }, (_, i) => rows + i),
            parentIds: Int32Array.from({ length: n }, (_, i) => rows + i - 1),
            positions: Int32Array.from({ length: n }, (_, i) => rows + i),
            tokens: new Int32Array(n).fill(5),
          });
          rows += n;
          expect(shard.memory().kvBytes).toBeLessThanOrEqual(kvSlotsFor(rows) * perRow);
        }
        shard.release(seq);
      }
    } finally {
      await shard.close();
    }
  });
});
