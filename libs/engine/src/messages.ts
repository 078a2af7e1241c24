// The plain records that travel between the controller and the stages. They are the whole
// stage protocol: an in-process pipeline passes them by reference, the simulator counts them,
// and the stage nodes (gRPC) serialize them field by field.

import type { SamplingParams } from './sampling.js';

/** One tree layer (or prefill chunk) on its way through the stages. */
export interface LayerPacket {
  requestId: string;
  /** Bumped on every miss; a stage drops packets of an older epoch. */
  epoch: number;
  /** Packet counter of the request, for logs and ordering checks. */
  seq: number;
  nodeIds: Int32Array; // [n] row ids, unique within the request while the row lives
  parentIds: Int32Array; // [n] parent row id (tree row, committed row, or earlier in this packet); -1 = none
  positions: Int32Array; // [n] absolute positions
  tokens?: Int32Array; // [n] token ids (into stage 0)
  hidden?: Float32Array; // [n, hiddenSize] hidden states (into stages 1..S-1)
  /** How the last stage turns logits into tokens; every packet carries it. */
  sampling: SamplingParams;
}

/** The last stage's answer for one packet: the target's chosen next token per row. */
export interface Verdict {
  requestId: string;
  epoch: number;
  seq: number;
  nodeIds: Int32Array; // [n] rows that survived to the last stage
  /** [n] the target's token at position + 1 of each row (argmax or seeded sample). */
  tokens: Int32Array;
  /** [n] the target's raw logit of that token: lets tests bound pipeline-vs-AR drift. */
  logits: Float32Array;
  /**
   * [n, vocab] Distribution-mode acceptance only (SamplingParams.acceptance): each row's
   * sampled distribution (after temperature, top-k, top-p), which the controller's recursive
   * rejection sampling needs; absent otherwise.
   */
  probs?: Float32Array;
}

/**
 * Commit and prune, broadcast by the controller to every stage (and mirrored in the draft).
 * A stage applies decisions in seq order, before its next compute.
 */
export interface Decision {
  requestId: string;
  /** The epoch after this decision; packets of older epochs are dropped. */
  epoch: number;
  /** Decision counter of the request: 0, 1, 2, ... */
  seq: number;
  /** Tree rows (a chain, oldest first) that become committed prefix, without recompute. */
  commit: number[];
  /**
   * Surviving tree rows among those with id <= upTo. Rows created after the decision
   * (id > upTo) are never affected: they can only descend from survivors.
   */
  keep: number[] | 'all' | 'none';
  /** Highest node id the controller had issued when it decided. */
  upTo: number;
  /** Free everything of the request (end or cancellation). */
  release?: boolean;
}
