import type { RequestEvent, SpeculativeStats } from '@pipedec/contracts';
import { outcomeOf } from './outcome.js';

const pricing = { priority: 1, priceInputPer1kMicros: 1000n, priceOutputPer1kMicros: 3000n };
const request = { queuedAt: new Date(1000), promptTokens: 10 };
const stats: SpeculativeStats = {
  timesteps: 4,
  tokensPerTimestep: 1,
  draftedTokens: 8,
  acceptedTokens: 3,
  verifiedTokens: 8,
  hitRate: 0.375,
  stageSeconds: 0.5,
  time: { wallMs: 700, draftMs: 100, stageComputeMs: 400, transferMs: 150 },
};
const tok = (index: number, at: number): RequestEvent => ({
  type: 'token',
  index,
  tokenId: 1,
  text: 'x',
  timestep: index,
  at,
});

describe('outcomeOf', () => {
  it('is undefined while the request runs', () => {
    const events: RequestEvent[] = [
      { type: 'started', attempt: 1, pipelineId: 'p', at: 1100 },
      tok(0, 1200),
    ];
    expect(outcomeOf(request, events, pricing)).toBeUndefined();
  });

  it('counts a retried attempt once and times the first commits', () => {
    const events: RequestEvent[] = [
      { type: 'started', attempt: 1, pipelineId: 'p', at: 1100 },
      tok(0, 1200),
      tok(1, 1300),
      { type: 'error', code: 'STAGE_LOST', message: 'm', retryable: true, at: 1350 },
      { type: 'started', attempt: 2, pipelineId: 'q', at: 1400 },
      tok(0, 1500),
      tok(1, 1600),
      tok(2, 1800),
      {
        type: 'done',
        finishReason: 'length',
        usage: { promptTokens: 10, completionTokens: 3 },
        stats,
        at: 1900,
      },
    ];
    const o = outcomeOf(request, events, pricing)!;
    expect(o).toMatchObject({
      status: 'succeeded',
      promptTokens: 10,
      completionTokens: 3,
      timeToFirstTokenMs: 200,
      timePerOutputTokenMs: 300, // (1800 - 1200) / 2
      totalLatencyMs: 900,
      timesteps: 4,
      hitRate: 0.375,
      stats,
    });
    // 10 * 1000 + 3 * 3000 = 19000 micro-dollars per 1000 tokens -> 19 micro-dollars.
    expect(o.costMicros).toBe(19n);
  });

  it('bills a failed request for the prompt and the tokens delivered', () => {
    const events: RequestEvent[] = [
      { type: 'started', attempt: 1, pipelineId: 'p', at: 1100 },
      tok(0, 1200),
      { type: 'error', code: 'job_failed', message: 'm', retryable: false, at: 1300 },
    ];
    expect(outcomeOf(request, events, pricing)).toMatchObject({
      status: 'failed',
      errorCode: 'job_failed',
      promptTokens: 10,
      completionTokens: 1,
      costMicros: 13n, // ceil((10 * 1000 + 1 * 3000) / 1000)
      // The prices it was billed at travel with it, for bills after a price change.
      billedInputPer1kMicros: 1000n,
      billedOutputPer1kMicros: 3000n,
    });
  });

  it('bills nothing for a request cancelled before it started', () => {
    const events: RequestEvent[] = [
      {
        type: 'done',
        finishReason: 'cancelled',
        usage: { promptTokens: 0, completionTokens: 0 },
        stats,
        at: 1050,
      },
    ];
    expect(outcomeOf(request, events, pricing)).toMatchObject({
      status: 'cancelled',
      costMicros: 0n,
    });
  });
});
