// A bigram language model for tests by distribution: the logits after a row depend only on
// that row's token, so the target's next-token distribution is known exactly (sampledDistribution
// of one table row) and a long generation is a Markov chain with a known transition matrix.
// Stage shards pass the token through as the hidden state; only the last computes logits. Rows
// are not cached (nothing depends on them), so commit, prune and release have nothing to do;
// the StageWorker still checks the protocol (commits of rows it holds).

import type { ModelInfo, ShardOutput, TreeBatch } from '@pipedec/model';
import type { StageShard } from '../src/index.js';

export class BigramShard implements StageShard {
  readonly info: ModelInfo;

  constructor(
    /** [vocab][vocab] logits of the next token after each token. */
    readonly table: number[][],
    readonly isFirst = true,
    readonly isLast = true,
    name = 'bigram',
  ) {
    this.info = {
      vocabSize: table.length,
      hiddenSize: 1,
      numLayers: 1,
      maxPositions: 1 << 20,
      bosTokenId: 0,
      eosTokenIds: [],
      fingerprint: name,
    };
  }

  forward(_seq: string, batch: TreeBatch): Promise<ShardOutput> {
    const n = batch.nodeIds.length;
    const tokens = this.isFirst ? batch.tokens! : batch.hidden!;
    if (!this.isLast) return Promise.resolve({ hidden: Float32Array.from(tokens) });
    const v = this.table.length;
    const logits = new Float32Array(n * v); // [n, vocab]
    for (let i = 0; i < n; i++) logits.set(this.table[tokens[i]], i * v);
    return Promise.resolve({ logits });
  }

  commit(): void {}
  prune(): void {}
  release(): void {}
}

/** A target table with wide distributions and a draft table that differs by `noise`. */
export function bigramTables(
  vocab: number,
  noise: number,
): { target: number[][]; draft: number[][] } {
  const target = Array.from({ length: vocab }, (_, a) =>
    Array.from({ length: vocab }, (_, b) => 1.5 * Math.sin(1.7 * a + 2.3 * b + 0.4)),
  );
  const draft = target.map((row, a) =>
    row.map((x, b) => x + noise * Math.cos(3.1 * a + 1.3 * b + 1.1)),
  );
  return { target, draft };
}

/** S stage shards of the same table: the first takes tokens, the last gives logits. */
export function bigramStages(table: number[][], stages: number): BigramShard[] {
  return Array.from(
    { length: stages },
    (_, s) => new BigramShard(table, s === 0, s === stages - 1),
  );
}
