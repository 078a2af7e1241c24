// CachedShard: what every LayerShard implementation shares: per-sequence KV caches, batch
// validation, the tree mask, and the commit/prune/truncate bookkeeping. Subclasses only compute
// the rows. (The engine's StageShard is another thing: the part of a LayerShard a stage drives.)
import type { LlamaConfig } from './config.js';
import { ModelError } from './errors.js';
import { KvBudget, SequenceKv } from './kv-cache.js';
import type { LayerShard, ModelInfo, ShardMemory, ShardOutput, TreeBatch } from './shard.js';

export interface ComputeRequest {
  batch: TreeBatch;
  kv: SequenceKv; // K/V of the new rows must be written at slots [past, past + n)
  past: number;
  capacity: number; // slots of the cache buffers
  maskCache: Float32Array; // [n, capacity] additive, over the cache slots
  maskNew: Float32Array; // [n, n] additive, over the batch's rows
}

export abstract class CachedShard implements LayerShard {
  readonly isFirst: boolean;
  readonly isLast: boolean;
  private readonly sequences = new Map<string, SequenceKv>();
  private readonly busy = new Set<string>();
  private readonly budget: KvBudget;
  private closed = false;

  protected constructor(
    readonly info: ModelInfo,
    protected readonly config: LlamaConfig,
    readonly layerStart: number,
    readonly layerEnd: number,
    maxKvBytes: number | undefined,
  ) {
    this.isFirst = layerStart === 0;
    this.isLast = layerEnd === config.numLayers;
    this.budget = new KvBudget(maxKvBytes ?? Number.POSITIVE_INFINITY);
  }

  protected abstract compute(req: ComputeRequest): Promise<ShardOutput>;
  protected abstract weightBytes(): number;
  protected abstract dispose(): Promise<void>;

  async forward(seq: string, batch: TreeBatch): Promise<ShardOutput> {
    const t0 = performance.now();
    this.assertOpen();
    if (this.busy.has(seq)) {
      throw new ModelError('SEQUENCE_STATE', `sequence "${seq}" already has a forward in flight`);
    }
    this.validateInputs(seq, batch);
    let kv = this.sequences.get(seq);
    const fresh = !kv;
    kv ??= new SequenceKv(seq, this.geometry(), this.budget);
    let plan;
    try {
      plan = kv.prepare(batch);
    } catch (e) {
      if (fresh) kv.release();
      throw e;
    }
    if (fresh) this.sequences.set(seq, kv);
    this.busy.add(seq);
    try {
      // compute() runs synchronously up to the runtime's await: that part is timed here.
      const pending = this.compute({ batch, kv, ...plan });
      const before = performance.now() - t0;
      const out = await pending;
      const t1 = performance.now();
      kv.append(batch);
      const after = performance.now() - t1;
      return {
        ...out,
        computeMs: out.computeMs === undefined ? undefined : before + out.computeMs + after,
      };
    } finally {
      this.busy.delete(seq);
    }
  }

  commit(seq: string, nodeIds: readonly number[]): void {
    this.sequence(seq, 'commit').commit(nodeIds);
  }

  prune(seq: string, keep: ReadonlySet<number>): void {
    this.sequence(seq, 'prune').prune(keep);
  }

  truncate(seq: string, committedRows: number): void {
    this.sequence(seq, 'truncate').truncate(committedRows);
  }

  release(seq: string): void {
    this.assertOpen();
    if (this.busy.has(seq)) {
      throw new ModelError('SEQUENCE_STATE', `sequence "${seq}" has a forward in flight`);
    }
    this.sequences.get(seq)?.release();
    this.sequences.delete(seq);
  }

  memory(): ShardMemory {
    return {
      kvBytes: this.budget.usedBytes,
      kvLimitBytes: this.budget.limitBytes,
      weightBytes: this.weightBytes(),
      sequences: this.sequences.size,
    };
  }

  /** Committed and total row counts of a sequence (0/0 when unknown); for diagnostics. */
  rowsOf(seq: string): { committed: number; rows: number } {
    const kv = this.sequences.get(seq);
    return { committed: kv?.committed ?? 0, rows: kv?.rows ?? 0 };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const kv of this.sequences.values()) kv.release();
    this.sequences.clear();
    await this.dispose();
  }

  protected geometry() {
    return {
      layers: this.layerEnd - this.layerStart,
      kvHeads: this.config.numKvHeads,
      headDim: this.config.headDim,
    };
  }

  private sequence(seq: string, op: string): SequenceKv {
    this.assertOpen();
    if (this.busy.has(seq)) {
      throw new ModelError('SEQUENCE_STATE', `${op} on sequence "${seq}" during its forward`);
    }
    const kv = this.sequences.get(seq);
    if (!kv) throw new ModelError('SEQUENCE_STATE', `${op}: unknown sequence "${seq}"`);
    return kv;
  }

  private validateInputs(seq: string, batch: TreeBatch): void {
    const n = batch.nodeIds.length;
    const where = `sequence "${seq}"`;
    if (this.isFirst) {
      const tokens = batch.tokens;
      if (!tokens || tokens.length !== n) {
        throw new ModelError(
          'BATCH_INVALID',
          `${where}: the first stage needs tokens [${n}], got ${tokens ? `[${tokens.length}]` : 'none'}`,
        );
      }
      for (const t of tokens) {
        if (t < 0 || t >= this.config.vocabSize) {
          throw new ModelError(
            'BATCH_INVALID',
            `${where}: token id ${t} outside the vocabulary [0, ${this.config.vocabSize})`,
          );
        }
      }
    } else {
      const hidden = batch.hidden;
      const want = n * this.config.hiddenSize;
      if (!hidden || hidden.length !== want) {
        throw new ModelError(
          'BATCH_INVALID',
          `${where}: stage [${this.layerStart}, ${this.layerEnd}) needs hidden [${n}, ${this.config.hiddenSize}] (${want} floats), got ${hidden ? hidden.length : 'none'}`,
        );
      }
    }
    const req = batch.proposals;
    if (req) {
      const vocab = this.config.vocabSize;
      if (!Number.isInteger(req.k) || req.k < 1 || req.k > vocab) {
        throw new ModelError(
          'BATCH_INVALID',
          `${where}: proposals.k must be a whole number in [1, ${vocab}] (the vocabulary), got ${req.k}`,
        );
      }
      if (req.lseScales.length === 0 || !req.lseScales.every(Number.isFinite)) {
        throw new ModelError(
          'BATCH_INVALID',
          `${where}: proposals.lseScales must hold at least one finite multiplier`,
        );
      }
    }
    for (const p of batch.positions) {
      if (!Number.isInteger(p) || p < 0 || p >= this.config.maxPositions) {
        throw new ModelError(
          'BATCH_INVALID',
          `${where}: position ${p} outside [0, ${this.config.maxPositions}) (max_position_embeddings)`,
        );
      }
    }
  }

  private assertOpen(): void {
    if (this.closed) throw new ModelError('CLOSED', 'the shard is closed');
  }
}

/** Checks a requested layer range against the model and fills the defaults. */
export function resolveRange(
  config: LlamaConfig,
  layerStart = 0,
  layerEnd = config.numLayers,
): { layerStart: number; layerEnd: number } {
  if (
    !Number.isInteger(layerStart) ||
    !Number.isInteger(layerEnd) ||
    layerStart < 0 ||
    layerEnd > config.numLayers ||
    layerStart >= layerEnd
  ) {
    throw new ModelError(
      'LAYER_RANGE_INVALID',
      `layer range [${layerStart}, ${layerEnd}) is not a non-empty range within [0, ${config.numLayers}) (num_hidden_layers)`,
    );
  }
  return { layerStart, layerEnd };
}
