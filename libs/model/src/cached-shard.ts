// CachedShard: what every LayerShard implementation shares: per-sequence KV caches, batch
// validation, the tree mask, and the commit/prune/truncate bookkeeping. Subclasses only compute
// the rows. (The engine's StageShard is another thing: the part of a LayerShard a stage drives.)
//
// Several sequences in one call (forwardMany), so the weights are read once for all of them
// and the runtime's per-call cost is paid once. A subclass with computeMany (OnnxShard) puts
// each sequence in its own entry of the graph's batch dimension, padded (onnx-shard.ts). The
// other way, below, runs their rows as one ragged batch: each sequence keeps its own cache;
// for the call its used rows are gathered into one scratch buffer per layer ([kvHeads, sum of
// past rows, headDim]), and the masks become block-diagonal: a row sees only its own
// sequence's slots and tree ancestors. Every row then scores every sequence's past, so its
// attention grows as the square of the sequences (bench:model's joint table measures both).
//
//   gathered cache slots:  | seq a: past_a rows | seq b: past_b rows |
//   rows of the call:      | a's n_a rows       | b's n_b rows       |
//   mask_cache [N, P]:  a's rows see a's slots (by a's own tree mask), b's rows b's slots
//   mask_new   [N, N]:  blocks a|a and b|b from each sequence's mask, the rest hidden
//
// The gather copies 2 x layers x past x kvHeads x headDim floats per sequence (bench:model's
// "joint" rows measure it beside the runtime's time); it buys one runtime call instead of one
// per sequence. A subclass that cannot run a gathered batch (the plain-TypeScript reference)
// computes the sequences one after the other.
import type { LlamaConfig } from './config.js';
import { ModelError } from './errors.js';
import { KvBudget, kvBytesPerRow, MASK_HIDDEN, SequenceKv, type BatchPlan } from './kv-cache.js';
import type {
  LayerShard,
  ModelInfo,
  SequenceBatch,
  ShardMemory,
  ShardOutput,
  TreeBatch,
} from './shard.js';

/** Where a compute reads the past and writes the new rows' K/V. */
export interface ComputeKv {
  keys: Float32Array[]; // per layer [kvHeads, capacity, headDim]
  values: Float32Array[];
  /** Writes the new rows' K/V ([n, kvHeads, headDim], keys rotated) of one layer at `slot`. */
  writeRows(layer: number, slot: number, k: Float32Array, v: Float32Array): void;
}

/**
 * How forwardMany runs several sequences: 'none', one call each; 'ragged', one call over the
 * gathered caches (gather, below); 'padded', one call with a batch entry per sequence
 * (computeMany, grouped by paddedGroups).
 */
export type JoinMode = 'none' | 'ragged' | 'padded';

/**
 * Per-layer K and V buffers that joint calls copy caches into, reused from call to call. One
 * call holds them at a time; a call that finds them held gets buffers of its own.
 */
export class JointScratch {
  private buffers: { keys: Float32Array[]; values: Float32Array[]; floats: number } | null = null;
  private held = false;

  constructor(private readonly layers: number) {}

  /** Buffers of at least `floats` each; release() once the runtime is done reading them. */
  take(floats: number): { keys: Float32Array[]; values: Float32Array[]; release: () => void } {
    let b = this.buffers;
    if (this.held || !b || b.floats < floats) {
      const size = Math.max(floats, Math.ceil((b?.floats ?? 0) * 1.25));
      const make = () => Array.from({ length: this.layers }, () => new Float32Array(size));
      b = { keys: make(), values: make(), floats: size };
      if (!this.held) this.buffers = b;
    }
    const mine = b === this.buffers;
    if (mine) this.held = true;
    return {
      keys: b.keys,
      values: b.values,
      release: () => {
        if (mine) this.held = false;
      },
    };
  }
}

export interface ComputeRequest {
  batch: TreeBatch;
  kv: ComputeKv; // K/V of the new rows must be written at slots [past, past + n)
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
  /** Buffers the joint calls (either join) copy caches into. */
  protected readonly jointScratch: JointScratch;

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
    this.jointScratch = new JointScratch(layerEnd - layerStart);
  }

  protected abstract compute(req: ComputeRequest): Promise<ShardOutput>;
  /**
   * Computes several sequences' requests (each as compute() would get it alone) in one call
   * whose batch dimension holds one sequence each (padded to the longest), the outputs in the
   * same order. Needed for joinMode 'padded'.
   */
  protected computeMany(_reqs: readonly ComputeRequest[]): Promise<ShardOutput[]> {
    return Promise.reject(new Error(`${this.constructor.name} has no padded joint call`));
  }
  /**
   * How forwardMany joins sequences. 'ragged' needs a compute() that reads the past only
   * through kv.keys/values and the masks and writes it only through kv.writeRows; 'padded'
   * needs computeMany.
   */
  protected get joinMode(): JoinMode {
    return 'none';
  }
  protected abstract weightBytes(): number;
  protected abstract dispose(): Promise<void>;

  async forward(seq: string, batch: TreeBatch): Promise<ShardOutput> {
    const t0 = performance.now();
    this.assertOpen();
    if (this.busy.has(seq)) {
      throw new ModelError('SEQUENCE_STATE', `sequence "${seq}" already has a forward in flight`);
    }
    const { kv, plan } = this.prepareSequence(seq, batch);
    return this.runPrepared(seq, batch, kv, plan, t0);
  }

  /**
   * Validates a batch and makes room for it in the sequence's cache (created on its first
   * batch). On error nothing has changed: a cache created for the batch is released again.
   */
  private prepareSequence(seq: string, batch: TreeBatch): { kv: SequenceKv; plan: BatchPlan } {
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
    return { kv, plan };
  }

  private async runPrepared(
    seq: string,
    batch: TreeBatch,
    kv: SequenceKv,
    plan: BatchPlan,
    t0: number,
  ): Promise<ShardOutput> {
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

  /**
   * Computes several sequences' rows in one runtime call where the subclass can (at most one
   * batch per sequence). Each entry of the result is that sequence's output, or the error that
   * refused it: one sequence's bad batch never fails the others. An error of the runtime itself
   * fails every sequence of the call, each keeping its cache as before the call.
   */
  async forwardMany(items: readonly SequenceBatch[]): Promise<(ShardOutput | Error)[]> {
    // A draft's proposal outputs are per call: such batches run one at a time.
    const mode = this.joinMode;
    if (items.length === 1 || mode === 'none' || items.some((i) => i.batch.proposals)) {
      const out: (ShardOutput | Error)[] = [];
      for (const { seq, batch } of items) out.push(await this.forward(seq, batch).catch(asError));
      return out;
    }
    let t0 = performance.now();
    this.assertOpen();
    const results: (ShardOutput | Error)[] = new Array<ShardOutput | Error>(items.length);
    const joined: Joined[] = [];
    const claimed = new Set<string>();
    items.forEach(({ seq, batch }, index) => {
      try {
        if (this.busy.has(seq) || claimed.has(seq)) {
          throw new ModelError(
            'SEQUENCE_STATE',
            `sequence "${seq}" already has a forward in flight`,
          );
        }
        const { kv, plan } = this.prepareSequence(seq, batch);
        claimed.add(seq);
        joined.push({ index, seq, batch, kv, plan });
      } catch (e) {
        results[index] = asError(e);
      }
    });
    if (joined.length === 0) return results;
    if (joined.length === 1) {
      // Prepared already; run it alone through the zero-copy path.
      const [j] = joined;
      const out = await this.runPrepared(j.seq, j.batch, j.kv, j.plan, t0).catch(asError);
      results[j.index] = out;
      return results;
    }
    for (const j of joined) this.busy.add(j.seq);
    if (mode === 'ragged') {
      await this.runJoint(joined, results, t0, () => this.computeRagged(joined));
      return results;
    }
    const groups = paddedGroups(
      joined.map((j) => j.batch.nodeIds.length),
      joined.map((j) => j.plan.past),
    );
    for (const group of groups) {
      const members = group.map((k) => joined[k]);
      if (members.length > 1) {
        await this.runJoint(members, results, t0, () =>
          this.computeMany(members.map((j) => ({ batch: j.batch, kv: j.kv, ...j.plan }))),
        );
      } else {
        const [j] = members;
        results[j.index] = await this.runPrepared(j.seq, j.batch, j.kv, j.plan, t0).catch(asError);
      }
      t0 = performance.now(); // the preparation is charged to the first call only
    }
    return results;
  }

  /**
   * One joint call of prepared sequences, either join: `call` computes them (its outputs in
   * their order, each output's computeMs its share of the call). An error fails every one of
   * them, each keeping its cache; else each cache gains its rows, and the preparation and
   * bookkeeping around the call are shared by rows like the call's own time.
   */
  private async runJoint(
    joined: readonly Joined[],
    results: (ShardOutput | Error)[],
    t0: number,
    call: () => Promise<ShardOutput[]>,
  ): Promise<void> {
    try {
      const pending = call();
      const before = performance.now() - t0;
      let outs: ShardOutput[];
      try {
        outs = await pending;
      } catch (e) {
        for (const j of joined) results[j.index] = asError(e);
        return;
      }
      const t1 = performance.now();
      joined.forEach((j, k) => {
        j.kv.append(j.batch);
        results[j.index] = outs[k];
      });
      const around = before + (performance.now() - t1);
      const rows = joined.reduce((sum, j) => sum + j.batch.nodeIds.length, 0);
      joined.forEach((j, k) => {
        const ms = outs[k].computeMs;
        if (ms !== undefined) outs[k].computeMs = ms + (around * j.batch.nodeIds.length) / rows;
      });
    } finally {
      for (const j of joined) this.busy.delete(j.seq);
    }
  }

  /** The ragged join: one compute() over the gathered caches, its rows split per sequence. */
  private async computeRagged(joined: readonly Joined[]): Promise<ShardOutput[]> {
    const { request, rowStart, release } = this.gather(joined);
    let out: ShardOutput;
    try {
      out = await this.compute(request);
    } finally {
      release();
    }
    const width = this.isLast ? this.info.vocabSize : this.config.hiddenSize;
    const whole = this.isLast ? out.logits! : out.hidden!;
    const rows = rowStart[joined.length];
    return joined.map((_, k) => {
      const part = whole.subarray(rowStart[k] * width, rowStart[k + 1] * width);
      const computeMs =
        out.computeMs === undefined
          ? undefined
          : (out.computeMs * (rowStart[k + 1] - rowStart[k])) / rows;
      return this.isLast ? { logits: part, computeMs } : { hidden: part, computeMs };
    });
  }

  /** One request of the whole joint call: rows concatenated, caches gathered, masks blocked. */
  private gather(joined: readonly { batch: TreeBatch; kv: SequenceKv; plan: BatchPlan }[]): {
    request: ComputeRequest;
    rowStart: number[];
    release: () => void;
  } {
    const { layers, kvHeads, headDim } = this.geometry();
    const rowStart = [0];
    const slotStart = [0];
    for (const j of joined) {
      rowStart.push(rowStart.at(-1)! + j.batch.nodeIds.length);
      slotStart.push(slotStart.at(-1)! + j.plan.past);
    }
    const n = rowStart.at(-1)!;
    const past = slotStart.at(-1)!;
    const capacity = Math.max(past, 1); // a zero-slot cache input is avoided: one hidden slot
    const floats = kvHeads * capacity * headDim;
    const scratch = this.jointScratch.take(floats);
    // The runtime reads [kvHeads, capacity, headDim]: views of the scratch at that stride.
    const view = (buf: Float32Array) => buf.subarray(0, floats);
    const keys = scratch.keys.map(view);
    const values = scratch.values.map(view);
    joined.forEach((j, k) => {
      const rows = j.plan.past;
      if (rows === 0) return;
      const cap = j.kv.capacity;
      for (let l = 0; l < layers; l++) {
        for (let h = 0; h < kvHeads; h++) {
          const from = h * cap * headDim;
          const to = (h * capacity + slotStart[k]) * headDim;
          keys[l].set(j.kv.keys[l].subarray(from, from + rows * headDim), to);
          values[l].set(j.kv.values[l].subarray(from, from + rows * headDim), to);
        }
      }
    });
    const maskCache = new Float32Array(n * capacity).fill(MASK_HIDDEN);
    const maskNew = new Float32Array(n * n).fill(MASK_HIDDEN);
    const positions = new Int32Array(n);
    const nodeIds = new Int32Array(n);
    const parentIds = new Int32Array(n);
    const tokens = this.isFirst ? new Int32Array(n) : undefined;
    const hidden = this.isFirst ? undefined : new Float32Array(n * this.config.hiddenSize);
    joined.forEach((j, k) => {
      const r0 = rowStart[k];
      const m = j.batch.nodeIds.length;
      const { past: jp, capacity: jc } = j.plan;
      for (let i = 0; i < m; i++) {
        const src = j.plan.maskCache.subarray(i * jc, i * jc + jp);
        maskCache.set(src, (r0 + i) * capacity + slotStart[k]);
        maskNew.set(j.plan.maskNew.subarray(i * m, (i + 1) * m), (r0 + i) * n + r0);
      }
      positions.set(j.batch.positions, r0);
      nodeIds.set(j.batch.nodeIds, r0);
      parentIds.set(j.batch.parentIds, r0);
      if (tokens) tokens.set(j.batch.tokens!, r0);
      if (hidden) hidden.set(j.batch.hidden!, r0 * this.config.hiddenSize);
    });
    const rowFloats = kvHeads * headDim;
    const kv: ComputeKv = {
      keys,
      values,
      // The new rows go straight to each sequence's own cache, after its past rows.
      writeRows: (layer, _slot, kNew, vNew) => {
        joined.forEach((j, k) => {
          const a = rowStart[k] * rowFloats;
          const b = rowStart[k + 1] * rowFloats;
          j.kv.writeRows(layer, j.plan.past, kNew.subarray(a, b), vNew.subarray(a, b));
        });
      },
    };
    return {
      request: {
        batch: { nodeIds, parentIds, positions, tokens, hidden },
        kv,
        past,
        capacity,
        maskCache,
        maskNew,
      },
      rowStart,
      release: scratch.release,
    };
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
      kvBytesPerRow: kvBytesPerRow(this.geometry()),
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

/**
 * The padded calls of a joint step: indexes of the sequences (each with `rows[i]` new rows over
 * `past[i]` cached ones) grouped so that padding at most doubles an entry's work: in a group,
 * the largest batch N and the smallest m satisfy N - m <= max(2, N / 2), and the longest past
 * P and any other p satisfy P - p <= max(64, P / 2). Sequences are placed longest past first,
 * each in the first group that keeps both rules, else in a new one.
 *
 * Why: padding is computed, not skipped. Every entry runs the projections for N rows and
 * attention over P slots. bench:model's joint table (middle of 4 stages, past 256) costs a
 * call about 0.15 ms, an entry about 0.155 ms and a padded row about 0.03 ms: 4 requests of 4
 * rows and 4 of 1 took 2.07 ms together against 0.99 + 0.69 ms in two calls. And on 4
 * loopback stages with 8 clients of mixed prompts (32-888 tokens), joining them with no rule
 * cost PipeDec 1.26x the stage CPU per token of one request per call (bench:batching), every
 * entry attending over the longest prompt's past.
 */
export function paddedGroups(rows: readonly number[], past: readonly number[]): number[][] {
  const order = rows
    .map((_, i) => i)
    .sort((a, b) => past[b] - past[a] || rows[b] - rows[a] || a - b);
  const groups: { members: number[]; maxRows: number; minRows: number; past: number }[] = [];
  for (const i of order) {
    const fits = (g: (typeof groups)[number]) => {
      const top = Math.max(g.maxRows, rows[i]);
      const low = Math.min(g.minRows, rows[i]);
      return top - low <= Math.max(2, top / 2) && g.past - past[i] <= Math.max(64, g.past / 2);
    };
    const g = groups.find(fits);
    if (g) {
      g.members.push(i);
      g.maxRows = Math.max(g.maxRows, rows[i]);
      g.minRows = Math.min(g.minRows, rows[i]);
    } else {
      groups.push({ members: [i], maxRows: rows[i], minRows: rows[i], past: past[i] });
    }
  }
  return groups.map((g) => g.members);
}

/** A sequence of a joint call, prepared: its place in the call's items, batch, cache, plan. */
interface Joined {
  index: number;
  seq: string;
  batch: TreeBatch;
  kv: SequenceKv;
  plan: BatchPlan;
}

function asError(e: unknown): Error {
  return e instanceof Error ? e : new Error(String(e));
}
