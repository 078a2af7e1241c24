import type { StageBatch, StageRegistration } from '@pipedec/contracts';
import { pipelineBatch } from './pipeline-batch.js';

const NOW = 1_000_000;

/** A registry entry for `stage` whose last heartbeat was `ageMs` ago. */
function entry(stage: number, batch: StageBatch | undefined, ageMs = 0): StageRegistration {
  return {
    pipelineId: 'p',
    stageIndex: stage,
    stageCount: 3,
    layerStart: stage,
    layerEnd: stage + 1,
    numLayers: 3,
    address: `127.0.0.1:${5000 + stage}`,
    healthUrl: 'http://127.0.0.1/health',
    fingerprint: 'f',
    ready: true,
    instanceId: `i${stage}`,
    pid: 1,
    startedAt: 0,
    heartbeatAt: NOW - ageMs,
    residentBytes: 0,
    downstream: null,
    batch,
  };
}

const stage = (calls: number, requests: number, rows: number): StageBatch => ({
  spanMs: 5000,
  calls,
  requests,
  rows,
  inFlight: null,
  tokens: null,
});

describe('pipelineBatch', () => {
  it('pools every stage: requests and rows over all their calls, tokens per second of the head', () => {
    const head = { ...stage(10, 20, 60), inFlight: 3, tokens: 250 };
    const b = pipelineBatch(
      [entry(0, head), entry(1, stage(5, 15, 30)), entry(2, stage(5, 5, 10))],
      NOW,
    );
    // (20 + 15 + 5) / 20 calls; (60 + 30 + 10) / 20; 250 tokens in 5 s.
    expect(b).toEqual({ inFlight: 3, requestsPerCall: 2, rowsPerCall: 5, tokensPerSecond: 50 });
  });

  it('leaves out stale entries, and says null where nothing computed or no head reports', () => {
    const head = { ...stage(0, 0, 0), inFlight: 0, tokens: 0 };
    expect(pipelineBatch([entry(0, head), entry(1, stage(0, 0, 0))], NOW)).toEqual({
      inFlight: 0,
      requestsPerCall: null,
      rowsPerCall: null,
      tokensPerSecond: 0,
    });
    const staleHead = { ...stage(4, 8, 8), inFlight: 2, tokens: 10 };
    expect(
      pipelineBatch([entry(0, staleHead, 6000), entry(1, stage(2, 2, 6)), undefined], NOW),
    ).toEqual({ inFlight: null, requestsPerCall: 1, rowsPerCall: 3, tokensPerSecond: null });
    // A node that does not count, and a head's first heartbeat (no span yet).
    const first = { ...stage(0, 0, 0), spanMs: 0, inFlight: 1, tokens: 0 };
    expect(pipelineBatch([entry(0, first), entry(1, undefined)], NOW)).toMatchObject({
      inFlight: 1,
      tokensPerSecond: null,
    });
  });
});
