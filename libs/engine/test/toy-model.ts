// A toy language model with exact integer arithmetic and the real shard semantics: every row
// attends to the committed rows, its tree ancestors and itself, per layer, and the result
// depends on all of them in position order. A row that attends to a wrong row (a pruned
// sibling, a stale node) changes every later token, so the parity tests catch it. Layer ranges
// compose exactly: stages 0..S-1 together equal the whole model.

import type { ModelInfo, ShardOutput, TreeBatch } from '@pipedec/model';
import type { StageShard } from '../src/index.js';

export interface ToyConfig {
  layers: number;
  vocab: number;
  maxPositions: number;
  seed: number;
  eosTokenIds?: number[];
  /** Draft only: share of paths where a different token is boosted to the top. */
  disagreement?: number;
  /** Draft only: seed of the disagreement. */
  noiseSeed?: number;
}

interface Row {
  id: number;
  position: number;
  parent: number; // tree parent id, or -1
  keys: number[]; // [layers in range] attention keys
}

interface SeqCache {
  committed: Row[];
  committedIds: Set<number>;
  committedAcc: number[]; // [layers in range] attention fold over the committed rows
  tree: Map<number, Row>;
}

function mix(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d);
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b);
  x ^= x >>> 16;
  return x >>> 0;
}

const MASK = 0xffffff; // 24 bits: exact in float32

export class ToyShard implements StageShard {
  readonly info: ModelInfo;
  readonly isFirst: boolean;
  readonly isLast: boolean;
  readonly seqs = new Map<string, SeqCache>();
  forwards = 0;

  constructor(
    readonly config: ToyConfig,
    readonly layerStart = 0,
    readonly layerEnd = config.layers,
  ) {
    this.info = {
      vocabSize: config.vocab,
      hiddenSize: 1,
      numLayers: config.layers,
      maxPositions: config.maxPositions,
      bosTokenId: 0,
      eosTokenIds: config.eosTokenIds ?? [],
      fingerprint: `toy-${config.seed}`,
    };
    this.isFirst = layerStart === 0;
    this.isLast = layerEnd === config.layers;
  }

  /** Committed and tree row ids of a sequence (empty when released). */
  rows(seq: string): { committed: number[]; tree: number[] } {
    const c = this.seqs.get(seq);
    return { committed: c?.committed.map((r) => r.id) ?? [], tree: [...(c?.tree.keys() ?? [])] };
  }

  async forward(seq: string, batch: TreeBatch): Promise<ShardOutput> {
    await new Promise((resolve) => setImmediate(resolve));
    this.forwards++;
    let cache = this.seqs.get(seq);
    if (!cache) {
      cache = {
        committed: [],
        committedIds: new Set(),
        committedAcc: Array.from({ length: this.layerEnd - this.layerStart }, () => 0x12345),
        tree: new Map(),
      };
      this.seqs.set(seq, cache);
    }
    const n = batch.nodeIds.length;
    const out = new Float32Array(this.isLast ? n * this.config.vocab : n); // [n, vocab] or [n, 1]
    for (let i = 0; i < n; i++) {
      const id = batch.nodeIds[i];
      const parent = batch.parentIds[i];
      const position = batch.positions[i];
      if (cache.tree.has(id) || cache.committedIds.has(id)) throw new Error(`row ${id} exists`);
      const ancestors: Row[] = [];
      let expected = cache.committed.length;
      if (parent >= 0 && !cache.committedIds.has(parent)) {
        const p = cache.tree.get(parent);
        if (!p) throw new Error(`${seq}: parent ${parent} of row ${id} is not held`);
        expected = p.position + 1;
        for (let a: Row | undefined = p; a; a = cache.tree.get(a.parent)) ancestors.push(a);
      }
      if (position >= this.config.maxPositions) {
        throw new Error(`${seq}: row ${id} at position ${position} beyond the context window`);
      }
      if (position !== expected) {
        throw new Error(`${seq}: row ${id} at position ${position}, expected ${expected}`);
      }
      ancestors.reverse();
      let h = this.isFirst
        ? mix(batch.tokens![i] * 7919 + position * 104729 + this.config.seed) & MASK
        : batch.hidden![i];
      const keys: number[] = [];
      for (let l = this.layerStart; l < this.layerEnd; l++) {
        const key = mix(h ^ Math.imul(l + 1, 0x9e3779b1) ^ this.config.seed);
        keys.push(key);
        const k = l - this.layerStart;
        let acc = cache.committedAcc[k];
        for (const r of ancestors) acc = mix(acc ^ r.keys[k]);
        acc = mix(acc ^ key);
        h = mix(h ^ acc ^ l) & MASK;
      }
      cache.tree.set(id, { id, position, parent: parent >= 0 ? parent : -1, keys });
      if (!this.isLast) {
        out[i] = h;
        continue;
      }
      const v = this.config.vocab;
      for (let t = 0; t < v; t++)
        out[i * v + t] = (mix(h ^ Math.imul(t + 1, 0x85ebca6b)) & 0xffff) / 4096;
      const rate = this.config.disagreement ?? 0;
      if (rate > 0 && mix(h ^ (this.config.noiseSeed ?? 1)) / 0x1_0000_0000 < rate) {
        out[i * v + (mix(h ^ 0xabcdef) % v)] += 20;
      }
    }
    return this.isLast ? { logits: out } : { hidden: out };
  }

  commit(seq: string, nodeIds: readonly number[]): void {
    const cache = this.seqs.get(seq);
    if (!cache) throw new Error(`${seq}: commit on an unknown sequence`);
    for (const id of nodeIds) {
      const row = cache.tree.get(id);
      if (!row) throw new Error(`${seq}: commit of row ${id} that is not a tree row`);
      if (row.position !== cache.committed.length) {
        throw new Error(
          `${seq}: commit of row ${id} at ${row.position}, prefix ${cache.committed.length}`,
        );
      }
      cache.tree.delete(id);
      cache.committed.push(row);
      cache.committedIds.add(id);
      row.keys.forEach((key, k) => (cache.committedAcc[k] = mix(cache.committedAcc[k] ^ key)));
    }
    // A tree row whose parent just became committed now hangs off the prefix.
    for (const r of cache.tree.values()) if (cache.committedIds.has(r.parent)) r.parent = -1;
  }

  prune(seq: string, keep: ReadonlySet<number>): void {
    const cache = this.seqs.get(seq);
    if (!cache) return;
    for (const id of [...cache.tree.keys()]) if (!keep.has(id)) cache.tree.delete(id);
  }

  release(seq: string): void {
    this.seqs.delete(seq);
  }
}

/** The stages of a toy target split as evenly as possible. */
export function toyStages(config: ToyConfig, stages: number): ToyShard[] {
  const out: ToyShard[] = [];
  for (let s = 0; s < stages; s++) {
    const start = Math.floor((s * config.layers) / stages);
    const end = Math.floor(((s + 1) * config.layers) / stages);
    out.push(new ToyShard(config, start, end));
  }
  return out;
}
