// STPP: static-tree speculative decoding on the pipeline (SpecInfer / EAGLE style). The draft
// builds a tree of fixed shape (depth D, top-k children per node, at most M nodes), the whole
// tree makes one pass through the stages under a tree mask, and the longest path that matches
// the target's tokens is committed together with the target's next token. Drafting happens
// before the pass (serial), and the next tree waits for the verdict.

import { committedToken, requireDistributions } from './acceptance.js';
import { DraftRunner, type DraftRow } from './draft.js';
import type { LayerPacket, Verdict } from './messages.js';
import type { Pipeline } from './pipeline.js';
import { type GenerateRequest, type GenerateResult, openRun, RequestRun } from './run.js';
import type { StageShard } from './stage.js';
import { countFirstProposal } from './stats.js';
import { PredictionTree, type TreeNode } from './tree.js';

export interface StppOptions {
  depth: number; // D
  branching: number; // k
  budget: number; // M: most drafted nodes per tree
  /** Temperature of the draft's scores when the budget's best nodes are chosen (default 1). */
  scoreTemperature?: number;
}

export async function generateSTPP(
  pipeline: Pipeline,
  draft: StageShard,
  request: GenerateRequest,
  options: StppOptions,
): Promise<GenerateResult> {
  const opened = openRun(pipeline, request, 'stpp', {
    shard: draft,
    scoreTemperature: options.scoreTemperature,
  });
  if (!(opened instanceof RequestRun)) return opened; // the prompt fills the context
  const run = opened;
  const drafter = new DraftRunner(draft, run, options.branching, options.scoreTemperature);
  let nextId = request.prompt.length;
  let epoch = 0;
  let draftPrefilled = false;
  let inFlight: PredictionTree | null = null;
  /** Committed tokens without rows anywhere (the target's last token, or a leaf match). */
  let pending: { id: number; token: number; position: number; inStages: boolean }[] = [];
  let firstRootVerified = false;

  /** Drafts a static tree under the last committed token and packs it with rows it lacks. */
  async function draftTree(): Promise<LayerPacket> {
    const rootRow = pending[pending.length - 1];
    const tree = new PredictionTree(options.budget, options.branching, nextId);
    const root = tree.reset(rootRow.token, rootRow.position, epoch, -1, rootRow.id);
    // The draft catches up on committed tokens it has not seen, then proposes for the root.
    const chain: DraftRow[] = pending.map((p, i) => ({
      id: p.id,
      parent: i === 0 ? -1 : pending[i - 1].id,
      position: p.position,
      token: p.token,
    }));
    const proposals = await drafter.propose(chain, true);
    drafter.commit(pending.slice(0, -1).map((p) => p.id));
    root.candidates = proposals[proposals.length - 1].candidates;
    root.draftQ = proposals[proposals.length - 1].q;
    let used = 0;
    let layer: TreeNode[] = [root];
    for (let d = 1; d <= options.depth && used < options.budget; d++) {
      if (root.position + d > run.lastUsefulPosition) break;
      layer = tree.expand(Math.min(layer.length * options.branching, options.budget - used));
      used += layer.length;
      if (layer.length === 0) break;
      if (d < options.depth && used < options.budget) {
        const props = await drafter.propose(layer.map(toRow));
        layer.forEach((n, i) => {
          n.candidates = props[i].candidates;
          n.draftQ = props[i].q;
        });
      }
    }
    nextId = tree.lastId + 1;
    inFlight = tree;
    // Stage rows: committed tokens not yet computed by the stages, then the drafted nodes.
    const rows = pending.filter((p) => !p.inStages);
    pending = [];
    const nodes = [...tree.liveNodes()].filter((n) => n.id !== root.id);
    run.stats.draftedNodes += nodes.length;
    return run.packet(
      epoch,
      [...rows.map((_, i) => (i === 0 ? -1 : rows[i - 1].id)), ...nodes.map((n) => n.parent)],
      [...rows.map((r) => r.id), ...nodes.map((n) => n.id)],
      [...rows.map((r) => r.position), ...nodes.map((n) => n.position)],
      [...rows.map((r) => r.token), ...nodes.map((n) => n.token)],
    );
  }

  /** Longest matching path, then the target's own next token. */
  function verify(v: Verdict, tree: PredictionTree): void {
    const vocab = pipeline.info.vocabSize;
    requireDistributions(run.sampling, v.probs);
    const row = new Map<number, number>();
    v.nodeIds.forEach((id, i) => row.set(id, i));
    run.stats.verifications++;
    const chain: TreeNode[] = [];
    const upTo = nextId - 1; // the bonus token's id must stay above the pruning watermark
    let node = tree.root;
    for (;;) {
      chain.push(node);
      const i = row.get(node.id)!;
      // Exact mode: the target's seeded draw; distribution mode: recursive rejection sampling
      // over the node's drafted candidates (acceptance.ts).
      node.target = v.tokens[i];
      node.targetProbs = v.probs ? v.probs.subarray(i * vocab, (i + 1) * vocab) : null;
      const x = committedToken(node, run.sampling);
      const logit = x === v.tokens[i] ? v.logits[i] : NaN;
      countFirstProposal(run.stats, node, x);
      if (!run.commitToken(x, logit)) break;
      const child = tree.get(node.children.find((c) => tree.get(c)!.token === x) ?? -1);
      if (!child) {
        pending = [{ id: nextId++, token: x, position: node.position + 1, inStages: false }];
        break;
      }
      run.stats.acceptedDraftTokens++;
      node = child;
    }
    epoch++;
    run.decide(epoch, [...run.pendingChain, ...chain.map((n) => n.id)], 'none', upTo);
    run.pendingChain = [];
    // The draft holds rows for every node it proposed from: all but the deepest layer.
    const inDraft = chain.filter((n) => n.candidates !== null).map((n) => n.id);
    drafter.commit(inDraft);
    drafter.prune(new Set());
    const last = chain[chain.length - 1];
    if (last.candidates === null) {
      pending.unshift({ id: last.id, token: last.token, position: last.position, inStages: true });
    }
  }

  try {
    await run.loop({
      async onTick() {
        if (!run.prefillDone) return run.nextPrefillPacket(epoch);
        if (inFlight || !firstRootVerified || run.finish !== null) return null;
        return draftTree();
      },
      async afterSend() {
        if (!draftPrefilled) {
          draftPrefilled = true;
          await drafter.prefill(request.prefillChunk ?? 32);
        }
      },
      onVerdict(v: Verdict) {
        if (run.handlePrefillVerdict(v, epoch)) return;
        if (!firstRootVerified) {
          // The last prefill chunk: its last row yields the first token.
          const i = v.nodeIds.indexOf(run.promptRoot);
          firstRootVerified = true;
          run.decide(epoch, [...run.pendingChain, run.promptRoot], 'all');
          run.pendingChain = [];
          drafter.commit([run.promptRoot]);
          const x = v.tokens[i];
          const position = run.prompt.length;
          pending = [{ id: nextId++, token: x, position, inStages: false }];
          run.commitToken(x, v.logits[i]);
          return;
        }
        const tree = inFlight!;
        inFlight = null;
        verify(v, tree);
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

function toRow(n: TreeNode): DraftRow {
  return { id: n.id, parent: n.parent, position: n.position, token: n.token };
}
