// A finished request's statistics as its job reports them (contracts' SpeculativeStats): the
// engine's counts, and the time split from the engine's draft timers and the head's transport
// counters. Pure, so the arithmetic is unit-tested without a pipeline.
import type { SpeculativeStats, TimeSplit } from '@pipedec/contracts';
import { draftHits, type RequestStats } from '@pipedec/engine';
import type { TransportStats } from './grpc-pipeline.js';

export function speculativeStats(s: RequestStats, t: TransportStats | null): SpeculativeStats {
  const hits = draftHits(s);
  return {
    timesteps: s.timesteps,
    tokensPerTimestep: s.tokensPerTimestep,
    draftedTokens: s.draftedNodes,
    acceptedTokens: hits.accepted,
    verifiedTokens: hits.verified,
    hitRate: hits.verified > 0 ? hits.accepted / hits.verified : null,
    stageSeconds: s.stageBusyMs.reduce((a, b) => a + b, 0) / 1000,
    time: timeSplit(s, t),
  };
}

/**
 * Splits the request's wall time. The draft's own compute is measured. The time the request
 * had packets in the pipeline is measured too, less the draft calls made meanwhile (on the
 * head's one thread, so those stretches were the draft's); what remains is divided between
 * stage compute and transfer in the proportion the packets' round trips held them: the stages'
 * reported forward times against the rest (hops, encoding, queues at a busy stage). With one
 * packet in flight (PP) that is each packet's own compute and transit; with several (PipeDec)
 * it is their share of the overlapped time, so parts never sum past the wall time.
 *
 * Worked example: wall 100 ms, draft 20 ms of which 15 ms while packets were in flight,
 * pipeline time 70 ms, round trips 180 ms of which 120 ms forward passes:
 * 70 - 15 = 55 ms pipeline, stage compute 55 * 120/180 = 36.7 ms, transfer 18.3 ms.
 */
export function timeSplit(s: RequestStats, t: TransportStats | null): TimeSplit {
  const wallMs = s.wallMs;
  const draftMs = Math.min(s.draftMs, wallMs);
  const pipelineMs = t
    ? Math.max(0, Math.min(t.pipelineMs - s.draftInPipelineMs, wallMs - draftMs))
    : 0;
  const computeShare = t && t.roundTripMs > 0 ? Math.min(1, t.computeMs / t.roundTripMs) : 0;
  return {
    wallMs,
    draftMs,
    stageComputeMs: pipelineMs * computeShare,
    transferMs: pipelineMs * (1 - computeShare),
  };
}
