// forwardMany: several sequences' rows in one runtime call must give each sequence exactly the
// logits it gets alone (up to float summation order), keep each cache its own through commits
// and prunes, and refuse one sequence's bad batch without disturbing the others.
import { openShard, type LayerShard, type ShardOutput, type TreeBatch } from '../src/index.js';
import { paddedGroups } from '../src/cached-shard.js';
import { chainBatch, expectClose, tempDir, tinyCheckpoint } from './helpers.js';

const TOL = 2e-4;

type Join = 'padded' | 'ragged';

/** Two stages of the tiny model: the first feeds the last. */
async function openPair(
  checkpointDir: string,
  cacheDir: string,
  join?: Join,
): Promise<LayerShard[]> {
  return Promise.all([
    openShard({ checkpointDir, layerStart: 0, layerEnd: 2, cacheDir, join }),
    openShard({ checkpointDir, layerStart: 2, layerEnd: 4, cacheDir, join }),
  ]);
}

function ok(out: ShardOutput | Error): ShardOutput {
  if (out instanceof Error) throw out;
  return out;
}

/** A tree batch: nodes with ids from `firstId`, parents given, positions from their depth. */
function treeBatch(
  tokens: number[],
  firstId: number,
  parents: number[],
  positions: number[],
): TreeBatch {
  return {
    nodeIds: Int32Array.from(tokens, (_, i) => firstId + i),
    parentIds: Int32Array.from(parents),
    positions: Int32Array.from(positions),
    tokens: Int32Array.from(tokens),
  };
}

// Both ways of joining sequences (onnx-shard.ts computeMany): each sequence an entry of the
// graph's batch dimension (the default), or all rows one sequence over the gathered caches.
describe.each<Join>(['padded', 'ragged'])('LayerShard.forwardMany, %s join', (join) => {
  let tmp: Awaited<ReturnType<typeof tempDir>>;
  let solo: LayerShard[];
  let joint: LayerShard[];
  beforeAll(async () => {
    tmp = await tempDir('joint');
    const ckpt = await tinyCheckpoint(tmp.dir, 'ckpt');
    solo = await openPair(ckpt, tmp.dir);
    joint = await openPair(ckpt, tmp.dir, join);
  });
  afterAll(async () => {
    await Promise.all([...solo, ...joint].map((s) => s.close()));
    await tmp.cleanup();
  });

  /** Runs the batches through both stages, one sequence at a time and all together. */
  async function step(batches: Record<string, TreeBatch>): Promise<void> {
    const seqs = Object.keys(batches);
    const alone: Record<string, Float32Array> = {};
    for (const seq of seqs) {
      const h = await solo[0].forward(seq, batches[seq]);
      const out = await solo[1].forward(seq, {
        ...batches[seq],
        tokens: undefined,
        hidden: h.hidden,
      });
      alone[seq] = out.logits!;
    }
    const first = (
      await joint[0].forwardMany(seqs.map((seq) => ({ seq, batch: batches[seq] })))
    ).map(ok);
    const last = (
      await joint[1].forwardMany(
        seqs.map((seq, k) => ({
          seq,
          batch: { ...batches[seq], tokens: undefined, hidden: first[k].hidden },
        })),
      )
    ).map(ok);
    seqs.forEach((seq, k) => {
      expect(last[k].logits!.length).toBe(alone[seq].length);
      expectClose(last[k].logits!, alone[seq], TOL, `sequence ${seq}`);
    });
  }

  function both(f: (s: LayerShard) => void): void {
    for (const s of [...solo, ...joint]) f(s);
  }

  it('gives every sequence its own logits through prompts, trees, commits and prunes', async () => {
    // Prompts of different lengths, then a tree level on each, then a commit and a prune.
    await step({
      a: chainBatch([5, 9, 13, 2, 7], 0, 0, -1),
      b: chainBatch([11, 3], 0, 0, -1),
      c: chainBatch([1, 2, 3, 4, 5, 6, 7, 8, 9], 0, 0, -1),
    });
    both((s) => {
      s.commit('a', [0, 1, 2, 3, 4]);
      s.commit('b', [0, 1]);
      s.commit('c', [0, 1, 2, 3, 4, 5, 6, 7, 8]);
    });
    await step({
      a: treeBatch([20, 21, 22], 100, [4, 4, 100], [5, 5, 6]),
      b: treeBatch([30, 31], 100, [1, 1], [2, 2]),
      c: treeBatch([40], 100, [8], [9]),
    });
    both((s) => {
      s.commit('a', [100, 102]);
      s.prune('a', new Set());
      s.prune('b', new Set([101]));
      s.commit('c', [100]);
    });
    // b joins late with a single row, c leaves this step out: joining and leaving per call.
    await step({
      a: treeBatch([50, 51], 200, [102, 200], [7, 8]),
      b: treeBatch([60], 200, [101], [3]),
    });
    await step({
      c: treeBatch([70, 71, 72, 73], 200, [100, 100, 200, 201], [10, 10, 11, 11]),
      a: treeBatch([80], 300, [201], [9]),
      d: chainBatch([99, 98, 97], 0, 0, -1),
    });
    for (const s of joint) {
      expect(s.memory().sequences).toBe(4);
    }
  });

  it("refuses one sequence's bad batch and computes the others", async () => {
    const [first] = joint;
    await first.forward('x', chainBatch([1, 2], 0, 0, -1));
    first.commit('x', [0, 1]);
    const before = (first as unknown as { rowsOf(s: string): { rows: number } }).rowsOf('x');
    const out = await first.forwardMany([
      { seq: 'x', batch: treeBatch([3], 10, [77], [2]) }, // parent 77 is not live
      { seq: 'y', batch: chainBatch([4, 5], 0, 0, -1) },
      { seq: 'z', batch: { ...chainBatch([6], 0, 0, -1), tokens: Int32Array.from([100000]) } },
    ]);
    expect(out[0]).toBeInstanceOf(Error);
    expect((out[0] as Error).message).toMatch(/parent 77/);
    expect(out[2]).toBeInstanceOf(Error);
    expect((out[2] as Error).message).toMatch(/outside the vocabulary/);
    expect(ok(out[1]).hidden!.length).toBe(2 * 32);
    const after = (first as unknown as { rowsOf(s: string): { rows: number } }).rowsOf('x');
    expect(after).toEqual(before);
    // The refused sequence goes on as if nothing happened.
    await expect(first.forward('x', treeBatch([3], 10, [1], [2]))).resolves.toBeDefined();
  });
});

describe('paddedGroups (which sequences share a padded call)', () => {
  const flat = (n: number) => Array.from({ length: n }, () => 256);

  it('keeps rows of like size together and splits where padding would more than double them', () => {
    // 4 decode steps of 1 row and 4 tree layers of 4 rows: two calls, not 8 entries of 4 rows.
    expect(paddedGroups([1, 4, 1, 4, 1, 4, 1, 4], flat(8))).toEqual([
      [1, 3, 5, 7],
      [0, 2, 4, 6],
    ]);
    // A 64-row prompt chunk runs apart from the decode rows beside it.
    expect(paddedGroups([1, 64, 2, 1], flat(4))).toEqual([[1], [2, 0, 3]]);
    // Close sizes share a call: at most 2 rows of padding, or half the largest.
    expect(paddedGroups([3, 1, 2], flat(3))).toEqual([[0, 2, 1]]);
    expect(paddedGroups([16, 9, 8, 7], flat(4))).toEqual([[0, 1, 2], [3]]);
    expect(paddedGroups([5], [0])).toEqual([[0]]);
  });

  it('keeps pasts of like length together: a short prompt does not attend over a long one', () => {
    // Pasts 900, 850 and 500 share a call; 100 and 40 another (within 64 slots).
    expect(paddedGroups([1, 1, 1, 1, 1], [100, 900, 40, 850, 500])).toEqual([
      [1, 3, 4],
      [0, 2],
    ]);
    // Both rules at once: like pasts but unlike rows split too.
    expect(paddedGroups([4, 1, 4, 1], [300, 300, 20, 20])).toEqual([[0], [1], [2], [3]]);
  });

  it('puts every sequence in exactly one group, and nothing is padded past the rules', () => {
    for (let trial = 0; trial < 200; trial++) {
      const count = 1 + (trial % 12);
      const rows = Array.from({ length: count }, (_, i) => 1 + ((trial * 7 + i * 13) % 40));
      const past = Array.from({ length: count }, (_, i) => (trial * 31 + i * 97) % 1000);
      const groups = paddedGroups(rows, past);
      expect(groups.flat().sort((a, b) => a - b)).toEqual(rows.map((_, i) => i));
      for (const g of groups) {
        const top = Math.max(...g.map((i) => rows[i]));
        const low = Math.min(...g.map((i) => rows[i]));
        const longest = Math.max(...g.map((i) => past[i]));
        expect(top - low).toBeLessThanOrEqual(Math.max(2, top / 2));
        for (const i of g) {
          expect(longest - past[i]).toBeLessThanOrEqual(Math.max(64, longest / 2));
        }
      }
    }
  });
});
