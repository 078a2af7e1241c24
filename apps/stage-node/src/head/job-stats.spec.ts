import { emptyStats, type RequestStats } from '@pipedec/engine';
import type { TransportStats } from './grpc-pipeline.js';
import { speculativeStats, timeSplit } from './job-stats.js';

const transport = (t: Partial<TransportStats>): TransportStats => ({
  packets: 10,
  roundTripMs: 0,
  computeMs: 0,
  codecMs: 0,
  pipelineMs: 0,
  hops: 20,
  broadcastMs: 0,
  decisions: 10,
  ...t,
});

const stats = (method: RequestStats['method'], s: Partial<RequestStats>): RequestStats => ({
  ...emptyStats(method, 2, 4),
  ...s,
});

describe('job statistics', () => {
  it('splits the wall time as the worked example says', () => {
    const s = stats('pipedec', { wallMs: 100, draftMs: 20, draftInPipelineMs: 15 });
    const split = timeSplit(s, transport({ pipelineMs: 70, roundTripMs: 180, computeMs: 120 }));
    expect(split.wallMs).toBe(100);
    expect(split.draftMs).toBe(20);
    expect(split.stageComputeMs).toBeCloseTo(36.667, 3);
    expect(split.transferMs).toBeCloseTo(18.333, 3);
  });

  it('never sums past the wall time, even when its timers disagree', () => {
    const s = stats('pipedec', { wallMs: 50, draftMs: 30, draftInPipelineMs: 0 });
    const split = timeSplit(s, transport({ pipelineMs: 45, roundTripMs: 90, computeMs: 95 }));
    expect(split.draftMs + split.stageComputeMs + split.transferMs).toBeLessThanOrEqual(50);
    expect(split.transferMs).toBe(0);
    expect(split.stageComputeMs).toBe(20);
  });

  it('has one hit rate for every method: drafted tokens committed over tokens verified', () => {
    const t = transport({});
    const pd = speculativeStats(stats('pipedec', { hits: 9, misses: 3, draftedNodes: 48 }), t);
    expect(pd).toMatchObject({ acceptedTokens: 9, verifiedTokens: 12, hitRate: 0.75 });
    // STPP: 3 verifications committed 6 drafted tokens and 3 of the target's own.
    const st = speculativeStats(
      stats('stpp', { verifications: 3, acceptedDraftTokens: 6, draftedNodes: 48 }),
      t,
    );
    expect(st).toMatchObject({ acceptedTokens: 6, verifiedTokens: 9, draftedTokens: 48 });
    expect(st.hitRate).toBeCloseTo(2 / 3, 9);
    expect(speculativeStats(stats('pp', { timesteps: 8 }), t).hitRate).toBeNull();
  });
});
