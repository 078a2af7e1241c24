// Drafting ahead (beyond the paper, PipeDecOptions.draftWidth): the draft grows a wider tree of
// its own, draftWidth nodes a layer and layersPerStep layers a tick, while the stages compute.
// Each tick sends the best W nodes of every layer it added whose parents are in flight, so the
// stages never wait for the draft. When the target's token is a child only the draft's tree
// holds, or the stages' subtree of the root is shallower than the draft's, the missing nodes
// go at once from the draft's tree (best first, up to refillBudget).

import type { LayerPacket } from './messages.js';
import type { Speculation } from './speculation.js';
import type { TreeNode } from './tree.js';

export interface AheadOptions {
  /** W: most nodes of one drafted layer sent per tick. */
  width: number;
  /** Layers the draft adds per tick. */
  layersPerStep: number;
  /** Most nodes a refill from the draft's tree sends in one packet. */
  refillBudget: number;
  /** The draft's tree grows at most this deep below the root. */
  maxHeight: number;
}

export class AheadDrafter {
  /** Nodes the draft has not run on yet (the newest layer, a new root). */
  private undrafted: TreeNode[] = [];
  /** The layers the draft added since the last tick, each best first. */
  private drafted: TreeNode[][] = [];

  constructor(
    private readonly spec: Speculation,
    private readonly options: AheadOptions,
  ) {}

  /**
   * The packet of one tick: the root if the stages lack it; a refill when the stages' subtree
   * of the root is shallower than the draft's; then the best W nodes of each newly drafted
   * layer whose parents are in flight. If there is nothing, the stages wait for one round of
   * drafting (the draft's tree stopped growing).
   */
  async tick(): Promise<LayerPacket | null> {
    const packet = this.take();
    if (packet || this.spec.run.finish !== null) return packet;
    await this.grow();
    return this.take();
  }

  /** While the stages compute: grows the draft's tree by layersPerStep layers. */
  async grow(): Promise<void> {
    const { tree, run } = this.spec;
    for (let i = 0; i < this.options.layersPerStep; i++) {
      if (tree.root.candidates === null && !this.undrafted.includes(tree.root)) {
        this.undrafted.push(tree.root);
      }
      const nodes = this.undrafted.filter((n) => tree.has(n.id));
      this.undrafted = [];
      await this.spec.propose(nodes);
      const height = tree.height;
      const frontier = tree.layer(height);
      if (height >= this.options.maxHeight || frontier[0].position + 1 > run.lastUsefulPosition) {
        return;
      }
      const layer = tree.expand();
      if (layer.length === 0) return;
      this.undrafted.push(...layer);
      this.drafted.push(layer);
    }
  }

  private take(): LayerPacket | null {
    const { tree, run } = this.spec;
    const nodes: TreeNode[] = [];
    const root = tree.root;
    if (!root.injected) {
      root.injected = true; // before the refill below, which sends only children of injected nodes
      nodes.push(root);
    }
    const fresh = this.drafted
      .map((layer) => layer.filter((n) => tree.has(n.id)))
      .filter((l) => l.length > 0);
    this.drafted = [];
    const oldHeight = fresh.length > 0 ? fresh[0][0].depth - root.depth - 1 : tree.height;
    if (tree.injectedHeight < oldHeight) {
      if (nodes.length === 0) run.stats.refills++;
      const refill = tree.pickForInjection(this.options.refillBudget, oldHeight);
      for (const n of refill) n.injected = true; // parents before children in this packet
      nodes.push(...refill);
    }
    for (const layer of fresh) {
      let sent = 0;
      for (const n of layer) {
        if (sent === this.options.width) break;
        if (tree.get(n.parent)?.injected) {
          n.injected = true;
          nodes.push(n);
          sent++;
        }
      }
    }
    return this.spec.packetOf(nodes);
  }
}
