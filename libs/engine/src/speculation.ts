// The controller's side of PipeDec's tree: the prediction tree, the draft that mirrors it, and
// the epoch. It drafts children for nodes, packs nodes into layer packets, records verdicts and
// verifies: commit the root's target token, re-root on a hit, discard and refill on a miss
// (steps 3-5 of docs/pipedec.md). How nodes are chosen for injection is the drafter's part
// (LayerDrafter in pipedec.ts, AheadDrafter in ahead.ts).

import { committedToken, requireDistributions } from './acceptance.js';
import type { DraftRunner } from './draft.js';
import type { LayerPacket, Verdict } from './messages.js';
import type { RequestRun } from './run.js';
import { countFirstProposal } from './stats.js';
import type { PredictionTree, TreeNode } from './tree.js';

export class Speculation {
  /** Bumped on every miss; stages drop packets of older epochs. */
  epoch = 0;

  constructor(
    readonly run: RequestRun,
    readonly drafter: DraftRunner,
    readonly tree: PredictionTree,
    /** Called after every verification (tests check invariants against the stages here). */
    private readonly onVerify?: (tree: PredictionTree) => void,
  ) {}

  /** Runs the draft on nodes it has not seen yet; stores their children's proposals. */
  async propose(nodes: TreeNode[]): Promise<void> {
    const fresh = nodes.filter((n) => n.candidates === null);
    if (fresh.length === 0) return;
    const proposals = await this.drafter.propose(
      fresh.map((n) => ({
        id: n.id,
        parent: this.tree.has(n.parent) ? n.parent : -1,
        position: n.position,
        token: n.token,
      })),
    );
    fresh.forEach((n, i) => {
      n.candidates = proposals[i].candidates;
      n.draftQ = proposals[i].q;
    });
  }

  /** The packet that sends `nodes` (marked injected) into stage 0; null when there are none. */
  packetOf(nodes: TreeNode[]): LayerPacket | null {
    if (nodes.length === 0) return null;
    for (const n of nodes) n.injected = true;
    this.run.stats.draftedNodes += nodes.length;
    return this.run.packet(
      this.epoch,
      nodes.map((n) => (this.tree.has(n.parent) ? n.parent : -1)),
      nodes.map((n) => n.id),
      nodes.map((n) => n.position),
      nodes.map((n) => n.token),
    );
  }

  /** Stores the target's token of every row of a verdict that is still in the tree. */
  record(v: Verdict): void {
    const vocab = this.run.pipeline.info.vocabSize;
    requireDistributions(this.run.sampling, v.probs);
    for (let i = 0; i < v.nodeIds.length; i++) {
      const n = this.tree.get(v.nodeIds[i]);
      if (!n) continue;
      n.target = v.tokens[i];
      n.targetLogit = v.logits[i];
      if (v.probs) n.targetProbs = v.probs.subarray(i * vocab, (i + 1) * vocab);
    }
  }

  /** Commits the root's target token x while it is known; re-roots on a hit, refills on a miss. */
  verify(): void {
    const { run, tree, drafter } = this;
    for (let root = tree.root; root.target !== null && run.finish === null; root = tree.root) {
      // Exact mode: the target's seeded draw. Distribution mode: recursive rejection sampling
      // over the root's drafted candidates (acceptance.ts); the raw logit is known only when
      // that is the target's own draw.
      const x = committedToken(root, run.sampling);
      const logit = x === root.target ? root.targetLogit : NaN;
      const chain = [...run.pendingChain, root.id];
      run.pendingChain = [];
      // The last useful root has no children on purpose: not a verification of the tree.
      const final = root.position + 1 > run.lastUsefulPosition;
      if (!final) run.stats.verifications++;
      countFirstProposal(run.stats, root, x);
      const child = tree.childWithToken(x);
      if (child) {
        if (child.injected) run.stats.hits++;
        else {
          // Only the draft's tree has it: the stages refill from it (sent next tick).
          run.stats.misses++;
          run.stats.refills++;
        }
        tree.reroot(child.id);
        const keep = tree.liveIds();
        run.decide(this.epoch, chain, keep, tree.lastId);
        drafter.commit([root.id]);
        drafter.prune(new Set(keep));
      } else {
        if (!final) {
          run.stats.misses++;
          run.stats.refills++;
        }
        this.epoch++;
        run.decide(this.epoch, chain, 'none', tree.lastId);
        // A root with no proposals was never drafted (sent alone at width 0): the draft
        // computes it when the tree widens again.
        if (root.candidates === null) drafter.skip(root);
        else {
          drafter.commit([root.id]);
          drafter.prune(new Set());
        }
        tree.reset(x, root.position + 1, this.epoch, root.id);
      }
      this.onVerify?.(tree);
      run.commitToken(x, logit);
    }
  }
}
