// The KV cache of one sequence on one stage: committed prefix rows followed by tree rows.
//
// Layout: per layer, keys and values are both [kvHeads, capacity, headDim], so a slot's row in
// each head is headDim contiguous floats: commit and prune move whole rows (copyWithin / set),
// never single floats. The runtime reads the whole buffers in place (q.K^T through a MatMul
// with transB), unused slots hidden by the mask, so a forward never copies, concatenates or
// transposes the past. Slots are kept in the order: committed rows [0, committed), then live
// tree rows [committed, rows), then free slots. Rotary embeddings are applied before a key is
// stored, so a slot carries no position information and rows can be moved freely: commit moves
// the chain to the end of the prefix, prune compacts the tree region.
//
// Worked example: committed rows a b c (ids 0 1 2), tree rows d(parent 2) e(parent 2)
// f(parent 3). Slots: 0 1 2 | 3 4 5. Row f attends to 0 1 2 (the prefix), 3 (d, its parent)
// and itself; e attends to 0 1 2 and itself. commit([3]) makes d the fourth committed row;
// prune({5}) then drops e, leaving slots 0 1 2 3 | 5->4.
import { ModelError } from './errors.js';
import type { TreeBatch } from './shard.js';

/** Additive mask value for hidden positions: large enough to zero a softmax weight in f32. */
export const MASK_HIDDEN = -1e9;

export interface KvGeometry {
  layers: number; // layers held by the stage
  kvHeads: number;
  headDim: number;
}

/** Bytes one KV row (key and value, f32) takes across a stage's layers. */
export function kvBytesPerRow(g: KvGeometry): number {
  return 2 * g.layers * g.kvHeads * g.headDim * 4;
}

/** The stage-wide byte budget shared by all sequences. */
export class KvBudget {
  usedBytes = 0;
  sequences = 0;
  constructor(readonly limitBytes: number) {}
}

export interface BatchPlan {
  past: number; // rows already in the cache; the batch's rows go to slots [past, past + n)
  capacity: number; // slots per buffer while the batch runs
  maskCache: Float32Array; // [n, capacity] additive mask over the cache slots
  maskNew: Float32Array; // [n, n] additive mask over the batch's own rows
}

const MIN_CAPACITY = 16;
const GROWTH_STEP = 64;

export class SequenceKv {
  keys: Float32Array[] = []; // per layer [kvHeads, capacity, headDim]
  values: Float32Array[] = []; // per layer [kvHeads, capacity, headDim]
  capacity = 0;
  rows = 0;
  committed = 0;
  private nodeIds = new Int32Array(0); // [capacity] node id of each slot
  private parents = new Int32Array(0); // [capacity] parent node id of each slot, -1 = none
  private readonly slotOf = new Map<number, number>();
  private readonly rowFloats: number; // kvHeads * headDim

  constructor(
    readonly name: string,
    readonly geometry: KvGeometry,
    private readonly budget: KvBudget,
  ) {
    this.rowFloats = geometry.kvHeads * geometry.headDim;
    budget.sequences++;
  }

  /** Bytes held by this sequence's K and V buffers. */
  bytes(): number {
    return this.bytesFor(this.capacity);
  }

  /**
   * Validates a batch against the live rows, makes room for it, and builds its tree mask. On
   * error nothing has changed.
   */
  prepare(batch: TreeBatch): BatchPlan {
    const { nodeIds, parentIds, positions } = batch;
    const n = nodeIds.length;
    const where = `sequence "${this.name}"`;
    if (n === 0) throw new ModelError('BATCH_INVALID', `${where}: empty batch`);
    if (parentIds.length !== n || positions.length !== n) {
      throw new ModelError(
        'BATCH_INVALID',
        `${where}: nodeIds has ${n} entries but parentIds ${parentIds.length} and positions ${positions.length}`,
      );
    }
    const inBatch = new Map<number, number>();
    for (let i = 0; i < n; i++) {
      const id = nodeIds[i];
      if (inBatch.has(id) || this.slotOf.has(id)) {
        throw new ModelError('BATCH_INVALID', `${where}: node id ${id} is already live`);
      }
      const p = parentIds[i];
      if (p !== -1 && !inBatch.has(p) && !this.slotOf.has(p)) {
        throw new ModelError(
          'BATCH_INVALID',
          `${where}: node ${id} has parent ${p}, which is neither live nor earlier in the batch`,
        );
      }
      inBatch.set(id, i);
    }
    this.reserve(n);
    const past = this.rows;
    const capacity = this.capacity;
    const maskCache = new Float32Array(n * capacity).fill(MASK_HIDDEN);
    const maskNew = new Float32Array(n * n).fill(MASK_HIDDEN);
    for (let i = 0; i < n; i++) {
      const row = maskCache.subarray(i * capacity, (i + 1) * capacity);
      row.fill(0, 0, this.committed);
      maskNew[i * n + i] = 0;
      // Walk up the ancestry until the committed prefix (all visible already) or a root.
      let p = parentIds[i];
      while (p !== -1) {
        const j = inBatch.get(p);
        if (j !== undefined) {
          maskNew[i * n + j] = 0;
          p = parentIds[j];
          continue;
        }
        const slot = this.slotOf.get(p)!;
        if (slot < this.committed) break;
        row[slot] = 0;
        p = this.parents[slot];
      }
    }
    return { past, capacity, maskCache, maskNew };
  }

  /** Makes room for `n` more rows, growing the buffers within the stage's byte budget. */
  private reserve(n: number): void {
    const need = this.rows + n;
    if (need <= this.capacity) return;
    const current = this.bytes();
    const others = this.budget.usedBytes - current;
    // Growth by a quarter (at least GROWTH_STEP rows) keeps appends amortized O(1) while the
    // free slots, which every forward still scans (masked), stay under a fifth of the buffer.
    // Near the limit, fall back to the exact need.
    let capacity = Math.max(
      need,
      this.capacity
        ? this.capacity + Math.max(GROWTH_STEP, Math.ceil(this.capacity / 4))
        : MIN_CAPACITY,
    );
    if (others + this.bytesFor(capacity) > this.budget.limitBytes) capacity = need;
    if (others + this.bytesFor(capacity) > this.budget.limitBytes) {
      throw new ModelError(
        'KV_LIMIT',
        `sequence "${this.name}" needs ${need} KV rows (${this.bytesFor(need)} bytes), but the stage's KV limit is ${this.budget.limitBytes} bytes and ${others} are held by ${this.budget.sequences - 1} other sequence(s)`,
      );
    }
    const { layers, kvHeads, headDim } = this.geometry;
    // Copies each head's used slots into a buffer of the new capacity.
    const grow = (old: Float32Array | undefined, segments: number, width: number) => {
      const next = new Float32Array(capacity * this.rowFloats);
      for (let s = 0; old && s < segments; s++) {
        const from = s * this.capacity * width;
        next.set(old.subarray(from, from + this.rows * width), s * capacity * width);
      }
      return next;
    };
    this.keys = Array.from({ length: layers }, (_, l) => grow(this.keys[l], kvHeads, headDim));
    this.values = Array.from({ length: layers }, (_, l) => grow(this.values[l], kvHeads, headDim));
    const ids = new Int32Array(capacity);
    ids.set(this.nodeIds.subarray(0, this.rows));
    const parents = new Int32Array(capacity);
    parents.set(this.parents.subarray(0, this.rows));
    this.nodeIds = ids;
    this.parents = parents;
    this.budget.usedBytes += this.bytesFor(capacity) - current;
    this.capacity = capacity;
  }

  /** Writes K/V rows ([n, kvHeads, headDim] each, keys rotated) of one layer at `slot`. */
  writeRows(layer: number, slot: number, k: Float32Array, v: Float32Array): void {
    const { kvHeads, headDim } = this.geometry;
    const cap = this.capacity;
    const keys = this.keys[layer];
    const values = this.values[layer];
    const n = k.length / this.rowFloats;
    for (let i = 0; i < n; i++) {
      for (let h = 0; h < kvHeads; h++) {
        const src = (i * kvHeads + h) * headDim;
        const dst = (h * cap + slot + i) * headDim;
        keys.set(k.subarray(src, src + headDim), dst);
        values.set(v.subarray(src, src + headDim), dst);
      }
    }
  }

  /** Element d of kv head h of the key at `slot` (for the reference forward). */
  keyAt(layer: number, slot: number, h: number, d: number): number {
    return this.keys[layer][(h * this.capacity + slot) * this.geometry.headDim + d];
  }

  valueAt(layer: number, slot: number, h: number, d: number): number {
    return this.values[layer][(h * this.capacity + slot) * this.geometry.headDim + d];
  }

  /** Records the batch's rows (their K/V already written at slots [rows, rows + n)). */
  append(batch: TreeBatch): void {
    const n = batch.nodeIds.length;
    for (let i = 0; i < n; i++) {
      const slot = this.rows + i;
      this.nodeIds[slot] = batch.nodeIds[i];
      this.parents[slot] = batch.parentIds[i];
      this.slotOf.set(batch.nodeIds[i], slot);
    }
    this.rows += n;
  }

  commit(ids: readonly number[]): void {
    if (ids.length === 0) return;
    const where = `sequence "${this.name}"`;
    const chain = ids.map((id, k) => {
      const slot = this.slotOf.get(id);
      if (slot === undefined || slot < this.committed) {
        throw new ModelError(
          'SEQUENCE_STATE',
          `${where}: cannot commit node ${id}: it is not a live tree row`,
        );
      }
      const parent = this.parents[slot];
      if (k > 0 ? parent !== ids[k - 1] : !this.isPrefixOrNone(parent)) {
        throw new ModelError(
          'SEQUENCE_STATE',
          `${where}: commit chain broken at node ${id}: its parent is ${parent}, expected ${k > 0 ? ids[k - 1] : 'a committed row or -1'}`,
        );
      }
      return slot;
    });
    const inChain = new Set(chain);
    const rest: number[] = [];
    for (let s = this.committed; s < this.rows; s++) if (!inChain.has(s)) rest.push(s);
    this.rearrangeTree([...chain, ...rest]);
    this.committed += chain.length;
  }

  prune(keep: ReadonlySet<number>): void {
    const kept: number[] = [];
    for (let s = this.committed; s < this.rows; s++) {
      if (keep.has(this.nodeIds[s])) kept.push(s);
    }
    if (kept.length === this.rows - this.committed) return;
    for (const s of kept) {
      const parent = this.parents[s];
      if (!this.isPrefixOrNone(parent) && !keep.has(parent)) {
        throw new ModelError(
          'SEQUENCE_STATE',
          `sequence "${this.name}": prune keeps node ${this.nodeIds[s]} but drops its parent ${parent}`,
        );
      }
    }
    this.rearrangeTree(kept);
  }

  truncate(committedRows: number): void {
    if (!Number.isInteger(committedRows) || committedRows < 0 || committedRows > this.committed) {
      throw new ModelError(
        'SEQUENCE_STATE',
        `sequence "${this.name}": cannot truncate to ${committedRows} committed rows; it has ${this.committed}`,
      );
    }
    for (let s = committedRows; s < this.rows; s++) this.slotOf.delete(this.nodeIds[s]);
    this.rows = this.committed = committedRows;
  }

  release(): void {
    this.budget.usedBytes -= this.bytes();
    this.budget.sequences--;
    this.keys = [];
    this.values = [];
    this.capacity = this.rows = this.committed = 0;
    this.slotOf.clear();
  }

  private isPrefixOrNone(parent: number): boolean {
    if (parent === -1) return true;
    const slot = this.slotOf.get(parent);
    return slot !== undefined && slot < this.committed;
  }

  /** Rewrites the tree region as the rows at `order` (old slots), in that order. */
  private rearrangeTree(order: readonly number[]): void {
    const base = this.committed;
    for (let s = base; s < this.rows; s++) this.slotOf.delete(this.nodeIds[s]);
    const identity = order.every((s, j) => s === base + j);
    if (!identity) {
      // Runs of consecutive old slots landing on consecutive new slots move as one block.
      const runs = rowRuns(order, base);
      // A prune keeps slots in increasing order, so every row moves down or stays: the moves
      // can run in place, front to back. A commit puts the chain first, which may move a row
      // up over one not yet moved, so it copies from a snapshot of the tree region instead.
      const inPlace = order.every((s, j) => j === 0 || s > order[j - 1]);
      const { kvHeads, headDim } = this.geometry;
      const cap = this.capacity;
      const treeFloats = (this.rows - base) * headDim;
      const scratch = inPlace ? null : new Float32Array(treeFloats);
      const move = (buf: Float32Array) => {
        for (let h = 0; h < kvHeads; h++) {
          const head = (h * cap + base) * headDim; // float offset of slot `base` in head h
          if (scratch) scratch.set(buf.subarray(head, head + treeFloats));
          for (const [from, to, len] of runs) {
            const src = from * headDim;
            const dst = head + to * headDim;
            if (scratch) buf.set(scratch.subarray(src, src + len * headDim), dst);
            else buf.copyWithin(dst, head + src, head + src + len * headDim);
          }
        }
      };
      for (const k of this.keys) move(k);
      for (const v of this.values) move(v);
      const ids = this.nodeIds.slice(base, this.rows);
      const parents = this.parents.slice(base, this.rows);
      order.forEach((s, j) => {
        this.nodeIds[base + j] = ids[s - base];
        this.parents[base + j] = parents[s - base];
      });
    }
    this.rows = base + order.length;
    for (let s = base; s < this.rows; s++) this.slotOf.set(this.nodeIds[s], s);
  }

  private bytesFor(capacity: number): number {
    return capacity * kvBytesPerRow(this.geometry);
  }
}

/**
 * The moves that turn the tree region into `order` (old slots, new slot = base + index), as
 * [from, to, length] runs relative to `base`, skipping rows that stay where they are.
 */
function rowRuns(order: readonly number[], base: number): [number, number, number][] {
  const runs: [number, number, number][] = [];
  for (let j = 0; j < order.length;) {
    let len = 1;
    while (j + len < order.length && order[j + len] === order[j] + len) len++;
    const from = order[j] - base;
    if (from !== j) runs.push([from, j, len]);
    j += len;
  }
  return runs;
}
