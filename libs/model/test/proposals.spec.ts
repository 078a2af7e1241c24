// The draft's proposal outputs (OpenShardOptions.proposals): the graph's TopK and
// ReduceLogSumExp equal a plain scan of the logits in float64 (ids exactly, ties by lowest id;
// log-sum-exps to f32 rounding), and a shard with them still returns the same logits. Every
// last stage's sampled distributions (OnnxShard.distributions) equal a float64 softmax.
import path from 'node:path';

import { OnnxShard, type TreeBatch } from '../src/index.js';
import { expectClose, tempDir, tinyCheckpoint } from './helpers.js';

/** The k largest of a row, descending, ties by lowest index: the reference for TopK. */
function referenceTopK(row: Float32Array, k: number): number[] {
  return Array.from(row.keys())
    .sort((a, b) => row[b] - row[a] || a - b)
    .slice(0, k);
}

function referenceLse(row: Float32Array, scale: number): number {
  let max = -Infinity;
  for (const v of row) max = Math.max(max, v * scale);
  let total = 0;
  for (const v of row) total += Math.exp(v * scale - max);
  return max + Math.log(total);
}

function chain(n: number, start: number, tokens: number[]): TreeBatch {
  return {
    nodeIds: Int32Array.from({ length: n }, (_, i) => start + i),
    parentIds: Int32Array.from({ length: n }, (_, i) => (i === 0 ? start - 1 : start + i - 1)),
    positions: Int32Array.from({ length: n }, (_, i) => start + i),
    tokens: Int32Array.from(tokens.slice(start, start + n)),
  };
}

describe('proposal outputs of a draft graph', () => {
  let tmp: Awaited<ReturnType<typeof tempDir>>;
  const opened: OnnxShard[] = [];
  beforeAll(async () => {
    tmp = await tempDir('proposals');
  });
  afterAll(async () => {
    for (const s of opened) await s.close();
    await tmp.cleanup();
  });

  const open = async (checkpointDir: string, proposals: boolean) => {
    const s = await OnnxShard.open({
      checkpointDir,
      cacheDir: path.join(tmp.dir, 'cache'),
      intraOpThreads: 1,
      proposals,
    });
    opened.push(s);
    return s;
  };

  it.each([
    ['untied', 3, false],
    ['tied', 4, true],
    ['one layer', 5, false],
  ])('top-k and log-sum-exps equal a float64 scan of the logits (%s)', async (_, seed, tied) => {
    const dir = await tinyCheckpoint(tmp.dir, `m${seed}`, {
      seed,
      tied,
      layers: seed === 5 ? 1 : 4,
    });
    const plain = await open(dir, false);
    const draft = await open(dir, true);
    expect(draft.proposals).toBe(true);
    expect(plain.proposals).toBe(false);
    const vocab = draft.info.vocabSize;
    const tokens = Array.from({ length: 24 }, (_, i) => (i * 37 + seed) % vocab);
    const scales = Float32Array.of(1, 1 / 0.7, 2);
    // Two calls per model: a prompt chunk, then rows that attend to it from the cache.
    for (const [start, n, k] of [
      [0, 16, 16],
      [16, 8, 1],
    ]) {
      const batch = chain(n, start, tokens);
      const want = await plain.forward('s', batch);
      const got = await draft.forward('s', {
        ...batch,
        proposals: { k, lseScales: scales, logits: true },
      });
      expectClose(got.logits!, want.logits!, 1e-5, 'logits of the proposal graph');
      const top = got.top!;
      expect(top.k).toBe(k);
      expect(top.ids).toHaveLength(n * k);
      expect(top.lse).toHaveLength(n * scales.length);
      for (let r = 0; r < n; r++) {
        const row = got.logits!.subarray(r * vocab, (r + 1) * vocab);
        const ids = Array.from(top.ids.subarray(r * k, (r + 1) * k));
        expect({ row: r, ids }).toEqual({ row: r, ids: referenceTopK(row, k) });
        for (let j = 0; j < k; j++) expect(top.logits[r * k + j]).toBe(row[ids[j]]);
        for (let s = 0; s < scales.length; s++) {
          const diff = Math.abs(top.lse[r * scales.length + s] - referenceLse(row, scales[s]));
          if (!(diff <= 1e-4)) throw new Error(`row ${r} scale ${scales[s]}: lse off by ${diff}`);
        }
      }
    }
  });

  it('fetches the logits only when asked, and k may be the whole vocabulary', async () => {
    const dir = await tinyCheckpoint(tmp.dir, 'fetch', { seed: 9 });
    const draft = await open(dir, true);
    const vocab = draft.info.vocabSize;
    const tokens = Array.from({ length: 6 }, (_, i) => i + 1);
    const topOnly = await draft.forward('a', {
      ...chain(3, 0, tokens),
      proposals: { k: vocab, lseScales: Float32Array.of(1), logits: false },
    });
    expect(topOnly.logits).toBeUndefined();
    expect(topOnly.top!.ids).toHaveLength(3 * vocab);
    expect(new Set(topOnly.top!.ids.subarray(0, vocab)).size).toBe(vocab);
    const logitsOnly = await draft.forward('a', chain(3, 3, tokens));
    expect(logitsOnly.top).toBeUndefined();
    expect(logitsOnly.logits).toHaveLength(3 * vocab);
  });

  it('refuses a k outside [1, vocab], naming the field', async () => {
    const dir = await tinyCheckpoint(tmp.dir, 'bad', { seed: 10 });
    const draft = await open(dir, true);
    const vocab = draft.info.vocabSize;
    for (const k of [0, vocab + 1, 2.5]) {
      await expect(
        draft.forward(`bad-${k}`, {
          ...chain(1, 0, [1]),
          proposals: { k, lseScales: Float32Array.of(1), logits: false },
        }),
      ).rejects.toMatchObject({
        code: 'BATCH_INVALID',
        message: expect.stringContaining('proposals.k') as unknown,
      });
    }
    expect(draft.rowsOf('bad-0').rows).toBe(0);
  });

  it('computes sampled distributions softmax(scale x logits) per row, on any last stage', async () => {
    const dir = await tinyCheckpoint(tmp.dir, 'dist', { seed: 12 });
    // A target's last stage (no proposal outputs) has them as well as a draft.
    for (const shard of [await open(dir, false), await open(dir, true)]) {
      const vocab = shard.info.vocabSize;
      const out = await shard.forward('d', chain(5, 0, [4, 8, 15, 16, 23]));
      const logits = out.logits!;
      const scales = Float32Array.of(1, 1 / 0.7, 2, 1 / 1.3, 1);
      // Rows 1..4 as a view into the logits: the runtime reads from the view's offset.
      const { probs, runMs } = await shard.distributions(
        logits.subarray(vocab),
        scales.subarray(1),
      );
      expect(probs).toHaveLength(4 * vocab);
      expect(runMs).toBeGreaterThan(0);
      for (let r = 0; r < 4; r++) {
        const row = logits.subarray((r + 1) * vocab, (r + 2) * vocab);
        const lse = referenceLse(row, scales[r + 1]);
        let total = 0;
        for (let t = 0; t < vocab; t++) {
          const want = Math.exp(row[t] * scales[r + 1] - lse);
          const got = probs[r * vocab + t];
          total += got;
          if (!(Math.abs(got - want) <= 1e-5 * want + 1e-9)) {
            throw new Error(`row ${r} token ${t}: ${got} against ${want}`);
          }
        }
        expect(Math.abs(total - 1)).toBeLessThan(1e-5);
      }
    }
  });

  it('refuses distributions whose logits do not fill the rows, and on a stage that is not the last', async () => {
    const dir = await tinyCheckpoint(tmp.dir, 'dist-bad', { seed: 13 });
    const last = await open(dir, false);
    const vocab = last.info.vocabSize;
    await expect(
      last.distributions(new Float32Array(vocab + 1), Float32Array.of(1)),
    ).rejects.toMatchObject({
      code: 'BATCH_INVALID',
      message: expect.stringContaining('1 rows') as unknown,
    });
    const first = await OnnxShard.open({
      checkpointDir: dir,
      layerStart: 0,
      layerEnd: 2,
      cacheDir: path.join(tmp.dir, 'cache'),
    });
    opened.push(first);
    await expect(
      first.distributions(new Float32Array(vocab), Float32Array.of(1)),
    ).rejects.toMatchObject({
      code: 'BATCH_INVALID',
      message: expect.stringContaining('only a last stage') as unknown,
    });
  });

  it('ignores `proposals` for a stage that is not the last', async () => {
    const dir = await tinyCheckpoint(tmp.dir, 'first', { seed: 11 });
    const first = await OnnxShard.open({
      checkpointDir: dir,
      layerStart: 0,
      layerEnd: 2,
      cacheDir: path.join(tmp.dir, 'cache'),
      proposals: true,
    });
    opened.push(first);
    expect(first.proposals).toBe(false);
  });
});
