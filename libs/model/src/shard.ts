// The public contract a pipeline stage programs against: a contiguous range of decoder layers
// with its own KV cache per sequence, fed tree-shaped batches of new rows.

/** What every stage of one checkpoint agrees on; compared across stages before decoding. */
export interface ModelInfo {
  vocabSize: number;
  hiddenSize: number;
  numLayers: number;
  maxPositions: number;
  bosTokenId: number;
  eosTokenIds: number[];
  /** sha256 over config.json and the tensor index (names, dtypes, shapes), hex. */
  fingerprint: string;
}

/**
 * New rows for one sequence. Positions of tree nodes are prefix length + depth - 1, where the
 * depth of a root (parent -1 or a committed row) is 1.
 */
export interface TreeBatch {
  nodeIds: Int32Array; // [n] row ids, unique within the sequence while the row lives
  /** [n] parent row's node id (a tree row, a committed row, or a row earlier in this batch); -1 = none (attends to the committed prefix only). */
  parentIds: Int32Array;
  positions: Int32Array; // [n] absolute positions
  tokens?: Int32Array; // [n] token ids (first stage)
  hidden?: Float32Array; // [n, hiddenSize] hidden states (other stages)
  /**
   * Last stage only: also return each row's top-k and log-sum-exps (ShardOutput.top), so a
   * draft's caller need not scan the vocabulary. A shard that cannot compute them in its graph
   * (opened without `proposals`, or not an ONNX shard) ignores this and returns the logits.
   */
  proposals?: ProposalRequest;
}

export interface ProposalRequest {
  k: number; // top-k per row, 1..vocabSize
  lseScales: Float32Array; // [s] multipliers m: ShardOutput.top.lse holds log(sum(exp(m * logits))) per row
  logits: boolean; // whether the full logits are wanted as well
}

/** A row's top-k of the logits (descending, ties by lowest id) and log-sum-exps. */
export interface TopLogits {
  k: number;
  ids: Int32Array; // [n, k] token ids
  logits: Float32Array; // [n, k] their logits
  lse: Float32Array; // [n, s] log(sum(exp(lseScales[j] * logits))) of each row
}

/** One sequence's rows in a call that computes several sequences at once. */
export interface SequenceBatch {
  seq: string;
  batch: TreeBatch;
}

export interface ShardOutput {
  hidden?: Float32Array; // [n, hiddenSize] (not last stage)
  logits?: Float32Array; // [n, vocabSize] (last stage; unless `top` is given and logits were not asked for)
  top?: TopLogits; // last stage, when the batch asked for proposals and the graph computes them
  /**
   * Time this forward itself computed, ms: its JavaScript before and after the runtime and the
   * runtime's run, not the time it waited behind other work on the thread (at the head the
   * draft and stage 0 share one). Absent where the shard cannot tell; callers use wall time.
   */
  computeMs?: number;
}

/** LayerShard.distributions' answer: the rows' probabilities and the runtime's time for them. */
export interface RowDistributions {
  probs: Float32Array; // [n, vocab]
  runMs: number;
}

export interface ShardMemory {
  kvBytes: number;
  kvLimitBytes: number; // Infinity when unbounded
  kvBytesPerRow: number; // one row's K and V across the layers held
  weightBytes: number;
  sequences: number;
}

export interface LayerShard {
  readonly info: ModelInfo;
  readonly layerStart: number; // first layer held (inclusive)
  readonly layerEnd: number; // exclusive
  readonly isFirst: boolean; // holds the embedding
  readonly isLast: boolean; // holds final norm + LM head
  /**
   * Computes the rows and appends them to the sequence's cache as tree rows. Row i attends to:
   * every committed row, its tree ancestors (via parentIds, across earlier calls and within
   * the batch), and itself.
   */
  forward(seq: string, batch: TreeBatch): Promise<ShardOutput>;
  /**
   * Computes several sequences' batches (at most one per sequence) together, in one runtime
   * call where the implementation can: the rows of a busy pipeline share one pass over the
   * weights. Per entry, the output or the error that refused that sequence.
   */
  forwardMany(items: readonly SequenceBatch[]): Promise<(ShardOutput | Error)[]>;
  /**
   * Last stage, where the runtime can: each row's sampled distribution softmax(scales[i] x
   * logits row i) (onnx-graph.ts buildSoftmaxGraph), and the runtime's own time for it. A
   * shard without it leaves the callers to compute them (libs/engine sampledDistribution).
   */
  distributions?(
    logits: Float32Array /* [n, vocab] */,
    scales: Float32Array /* [n] */,
  ): Promise<RowDistributions>;
  /** These tree rows (a chain, root first) become committed prefix rows, without recomputation. */
  commit(seq: string, nodeIds: readonly number[]): void;
  /** Drops every tree row whose id is not in keep (committed rows are untouched). */
  prune(seq: string, keep: ReadonlySet<number>): void;
  /** Keeps only the first `committedRows` committed rows and drops all tree rows. */
  truncate(seq: string, committedRows: number): void;
  /** Frees everything of the sequence. */
  release(seq: string): void;
  memory(): ShardMemory;
  close(): Promise<void>;
}

export interface OpenShardOptions {
  checkpointDir: string;
  layerStart?: number; // default 0
  layerEnd?: number; // default numLayers (exclusive)
  executionProvider?: string; // 'cpu' default
  maxKvBytes?: number; // default: unbounded (a stage node sets a default, stage-config.ts)
  cacheDir?: string; // graph cache dir, default <repo>/.cache/onnx or os tmp
  /**
   * Last stage (a draft model): build the graph with TopK and ReduceLogSumExp outputs, so
   * TreeBatch.proposals is answered in the runtime. Default false: a target's graph stays as
   * it is.
   */
  proposals?: boolean;
}
