// PipeDec: the draft grows the prediction tree by one layer per timestep and injects it into
// stage 0, so every stage works on a different depth of the tree for the same request. When
// the root's verdict arrives the target's token x is committed; a hit (x is a child of the
// root) re-roots the tree and prunes every other branch on all stages and in the draft; a
// miss discards the tree and refills the pipeline from x, under a new epoch.
//
// Beyond the paper, as options: several layers per packet (layersPerStep), refill packets
// drafted serially (refillLayers), or drafting ahead on a wider tree of the draft's own
// (draftWidth) from which layers and refills are sent without the stages waiting.

import { DraftRunner } from './draft.js';
import type { LayerPacket, Verdict } from './messages.js';
import type { Pipeline } from './pipeline.js';
import { type GenerateRequest, type GenerateResult, openRun, RequestRun } from './run.js';
import type { StageShard } from './stage.js';
import { PredictionTree, type TreeNode } from './tree.js';

export interface PipeDecOptions {
  /** W: most nodes per tree layer. */
  width: number;
  /** k: most children proposed per node (default min(W, 4)). */
  branching?: number;
  /**
   * Beyond the paper (default 1 = the paper's method): tree layers per packet in steady state.
   * With k > 1 the draft grows k layers per timestep (all but the last serially, before the
   * send), and the last stage can confirm up to k tokens per timestep.
   */
  layersPerStep?: number;
  /**
   * Beyond the paper (default 1): most layers in a packet that refills the pipeline. After a
   * miss the new root travels with up to r - 1 drafted layers below it; after a hit whose
   * subtree is shallower than the pipeline is deep, the missing layers are sent at once. The
   * refill's verdict can then commit several tokens at once, like one static-tree pass.
   */
  refillLayers?: number;
  /**
   * Beyond the paper (unset = the paper's method): drafting ahead. The draft grows its own
   * tree, draftWidth (>= W) nodes a layer, layersPerStep layers a tick, while the stages
   * compute; each tick sends the best W nodes of every layer it added whose parents are in
   * flight, so the stages never wait for the draft. When the target's token is a child only
   * the draft's tree holds, or the stages' subtree of the root is shallower than the draft's,
   * the missing nodes go at once from the draft's tree (best first, up to refillBudget).
   * refillLayers does not apply.
   */
  draftWidth?: number;
  /** Most nodes a refill from the draft's tree sends in one packet (default 2W). */
  refillBudget?: number;
  /**
   * Temperature of the draft's scores when the best W nodes of a layer are chosen (default 1:
   * the draft's own log-probabilities). See DraftRunner.
   */
  scoreTemperature?: number;
  /** Called after every verification (tests check invariants against the stages here). */
  onVerify?(tree: PredictionTree): void;
}

export async function generatePipeDec(
  pipeline: Pipeline,
  draft: StageShard,
  request: GenerateRequest,
  options: PipeDecOptions,
): Promise<GenerateResult> {
  const opened = openRun(pipeline, request, 'pipedec', {
    shard: draft,
    scoreTemperature: options.scoreTemperature,
  });
  if (!(opened instanceof RequestRun)) return opened; // the prompt fills the context
  const run = opened;
  const branching = options.branching ?? Math.min(options.width, 4);
  const drafter = new DraftRunner(draft, run, branching, options.scoreTemperature);
  const ahead = options.draftWidth !== undefined;
  const draftWidth = Math.max(options.width, options.draftWidth ?? options.width);
  const layersPerStep = options.layersPerStep ?? 1;
  const refillBudget = options.refillBudget ?? 2 * options.width;
  const tree = new PredictionTree(draftWidth, branching, request.prompt.length);
  /** Draft ahead: nodes the draft has not run on yet (the newest layer, a new root). */
  let undrafted: TreeNode[] = [];
  /** Draft ahead: the layers the draft added since the last tick, each best first. */
  let drafted: TreeNode[][] = [];
  const rootToken = request.prompt[request.prompt.length - 1];
  // The first root is the last prompt row: it travels with the last prefill chunk.
  tree.reset(rootToken, request.prompt.length - 1, 0, -1, run.promptRoot).injected = true;
  let epoch = 0;
  let draftPrefilled = false;

  /** The next layer to inject: the root itself after a miss, else one layer below the tree. */
  function nextLayer(): TreeNode[] {
    if (!tree.root.injected) return [tree.root];
    const frontier = tree.layer(tree.height);
    if (frontier[0].position + 1 > run.lastUsefulPosition) return [];
    return tree.expand();
  }

  /** Runs the draft on nodes it has not seen yet; stores their children's proposals. */
  async function propose(nodes: TreeNode[]): Promise<void> {
    const fresh = nodes.filter((n) => n.candidates === null);
    if (fresh.length === 0) return;
    const proposals = await drafter.propose(
      fresh.map((n) => ({
        id: n.id,
        parent: tree.has(n.parent) ? n.parent : -1,
        position: n.position,
        token: n.token,
      })),
    );
    fresh.forEach((n, i) => (n.candidates = proposals[i]));
  }

  /** Drafts the nodes of the draft's tree it has not run on yet. */
  async function proposeUndrafted(): Promise<void> {
    const nodes = undrafted.filter((n) => tree.has(n.id));
    undrafted = [];
    await propose(nodes);
  }

  /**
   * Draft ahead (while the stages compute): grows the draft's tree by k layers, so the next
   * tick can send them without waiting for the draft. k draft calls, each on one layer.
   */
  async function growDraftTree(): Promise<void> {
    const maxHeight = layersPerStep * pipeline.stageCount;
    for (let i = 0; i < layersPerStep; i++) {
      if (tree.root.candidates === null && !undrafted.includes(tree.root)) {
        undrafted.push(tree.root);
      }
      await proposeUndrafted();
      const height = tree.height;
      const frontier = tree.layer(height);
      if (height >= maxHeight || frontier[0].position + 1 > run.lastUsefulPosition) return;
      const layer = tree.expand();
      if (layer.length === 0) return;
      undrafted.push(...layer);
      drafted.push(layer);
    }
  }

  /**
   * One tick when the draft works ahead: the root if the stages lack it; a refill when the
   * stages' subtree of the root is shallower than the draft's (best first, up to
   * refillBudget nodes); then the best W nodes of each layer the draft added last tick
   * whose parents are in flight.
   */
  function aheadTick(): LayerPacket | null {
    const nodes: TreeNode[] = [];
    const root = tree.root;
    if (!root.injected) {
      root.injected = true;
      nodes.push(root);
    }
    const fresh = drafted
      .map((layer) => layer.filter((n) => tree.has(n.id)))
      .filter((l) => l.length > 0);
    drafted = [];
    const oldHeight = fresh.length > 0 ? fresh[0][0].depth - root.depth - 1 : tree.height;
    if (tree.injectedHeight < oldHeight) {
      if (nodes.length === 0) run.stats.refills++;
      const refill = tree.pickForInjection(refillBudget, oldHeight);
      for (const n of refill) n.injected = true;
      nodes.push(...refill);
    }
    for (const layer of fresh) {
      let sent = 0;
      for (const n of layer) {
        if (sent === options.width) break;
        if (tree.get(n.parent)?.injected) {
          n.injected = true;
          nodes.push(n);
          sent++;
        }
      }
    }
    return packetOf(nodes);
  }

  /** The packet that sends `nodes` (marked injected) into stage 0; null when there are none. */
  function packetOf(nodes: TreeNode[]): LayerPacket | null {
    if (nodes.length === 0) return null;
    run.stats.draftedNodes += nodes.length;
    return run.packet(
      epoch,
      nodes.map((n) => (tree.has(n.parent) ? n.parent : -1)),
      nodes.map((n) => n.id),
      nodes.map((n) => n.position),
      nodes.map((n) => n.token),
    );
  }

  /** Commits the root's target token x; re-roots on a hit, refills on a miss. */
  function verify(): void {
    for (let root = tree.root; root.target !== null && run.finish === null; root = tree.root) {
      const x = root.target;
      const chain = [...run.pendingChain, root.id];
      run.pendingChain = [];
      // The last useful root has no children on purpose: not a verification of the tree.
      const final = root.position + 1 > run.lastUsefulPosition;
      if (!final) run.stats.verifications++;
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
        run.decide(epoch, chain, keep, tree.lastId);
        drafter.commit([root.id]);
        drafter.prune(new Set(keep));
      } else {
        if (!final) {
          run.stats.misses++;
          run.stats.refills++;
        }
        epoch++;
        run.decide(epoch, chain, 'none', tree.lastId);
        drafter.commit([root.id]);
        drafter.prune(new Set());
        tree.reset(x, root.position + 1, epoch, root.id);
      }
      options.onVerify?.(tree);
      run.commitToken(x, root.targetLogit);
    }
  }

  try {
    await run.loop({
      async onTick(): Promise<LayerPacket | null> {
        if (!run.prefillDone) return run.nextPrefillPacket(epoch);
        if (ahead) {
          const packet = aheadTick();
          if (packet || run.finish !== null) return packet;
          // Nothing drafted the stages can take (the draft's tree stopped growing): the
          // stages wait for one round of drafting.
          await growDraftTree();
          return aheadTick();
        }
        // In steady state the tree is S - 1 layers deep below the root (one per stage in
        // flight); a refill brings it back to that depth in one packet, up to refillLayers.
        const missing = tree.root.injected
          ? pipeline.stageCount - 1 - tree.height
          : pipeline.stageCount;
        const depth = Math.max(
          options.layersPerStep ?? 1,
          Math.min(options.refillLayers ?? 1, missing),
        );
        const nodes: TreeNode[] = [];
        for (let d = 0; d < depth; d++) {
          // A deeper layer in the same packet needs the draft's proposals for this one first.
          if (d > 0) await propose(tree.layer(tree.height));
          const layer = nextLayer();
          if (layer.length === 0) break;
          for (const n of layer) n.injected = true;
          nodes.push(...layer);
        }
        return packetOf(nodes);
      },
      async afterSend(packet: LayerPacket) {
        // The draft works while the stages compute: on the first tick it prefills the prompt;
        // afterwards it runs on the layer just injected, so its children are ready next tick.
        if (!draftPrefilled) {
          draftPrefilled = true;
          tree.root.candidates = await drafter.prefill(request.prefillChunk ?? 32);
        }
        // Drafting ahead starts while the last prefill chunk is in the stages.
        if (run.isPrefillPacket(packet.seq)) {
          if (ahead && run.prefillDone) await growDraftTree();
          return;
        }
        if (ahead) {
          await growDraftTree();
          return;
        }
        await propose([...packet.nodeIds].map((id) => tree.get(id)).filter((n) => n !== undefined));
      },
      onVerdict(v: Verdict) {
        if (run.handlePrefillVerdict(v, epoch)) return;
        if (v.epoch < epoch) return;
        for (let i = 0; i < v.nodeIds.length; i++) {
          const n = tree.get(v.nodeIds[i]);
          if (!n) continue;
          n.target = v.tokens[i];
          n.targetLogit = v.logits[i];
        }
        verify();
      },
    });
  } catch (err) {
    await run.close();
    drafter.release();
    throw err;
  }
  drafter.release();
  return run.close();
}
