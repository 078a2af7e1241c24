// PipeDec: the draft grows the prediction tree by one layer per timestep and injects it into
// stage 0, so every stage works on a different depth of the tree for the same request. When
// the root's verdict arrives the target's token x is committed; a hit (x is a child of the
// root) re-roots the tree and prunes every other branch on all stages and in the draft; a
// miss discards the tree and refills the pipeline from x, under a new epoch.
//
// Beyond the paper, as options: several layers per packet (layersPerStep), refill packets
// drafted serially (refillLayers), or drafting ahead on a wider tree of the draft's own
// (draftWidth) from which layers and refills are sent without the stages waiting.

import { isDistribution } from './acceptance.js';
import { AheadDrafter } from './ahead.js';
import { DraftRunner } from './draft.js';
import type { LayerPacket, Verdict } from './messages.js';
import type { Pipeline } from './pipeline.js';
import { type GenerateRequest, type GenerateResult, openRun, RequestRun } from './run.js';
import type { SamplingParams } from './sampling.js';
import { Speculation } from './speculation.js';
import type { StageShard } from './stage.js';
import { PredictionTree, type TreeNode } from './tree.js';

/**
 * k when a caller gives none: children proposed per node for a tree of width W; min(W, 4),
 * and min(W, 8) for a sampled request with distribution acceptance. There every candidate
 * drawn is one more chance for recursive rejection sampling to accept a drafted child before
 * it falls back to the residual (a miss: the pipeline refills, S timesteps); with 4, 13% of
 * verifications at T = 1 fell back, 20% where the draft was unsure. The tree keeps only the
 * candidates that score among the best W of a layer, so the extra ones cost tree rows only
 * where the draft is unsure (bench:engine, 14 stages, T = 1: 3.71 -> 3.42 timesteps per token
 * with firstDrawScore).
 */
export function defaultBranching(width: number, sampling?: SamplingParams): number {
  return Math.min(width, sampling && isDistribution(sampling) ? 8 : 4);
}

export interface PipeDecOptions {
  /** W: most nodes per tree layer. */
  width: number;
  /**
   * The width for the next layer, asked each tick (clamped to 0..W): a busy head's share of
   * its row budget as requests come and go (row-budget.ts), so a request that started alone
   * narrows when others join and widens again when they leave. 0: no layer below the root, so
   * each verdict commits the target's own token and the next root goes alone, as in PP (the
   * draft skips those roots, and the prompt too when the request starts 0 wide, and computes
   * them if the tree widens again: LayerDrafter.afterSend, DraftRunner.skip, deferPrompt).
   * It changes what is speculated, never the output in greedy and exact acceptance; in
   * distribution acceptance the tokens depend on the tree, so there it is ignored and the
   * width stays W. The paper's drafting only (not with draftWidth).
   */
  widthNow?: () => number;
  /** k: most children proposed per node (default: defaultBranching(W, sampling)). */
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

/**
 * The paper's drafting: each tick injects the next tree layer (the root itself after a miss),
 * and the draft runs on that layer while the stages compute, so its children are ready for
 * the next tick. Options beyond the paper: layersPerStep layers per packet, and refills of up
 * to refillLayers layers after a miss.
 */
class LayerDrafter {
  constructor(
    private readonly spec: Speculation,
    private readonly stageCount: number,
    private readonly options: PipeDecOptions,
  ) {}

  async tick(): Promise<LayerPacket | null> {
    const { tree } = this.spec;
    // In steady state the tree is S - 1 layers deep below the root (one per stage in flight);
    // a refill brings it back to that depth in one packet, up to refillLayers.
    const missing = tree.root.injected ? this.stageCount - 1 - tree.height : this.stageCount;
    const depth = Math.max(
      this.options.layersPerStep ?? 1,
      Math.min(this.options.refillLayers ?? 1, missing),
    );
    // A root the draft skipped (width 0 then) needs its proposals before the tree can grow.
    if (tree.root.injected && tree.root.candidates === null && this.width() > 0) {
      await this.spec.propose([tree.root]);
    }
    const nodes: TreeNode[] = [];
    for (let d = 0; d < depth; d++) {
      // A deeper layer in the same packet needs the draft's proposals for this one first.
      if (d > 0) await this.spec.propose(tree.layer(tree.height));
      const layer = this.nextLayer();
      if (layer.length === 0) break;
      for (const n of layer) n.injected = true;
      nodes.push(...layer);
    }
    return this.spec.packetOf(nodes);
  }

  /**
   * While the stages compute: the draft runs on the nodes just sent. Not on a root sent alone
   * while the next layer would be 0 wide (under load): the request decodes as PP then, and
   * the draft catches up on those tokens if the tree widens again (DraftRunner's skip),
   * instead of a draft call per token that nothing uses.
   */
  async afterSend(packet: LayerPacket): Promise<void> {
    const { tree } = this.spec;
    if (packet.nodeIds.length === 1 && packet.nodeIds[0] === tree.root.id && this.width() === 0) {
      return;
    }
    await this.spec.propose(
      [...packet.nodeIds].map((id) => tree.get(id)).filter((n) => n !== undefined),
    );
  }

  /** The next layer to inject: the root itself after a miss, else one layer below the tree. */
  private nextLayer(): TreeNode[] {
    const { tree, run } = this.spec;
    if (!tree.root.injected) return [tree.root];
    const frontier = tree.layer(tree.height);
    if (frontier[0].position + 1 > run.lastUsefulPosition) return [];
    return tree.expand(this.width());
  }

  /** This layer's width: options.widthNow's, within 0..W, where the acceptance allows it. */
  width(): number {
    const { widthNow, width } = this.options;
    const sampling = this.spec.run.request.sampling;
    if (!widthNow || (sampling && isDistribution(sampling))) return width;
    return Math.max(0, Math.min(width, Math.floor(widthNow())));
  }
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
  const width = options.width;
  const branching = options.branching ?? defaultBranching(width, request.sampling);
  const drafter = new DraftRunner(draft, run, branching, options.scoreTemperature);
  const treeWidth = Math.max(width, options.draftWidth ?? width);
  const tree = new PredictionTree(treeWidth, branching, request.prompt.length);
  // The first root is the last prompt row: it travels with the last prefill chunk.
  const rootToken = request.prompt[request.prompt.length - 1];
  tree.reset(rootToken, request.prompt.length - 1, 0, -1, run.promptRoot).injected = true;
  const spec = new Speculation(run, drafter, tree, (t) => options.onVerify?.(t));
  const layersPerStep = options.layersPerStep ?? 1;
  const ahead =
    options.draftWidth === undefined
      ? null
      : new AheadDrafter(spec, {
          width,
          layersPerStep,
          refillBudget: options.refillBudget ?? 2 * width,
          maxHeight: layersPerStep * pipeline.stageCount,
        });
  const layers = new LayerDrafter(spec, pipeline.stageCount, options);
  let draftPrefilled = false;

  try {
    await run.loop({
      // 1. Expand: the next packet of the prompt, then of the tree.
      onTick(): Promise<LayerPacket | null> | LayerPacket | null {
        if (!run.prefillDone) return run.nextPrefillPacket(spec.epoch);
        return ahead ? ahead.tick() : layers.tick();
      },
      // 2. Compute: the stages work on the packet; the draft works beside them.
      async afterSend(packet: LayerPacket) {
        if (!draftPrefilled) {
          draftPrefilled = true;
          // Under load (0 wide) the request decodes as PP and may never speculate: the
          // draft leaves the prompt for the catch-up, should the tree widen later.
          if (!ahead && layers.width() === 0) drafter.deferPrompt();
          else {
            const first = await drafter.prefill(request.prefillChunk ?? 32);
            tree.root.candidates = first.candidates;
            tree.root.draftQ = first.q;
          }
        }
        if (run.isPrefillPacket(packet.seq)) {
          // Drafting ahead starts while the last prefill chunk is in the stages.
          if (ahead && run.prefillDone) await ahead.grow();
        } else if (ahead) await ahead.grow();
        else await layers.afterSend(packet);
      },
      // 3-5. Verify, commit and prune.
      onVerdict(v: Verdict) {
        if (run.handlePrefillVerdict(v, spec.epoch)) return;
        if (v.epoch < spec.epoch) return;
        spec.record(v);
        spec.verify();
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
