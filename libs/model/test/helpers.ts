// Shared test helpers: temporary folders, tiny checkpoints, and tensor comparison.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

import {
  Checkpoint,
  openShard,
  splitLayers,
  writeRandomCheckpoint,
  type LayerShard,
  type RandomCheckpointOptions,
  type ShardOutput,
  type TreeBatch,
} from '../src/index.js';

export async function tempDir(
  prefix: string,
): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), `pipedec-model-${prefix}-`));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

export const TINY: RandomCheckpointOptions = {
  layers: 4,
  hidden: 32,
  heads: 4,
  kvHeads: 2,
  intermediate: 64,
  vocab: 300,
  seed: 7,
  dtype: 'bf16',
  tied: false,
  ropeScaling: true,
};

export async function tinyCheckpoint(
  root: string,
  name: string,
  overrides: Partial<RandomCheckpointOptions> = {},
): Promise<string> {
  const dir = path.join(root, name);
  await writeRandomCheckpoint(dir, { ...TINY, ...overrides });
  return dir;
}

/** Largest absolute difference, failing loudly on a length mismatch. */
export function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

export function expectClose(a: Float32Array, b: Float32Array, tol: number, label: string): void {
  const d = maxAbsDiff(a, b);
  if (!(d <= tol)) throw new Error(`${label}: max abs difference ${d} exceeds ${tol}`);
}

export function argmax(row: Float32Array): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
  return best;
}

/** Stages in order, driven like a pipeline: hidden states of one feed the next. */
export class Chain {
  constructor(readonly stages: LayerShard[]) {}

  static async open(checkpointDir: string, stages: number, cacheDir: string): Promise<Chain> {
    const ckpt = await Checkpoint.open(checkpointDir);
    await ckpt.close();
    const ranges = splitLayers(ckpt.config.numLayers, stages);
    return new Chain(
      await Promise.all(ranges.map((r) => openShard({ checkpointDir, ...r, cacheDir }))),
    );
  }

  async forward(seq: string, batch: TreeBatch): Promise<Float32Array> {
    let out: ShardOutput = {};
    for (const [s, stage] of this.stages.entries()) {
      out = await stage.forward(
        seq,
        s === 0 ? batch : { ...batch, tokens: undefined, hidden: out.hidden },
      );
    }
    return out.logits!;
  }

  commit(seq: string, ids: number[]): void {
    for (const s of this.stages) s.commit(seq, ids);
  }

  prune(seq: string, keep: ReadonlySet<number>): void {
    for (const s of this.stages) s.prune(seq, keep);
  }

  async close(): Promise<void> {
    await Promise.all(this.stages.map((s) => s.close()));
  }
}

/** A chain batch: tokens at consecutive positions, each the parent of the next. */
export function chainBatch(
  tokens: number[],
  firstId: number,
  firstPos: number,
  parent: number,
): TreeBatch {
  const n = tokens.length;
  return {
    nodeIds: Int32Array.from({ length: n }, (_, i) => firstId + i),
    parentIds: Int32Array.from({ length: n }, (_, i) => (i === 0 ? parent : firstId + i - 1)),
    positions: Int32Array.from({ length: n }, (_, i) => firstPos + i),
    tokens: Int32Array.from(tokens),
  };
}

export function row(logits: Float32Array, i: number, vocab: number): Float32Array {
  return logits.subarray(i * vocab, (i + 1) * vocab);
}
