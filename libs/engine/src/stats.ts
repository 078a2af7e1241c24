// Per-request statistics and the per-token event, shared by every method.

export type Method = 'ar' | 'pp' | 'stpp' | 'pipedec';

/** One committed output token, for streaming. */
export interface TokenEvent {
  requestId: string;
  token: number;
  index: number; // 0-based position in the output
  timestep: number; // the timestep at which the token was committed
  simulatedMs: number; // simulated clock at commit (0 outside the simulator)
  text: string; // new text safe to stream ('' without a decoder)
}

export interface RequestStats {
  method: Method;
  stages: number;
  promptTokens: number;
  outputTokens: number;
  /** Tokens the target committed, the end-of-sequence token included. */
  committedTokens: number;
  timesteps: number;
  /** Timesteps until the first token was committed (prefill). */
  prefillTimesteps: number;
  /** Timesteps per committed token after the first (the primary metric). */
  timestepsPerToken: number;
  tokensPerTimestep: number;
  verifications: number; // root verdicts checked against the tree (PipeDec) or trees verified (STPP)
  hits: number; // PipeDec: the target's token was a child of the root
  misses: number;
  refills: number; // pipeline restarts from the target's token after a miss
  /** Drafted tokens committed over tokens committed by verification (draftHits), 0 for PP. */
  hitRate: number;
  refillsPer100Tokens: number;
  acceptedDraftTokens: number; // STPP: drafted tokens committed
  /**
   * How well the draft predicts this request's text, whatever the method's tree shape: of the
   * tokens committed at a node the draft had proposed children for (firstProposalChecks), how
   * many were its first proposal (firstProposalMatches): its top-1 when greedy, its first draw
   * when sampling. 0 of 0 for PP. auto.ts compares methods at equal agreement with it.
   */
  firstProposalChecks: number;
  firstProposalMatches: number;
  draftedNodes: number; // tree nodes sent into the pipeline
  draftMs: number; // time the draft model computed (its own, not what it waited behind)
  /** Wall time of draft calls that began with packets of this request in the pipeline. */
  draftInPipelineMs: number;
  draftPositions: number;
  stageBusyMs: number[]; // [stages] wall time computing
  stagePositions: number[]; // [stages] rows computed
  stageSimulatedMs: number[]; // [stages] busy time under the cost model
  /** The controller's own work (tree, decisions, stop rules), draft and broadcast excluded, ms. */
  engineMs: number;
  /** Median and 90th percentile of that work per timestep (garbage collection lands in the tail). */
  engineMsMedian: number;
  engineMsP90: number;
  /** Delivering decisions; in-process this includes every stage applying them (KV compaction). */
  broadcastMs: number;
  wallMs: number;
  ttftWallMs: number;
  simulatedMs: number;
  ttftSimulatedMs: number;
  /** Simulated ms per output token after the first. */
  simulatedMsPerToken: number;
}

export function ratio(a: number, b: number): number {
  return b > 0 ? a / b : 0;
}

/**
 * The hit rate's counts, one definition for every method: of the tokens committed by checking
 * the draft's prediction (every token after the first), how many the draft had proposed and
 * the pipeline had already computed. PipeDec verifies one token per root (hit: the target's
 * token was an injected child); STPP verifies a tree and commits its accepted path plus the
 * target's own next token. PP drafts nothing: 0 of 0.
 */
/** The draft's first-proposal agreement (firstProposalMatches / Checks), undefined for none. */
export function draftAgreement(s: RequestStats): number | undefined {
  return s.firstProposalChecks > 0 ? s.firstProposalMatches / s.firstProposalChecks : undefined;
}

/**
 * Counts one committed token `x` against the draft's first proposal at `node`, when the draft
 * has proposed there.
 */
export function countFirstProposal(
  s: RequestStats,
  node: { candidates: readonly { token: number }[] | null },
  x: number,
): void {
  const first = node.candidates?.[0];
  if (!first) return;
  s.firstProposalChecks++;
  if (first.token === x) s.firstProposalMatches++;
}

export function draftHits(s: RequestStats): { accepted: number; verified: number } {
  switch (s.method) {
    case 'pipedec':
      return { accepted: s.hits, verified: s.hits + s.misses };
    case 'stpp':
      return {
        accepted: s.acceptedDraftTokens,
        verified: s.acceptedDraftTokens + s.verifications,
      };
    case 'ar':
    case 'pp':
      return { accepted: 0, verified: 0 };
  }
}
