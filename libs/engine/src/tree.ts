// The prediction tree of PipeDec. The root is the last committed token; every other live node
// is a drafted guess for a later position. Layer d holds the live nodes d steps below the root.
//
//            root (committed, position p)
//           /    \
//        a(p+1)  b(p+1)        layer 1: at most W nodes
//        /  \       \
//      c     d       e          layer 2: best W children of layer 1 by cumulative log-prob
//
// A hit on b re-roots the tree at b and prunes a, c, d; a miss discards the whole tree.

import type { Distribution } from './acceptance.js';

export interface Candidate {
  token: number;
  /** Draft log-probability of this token given the node's path. */
  logProb: number;
}

export interface TreeNode {
  readonly id: number;
  readonly token: number;
  /** Parent's id; the parent of a root is a committed row (or -1 before the first token). */
  readonly parent: number;
  /** Depth below the root of the node's epoch (that root has depth 0). */
  readonly depth: number;
  readonly position: number;
  /** Cumulative draft log-probability from the epoch root. */
  readonly logProb: number;
  readonly epoch: number;
  readonly children: number[];
  /** The draft's proposals for this node's children, once the draft has run on the node. */
  candidates: Candidate[] | null;
  /** [vocab] Distribution mode: the draft's q the candidates were drawn from (acceptance.ts). */
  draftQ: Distribution | null;
  /** [vocab] Distribution mode: the target's sampled distribution at position + 1. */
  targetProbs: Float32Array | null;
  /** The target's token at position + 1, once this node's verdict has arrived. */
  target: number | null;
  /** The target's raw logit of `target` (drift checks). */
  targetLogit: number;
  /** Sent into the pipeline (its rows exist, or will, on every stage). */
  injected: boolean;
}

export interface AncestorMask {
  rowIds: number[]; // [rows] the layer's node ids
  colIds: number[]; // [cols] every live node id, by depth then id
  mask: Uint8Array; // [rows, cols] 1 where the column is the row itself or one of its ancestors
}

export class PredictionTree {
  private readonly nodes = new Map<number, TreeNode>();
  private rootId = -1;

  /**
   * @param width W: most nodes per layer
   * @param branching k: most children proposed per node
   * @param nextId first node id to issue (ids below it belong to prompt rows)
   */
  constructor(
    readonly width: number,
    readonly branching: number,
    private nextId: number,
  ) {}

  /** Discards every node and starts over from a new root (first token, or after a miss). */
  reset(token: number, position: number, epoch: number, parent: number, id?: number): TreeNode {
    this.nodes.clear();
    const root = this.create(token, parent, 0, position, 0, epoch, id);
    this.rootId = root.id;
    return root;
  }

  get root(): TreeNode {
    return this.mustGet(this.rootId);
  }

  get size(): number {
    return this.nodes.size;
  }

  /** Highest id issued so far. */
  get lastId(): number {
    return this.nextId - 1;
  }

  get(id: number): TreeNode | undefined {
    return this.nodes.get(id);
  }

  has(id: number): boolean {
    return this.nodes.has(id);
  }

  liveIds(): number[] {
    return [...this.nodes.keys()];
  }

  liveNodes(): IterableIterator<TreeNode> {
    return this.nodes.values();
  }

  /** Depth of the deepest live layer, relative to the root. */
  get height(): number {
    return this.deepest(() => true);
  }

  /** Live nodes d steps below the root, in id order. */
  layer(d: number): TreeNode[] {
    const depth = this.root.depth + d;
    const out: TreeNode[] = [];
    for (const n of this.nodes.values()) if (n.depth === depth) out.push(n);
    return out.sort((a, b) => a.id - b.id);
  }

  /**
   * Grows one layer below the deepest live one: each frontier node offers its top-k draft
   * candidates, scored by cumulative log-probability; the best W over the whole frontier
   * become the new layer. Frontier nodes the draft has not run on yet offer nothing.
   */
  expand(width = this.width): TreeNode[] {
    const frontier = this.layer(this.height);
    const offers: { parent: TreeNode; token: number; logProb: number }[] = [];
    for (const parent of frontier) {
      for (const c of (parent.candidates ?? []).slice(0, this.branching)) {
        offers.push({ parent, token: c.token, logProb: parent.logProb + c.logProb });
      }
    }
    // Stable sort: among equal scores the earlier parent and candidate win.
    offers.sort((a, b) => b.logProb - a.logProb);
    return offers
      .slice(0, width)
      .map((o) =>
        this.create(
          o.token,
          o.parent.id,
          o.parent.depth + 1,
          o.parent.position + 1,
          o.logProb,
          o.parent.epoch,
        ),
      );
  }

  /** Depth of the deepest injected layer below the root (0: only the root, or nothing). */
  get injectedHeight(): number {
    return this.deepest((n) => n.injected);
  }

  /** Depth below the root of the deepest live node that `include` accepts (0: none). */
  private deepest(include: (n: TreeNode) => boolean): number {
    let max = 0;
    const base = this.root.depth;
    for (const n of this.nodes.values()) if (include(n)) max = Math.max(max, n.depth - base);
    return max;
  }

  /**
   * Best-first choice of up to `limit` nodes not yet injected whose parent is injected (or
   * chosen here), at most `maxHeight` below the root, in an order that sends parents first.
   * A child's cumulative log-probability never exceeds its parent's, so one pass over the
   * nodes by descending score (shallower first on ties) sees every parent before its children.
   */
  pickForInjection(limit: number, maxHeight: number): TreeNode[] {
    if (limit <= 0) return [];
    const base = this.root.depth;
    const waiting: TreeNode[] = [];
    for (const n of this.nodes.values()) {
      if (!n.injected && n.id !== this.rootId && n.depth - base <= maxHeight) waiting.push(n);
    }
    waiting.sort((a, b) => b.logProb - a.logProb || a.depth - b.depth || a.id - b.id);
    const picked = new Set<number>();
    const out: TreeNode[] = [];
    for (const n of waiting) {
      if (out.length === limit) break;
      const parent = this.nodes.get(n.parent);
      if (parent && (parent.injected || picked.has(parent.id))) {
        picked.add(n.id);
        out.push(n);
      }
    }
    return out.sort((a, b) => a.depth - b.depth || a.id - b.id);
  }

  /** The root's child carrying `token`, if any. */
  childWithToken(token: number): TreeNode | undefined {
    for (const id of this.root.children) {
      const c = this.nodes.get(id);
      if (c?.token === token) return c;
    }
    return undefined;
  }

  /** Makes a child of the root the new root; returns the ids of every pruned node. */
  reroot(childId: number): number[] {
    const child = this.mustGet(childId);
    if (child.parent !== this.rootId) throw new Error(`node ${childId} is not a child of the root`);
    const keep = new Set<number>();
    const stack = [childId];
    while (stack.length > 0) {
      const n = this.mustGet(stack.pop()!);
      keep.add(n.id);
      for (const c of n.children) if (this.nodes.has(c)) stack.push(c);
    }
    const pruned: number[] = [];
    for (const id of this.nodes.keys()) {
      if (!keep.has(id)) {
        pruned.push(id);
        this.nodes.delete(id);
      }
    }
    this.rootId = childId;
    return pruned;
  }

  /** Whether `ancestor` is `id` itself or lies on its path to the root. */
  isAncestorOrSelf(ancestor: number, id: number): boolean {
    let n = this.nodes.get(id);
    while (n) {
      if (n.id === ancestor) return true;
      n = this.nodes.get(n.parent);
    }
    return false;
  }

  /** The tree-attention mask of layer d against every live node. */
  ancestorMask(d: number): AncestorMask {
    const rows = this.layer(d);
    const cols = [...this.nodes.values()].sort((a, b) => a.depth - b.depth || a.id - b.id);
    const colIndex = new Map(cols.map((n, j) => [n.id, j]));
    const mask = new Uint8Array(rows.length * cols.length);
    rows.forEach((row, i) => {
      for (let n: TreeNode | undefined = row; n; n = this.nodes.get(n.parent)) {
        mask[i * cols.length + colIndex.get(n.id)!] = 1;
      }
    });
    return { rowIds: rows.map((n) => n.id), colIds: cols.map((n) => n.id), mask };
  }

  private create(
    token: number,
    parent: number,
    depth: number,
    position: number,
    logProb: number,
    epoch: number,
    id?: number,
  ): TreeNode {
    const nodeId = id ?? this.nextId++;
    if (nodeId >= this.nextId) this.nextId = nodeId + 1;
    const node: TreeNode = {
      id: nodeId,
      token,
      parent,
      depth,
      position,
      logProb,
      epoch,
      children: [],
      candidates: null,
      draftQ: null,
      targetProbs: null,
      target: null,
      targetLogit: 0,
      injected: false,
    };
    this.nodes.set(nodeId, node);
    this.nodes.get(parent)?.children.push(nodeId);
    return node;
  }

  private mustGet(id: number): TreeNode {
    const n = this.nodes.get(id);
    if (!n) throw new Error(`node ${id} is not live`);
    return n;
  }
}
