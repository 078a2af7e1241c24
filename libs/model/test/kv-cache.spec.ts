// The KV cache bookkeeping on its own: masks from ancestry, commit reordering, prune
// compaction, truncate, and the stage-wide byte limit.
import { KvBudget, MASK_HIDDEN, SequenceKv } from '../src/kv-cache.js';
import { ModelError, ReferenceModel, type TreeBatch } from '../src/index.js';
import { chainBatch, tempDir, tinyCheckpoint } from './helpers.js';

const GEOMETRY = { layers: 2, kvHeads: 2, headDim: 2 };
const ROW = GEOMETRY.kvHeads * GEOMETRY.headDim;
/** Key element of a row in kv head h: the node id plus h / 4 (exact in f32), so heads differ. */
const keyOf = (id: number, h: number) => id + h / 4;

function batch(ids: number[], parents: number[]): TreeBatch {
  return {
    nodeIds: Int32Array.from(ids),
    parentIds: Int32Array.from(parents),
    positions: Int32Array.from(ids, () => 0),
  };
}

/**
 * Prepares and appends a batch, writing key = keyOf(node id, head) and value = -key into every row;
 * returns which columns each row sees: the live slots, then the batch's rows.
 */
function add(kv: SequenceKv, ids: number[], parents: number[]): string[] {
  const b = batch(ids, parents);
  const { past, capacity, maskCache, maskNew } = kv.prepare(b);
  ids.forEach((id, i) => {
    for (let l = 0; l < GEOMETRY.layers; l++) {
      const k = Float32Array.from({ length: ROW }, (_, e) =>
        keyOf(id, Math.floor(e / GEOMETRY.headDim)),
      );
      kv.writeRows(
        l,
        past + i,
        k,
        k.map((x) => -x),
      );
    }
  });
  kv.append(b);
  const n = ids.length;
  expect([maskCache.length, maskNew.length]).toEqual([n * capacity, n * n]);
  const binary = (m: number) => m === 0 || m === MASK_HIDDEN;
  expect(maskCache.every(binary) && maskNew.every(binary)).toBe(true);
  return Array.from({ length: n }, (_, i) => {
    const cacheRow = maskCache.subarray(i * capacity, (i + 1) * capacity);
    expect(cacheRow.subarray(past).every((m) => m === MASK_HIDDEN)).toBe(true); // free slots
    const seen = (m: number) => (m === 0 ? '1' : '0');
    return (
      Array.from(cacheRow.subarray(0, past), seen).join('') +
      Array.from(maskNew.subarray(i * n, (i + 1) * n), seen).join('')
    );
  });
}

/** Node id held by each slot, read back from the keys and values (every layer, head, element). */
const slots = (kv: SequenceKv) =>
  Array.from({ length: kv.rows }, (_, s) => {
    const id = kv.keyAt(1, s, 0, 0);
    for (let l = 0; l < GEOMETRY.layers; l++)
      for (let h = 0; h < GEOMETRY.kvHeads; h++)
        for (let d = 0; d < GEOMETRY.headDim; d++) {
          expect(kv.keyAt(l, s, h, d)).toBe(keyOf(id, h));
          expect(kv.valueAt(l, s, h, d)).toBe(-keyOf(id, h));
        }
    return id;
  });

describe('SequenceKv', () => {
  it('builds the tree mask from committed rows, ancestors across calls and within the batch', () => {
    const kv = new SequenceKv('s', GEOMETRY, new KvBudget(Infinity));
    add(kv, [0, 1, 2], [-1, 0, 1]);
    kv.commit([0, 1, 2]);
    add(kv, [3, 4], [2, 2]); // two children of the last committed row
    // columns: committed 0 1 2 | tree 3 4 | batch 5 6 7
    expect(add(kv, [5, 6, 7], [3, 5, 4])).toEqual(['11110100', '11110110', '11101001']);
  });

  it('commit moves the chain behind the prefix without touching K/V contents; prune compacts', () => {
    const kv = new SequenceKv('s', GEOMETRY, new KvBudget(Infinity));
    add(kv, [0, 1], [-1, 0]);
    kv.commit([0, 1]);
    add(kv, [10, 11, 12], [1, 1, 1]);
    add(kv, [20, 21, 22], [10, 12, 12]);
    kv.commit([12, 22]);
    expect(kv.committed).toBe(4);
    expect(slots(kv)).toEqual([0, 1, 12, 22, 10, 11, 20, 21]);
    expect(kv.valueAt(0, 3, 0, 0)).toBe(-22);
    kv.prune(new Set([11, 999]));
    expect(slots(kv)).toEqual([0, 1, 12, 22, 11]);
    // the surviving tree row still sees the whole prefix, and a new child sees it
    expect(add(kv, [30], [11])).toEqual(['111111']);
  });

  it('prune moves runs of kept rows together and keeps the rows after a gap in order', () => {
    const kv = new SequenceKv('s', GEOMETRY, new KvBudget(Infinity));
    add(kv, [0], [-1]);
    kv.commit([0]);
    add(kv, [1, 2, 3, 4, 5, 6], [0, 0, 0, 0, 0, 0]);
    kv.prune(new Set([2, 3, 5, 6]));
    expect(slots(kv)).toEqual([0, 2, 3, 5, 6]);
    kv.commit([5]);
    expect(slots(kv)).toEqual([0, 5, 2, 3, 6]);
    kv.prune(new Set([6]));
    expect(slots(kv)).toEqual([0, 5, 6]);
  });

  it('truncate keeps a prefix of the committed rows and drops the tree', () => {
    const kv = new SequenceKv('s', GEOMETRY, new KvBudget(Infinity));
    add(kv, [0, 1, 2, 3], [-1, 0, 1, 2]);
    kv.commit([0, 1, 2, 3]);
    add(kv, [4], [3]);
    kv.truncate(2);
    expect([kv.committed, kv.rows]).toEqual([2, 2]);
    // ids of dropped rows are free again
    add(kv, [2, 3], [1, 2]);
    expect(slots(kv)).toEqual([0, 1, 2, 3]);
    expect(() => kv.truncate(3)).toThrow(/cannot truncate to 3 committed rows; it has 2/);
  });

  it.each<[string, (kv: SequenceKv) => void, RegExp]>([
    ['a live id reused', (kv) => kv.prepare(batch([1], [-1])), /node id 1 is already live/],
    [
      'an id twice in a batch',
      (kv) => kv.prepare(batch([7, 7], [-1, -1])),
      /node id 7 is already live/,
    ],
    [
      'an unknown parent',
      (kv) => kv.prepare(batch([7], [42])),
      /parent 42, which is neither live nor earlier/,
    ],
    ['a parent later in the batch', (kv) => kv.prepare(batch([7, 8], [8, -1])), /parent 8/],
    [
      'ragged arrays',
      (kv) => kv.prepare({ ...batch([7, 8], [-1, -1]), positions: Int32Array.from([0]) }),
      /positions 1/,
    ],
    ['committing a non-chain', (kv) => kv.commit([3]), /chain broken at node 3: its parent is 2/],
    ['committing an unknown row', (kv) => kv.commit([99]), /cannot commit node 99/],
    [
      "pruning a kept row's parent",
      (kv) => kv.prune(new Set([3])),
      /keeps node 3 but drops its parent 2/,
    ],
  ])('refuses %s', (_label, act, message) => {
    const kv = new SequenceKv('s', GEOMETRY, new KvBudget(Infinity));
    add(kv, [0, 1], [-1, 0]);
    kv.commit([0, 1]);
    add(kv, [2, 3], [1, 2]);
    const before = slots(kv);
    expect(() => act(kv)).toThrow(message);
    expect(slots(kv)).toEqual(before);
  });

  it('accounts bytes in a shared budget and refuses growth past the limit', () => {
    const rowBytes = 2 * GEOMETRY.layers * GEOMETRY.kvHeads * GEOMETRY.headDim * 4; // 64
    const budget = new KvBudget(40 * rowBytes);
    const a = new SequenceKv('a', GEOMETRY, budget);
    add(
      a,
      Array.from({ length: 16 }, (_, i) => i),
      Array.from({ length: 16 }, (_, i) => i - 1),
    );
    expect(budget.usedBytes).toBe(16 * rowBytes); // minimum capacity 16 rows
    const b = new SequenceKv('b', GEOMETRY, budget);
    add(
      b,
      Array.from({ length: 24 }, (_, i) => i),
      Array.from({ length: 24 }, (_, i) => i - 1),
    );
    expect(budget.usedBytes).toBe(40 * rowBytes);
    let err: unknown;
    try {
      add(a, [100, 101], [15, 100]);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ModelError);
    expect((err as ModelError).code).toBe('KV_LIMIT');
    expect((err as ModelError).message).toContain(
      `"a" needs 18 KV rows (${18 * rowBytes} bytes), but the stage's KV limit is ${40 * rowBytes} bytes and ${24 * rowBytes} are held by 1 other`,
    );
    expect(a.rows).toBe(16);
    b.release();
    add(a, [100, 101], [15, 100]); // fits once b is gone
    expect(budget.usedBytes).toBe(18 * rowBytes); // the usual step (64) would pass the limit
    expect(slots(a).slice(14)).toEqual([14, 15, 100, 101]); // rows survive the move
    a.release();
    expect([budget.usedBytes, budget.sequences]).toEqual([0, 0]);

    const unbounded = new KvBudget(Infinity);
    const c = new SequenceKv('c', GEOMETRY, unbounded);
    const chain = (from: number, count: number) =>
      add(
        c,
        Array.from({ length: count }, (_, i) => from + i),
        Array.from({ length: count }, (_, i) => from + i - 1),
      );
    chain(0, 3);
    expect(c.capacity).toBe(16);
    chain(3, 14);
    expect(c.capacity).toBe(16 + 64);
    chain(17, 300);
    expect(c.capacity).toBe(317);
    chain(317, 1);
    expect(c.capacity).toBe(317 + 80); // a quarter once that exceeds 64 rows
    expect(unbounded.usedBytes).toBe(397 * rowBytes);
  });
});

describe('LayerShard memory', () => {
  let tmp: Awaited<ReturnType<typeof tempDir>>;
  let checkpointDir: string;
  beforeAll(async () => {
    tmp = await tempDir('kv');
    checkpointDir = await tinyCheckpoint(tmp.dir, 'ckpt', { layers: 2 });
  });
  afterAll(() => tmp.cleanup());

  it('reports KV and weight bytes, enforces maxKvBytes with KV_LIMIT, and frees on release', async () => {
    // 2 layers x K,V x 2 kv heads x head dim 8 x 4 bytes = 256 bytes per row
    const shard = await ReferenceModel.open({ checkpointDir, maxKvBytes: 64 * 256 });
    expect(shard.memory()).toMatchObject({ kvBytes: 0, kvLimitBytes: 64 * 256, sequences: 0 });
    const params =
      300 * 32 * 2 + 2 * (32 + 32 * 32 + 2 * 16 * 32 + 32 * 32 + 32 + 3 * 64 * 32) + 32;
    expect(shard.memory().weightBytes).toBe(params * 4);
    await shard.forward('a', chainBatch([1, 2, 3], 0, 0, -1));
    expect(shard.memory()).toMatchObject({ kvBytes: 16 * 256, sequences: 1 });
    await expect(
      shard.forward(
        'b',
        chainBatch(
          Array.from({ length: 60 }, () => 5),
          0,
          0,
          -1,
        ),
      ),
    ).rejects.toMatchObject({
      code: 'KV_LIMIT',
    });
    expect(shard.memory()).toMatchObject({ kvBytes: 16 * 256, sequences: 1 }); // b left no trace
    shard.release('a');
    expect(shard.memory()).toMatchObject({ kvBytes: 0, sequences: 0 });
    await shard.forward(
      'b',
      chainBatch(
        Array.from({ length: 60 }, () => 5),
        0,
        0,
        -1,
      ),
    );
    expect(shard.memory().kvBytes).toBe(60 * 256);
    await shard.close();
  });

  it('validates batches against the stage kind', async () => {
    const first = await ReferenceModel.open({ checkpointDir, layerStart: 0, layerEnd: 1 });
    const last = await ReferenceModel.open({ checkpointDir, layerStart: 1, layerEnd: 2 });
    await expect(
      first.forward('s', { ...chainBatch([1], 0, 0, -1), tokens: undefined }),
    ).rejects.toThrow(/first stage needs tokens \[1\], got none/);
    await expect(first.forward('s', chainBatch([300], 0, 0, -1))).rejects.toThrow(
      /token id 300 outside the vocabulary/,
    );
    await expect(first.forward('s', chainBatch([1], 0, 4096, -1))).rejects.toThrow(
      /position 4096 outside \[0, 4096\)/,
    );
    await expect(last.forward('s', chainBatch([1], 0, 0, -1))).rejects.toThrow(
      /needs hidden \[1, 32\]/,
    );
    expect(() => last.commit('nope', [1])).toThrow(/unknown sequence "nope"/);
    await first.close();
    await last.close();
    await expect(first.forward('s', chainBatch([1], 0, 0, -1))).rejects.toMatchObject({
      code: 'CLOSED',
    });
  });
});
