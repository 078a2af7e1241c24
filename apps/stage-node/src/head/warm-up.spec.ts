import {
  emptyStats,
  type AutoCandidate,
  type GenerateRequest,
  type GenerateResult,
} from '@pipedec/engine';
import { PipelineWarmUp, type WarmUpOptions } from './warm-up.js';

const CANDIDATES: AutoCandidate[] = [
  { method: 'pipedec', width: 4, depth: 0 },
  { method: 'stpp', width: 4, depth: 4 },
  { method: 'pp', width: 1, depth: 0 },
];

interface Call {
  candidate: AutoCandidate;
  request: GenerateRequest;
}

/** A pipeline that decodes every request in full, each token taking `msPerToken` of a fake clock. */
function fakePipeline(msPerToken: (call: number) => number = () => 2) {
  const calls: Call[] = [];
  let clock = 0;
  const run = (candidate: AutoCandidate, request: GenerateRequest): Promise<GenerateResult> => {
    const ms = msPerToken(calls.length);
    calls.push({ candidate, request });
    const n = request.maxTokens;
    clock += n * ms;
    const stats = { ...emptyStats(candidate.method, 2, request.prompt.length), outputTokens: n };
    stats.wallMs = n * ms;
    stats.ttftWallMs = ms;
    return Promise.resolve({
      requestId: request.requestId,
      tokens: Array.from({ length: n }, (_, i) => i),
      text: '',
      finishReason: 'length',
      stats,
    } as unknown as GenerateResult);
  };
  return { calls, run, now: () => clock };
}

const options = (o: Partial<WarmUpOptions>): WarmUpOptions => ({
  tokens: 768,
  maxMs: 60_000,
  requestTokens: 64,
  prompt: [1, 2, 3],
  candidates: CANDIDATES,
  ...o,
});

describe('the head warm-up', () => {
  it('runs every candidate greedy and sampled, in turn, until the token budget is decoded', async () => {
    const p = fakePipeline();
    const w = new PipelineWarmUp(options({ now: p.now }), p.run);
    expect(w.pending).toBe(true);
    const status = await w.start(new AbortController().signal);
    expect(status).toMatchObject({ state: 'done', tokens: 768, requests: 12, reason: null });
    expect(w.pending).toBe(false);
    const kinds = p.calls.map(
      (c) =>
        `${c.candidate.method}/${c.request.sampling?.temperature}/${c.request.sampling?.acceptance ?? '-'}`,
    );
    expect(kinds.slice(0, 6)).toEqual([
      'pipedec/0/-',
      'stpp/0/-',
      'pp/0/-',
      'pipedec/1/distribution',
      'stpp/1/distribution',
      'pp/1/distribution',
    ]);
    expect(kinds.slice(6)).toEqual(kinds.slice(0, 6));
    // Always the full length (no end of sequence), never the same request id, seeds vary.
    expect(p.calls.every((c) => c.request.eosTokenIds?.length === 0)).toBe(true);
    expect(new Set(p.calls.map((c) => c.request.requestId)).size).toBe(12);
    const seeds = p.calls
      .filter((c) => c.request.sampling!.temperature > 0)
      .map((c) => c.request.sampling!.seed);
    expect(new Set(seeds).size).toBe(seeds.length);
  });

  it('ends the last request at the budget', async () => {
    const p = fakePipeline();
    const w = new PipelineWarmUp(options({ tokens: 100, now: p.now }), p.run);
    const status = await w.start(new AbortController().signal);
    expect(p.calls.map((c) => c.request.maxTokens)).toEqual([64, 36]);
    expect(status.tokens).toBe(100);
  });

  it('stops at its time limit', async () => {
    const p = fakePipeline(() => 10); // 640 ms per request
    const w = new PipelineWarmUp(options({ tokens: 100_000, maxMs: 2000, now: p.now }), p.run);
    const status = await w.start(new AbortController().signal);
    expect(status.state).toBe('done');
    expect(p.calls).toHaveLength(4); // 0, 640, 1280, 1920 ms: each began within the limit
  });

  it('hands the second half of its measurements to auto, by request class', async () => {
    const p = fakePipeline((i) => 10 - i * 0.5); // getting faster
    const seen: string[] = [];
    const w = new PipelineWarmUp(options({ now: p.now }), p.run, (cls, c, ms) =>
      seen.push(`${cls} ${c.method} ${ms.toFixed(1)}`),
    );
    const status = await w.start(new AbortController().signal);
    // 12 requests of 64 tokens: from the 6th on, half the budget is decoded.
    expect(seen).toEqual([
      'sampled/distribution pp 7.5',
      'greedy pipedec 7.0',
      'greedy stpp 6.5',
      'greedy pp 6.0',
      'sampled/distribution pipedec 5.5',
      'sampled/distribution stpp 5.0',
      'sampled/distribution pp 4.5',
    ]);
    // First and latest decode speed of the first kind (pipedec, greedy).
    expect(status.firstMsPerToken).toBeCloseTo(10);
    expect(status.lastMsPerToken).toBeCloseTo(7);
  });

  it('stops when the pipeline breaks, and starts from zero the next time', async () => {
    const abort = new AbortController();
    let calls = 0;
    const p = fakePipeline();
    const run = (c: AutoCandidate, r: GenerateRequest) => {
      if (++calls === 3) abort.abort();
      return p.run(c, r);
    };
    const w = new PipelineWarmUp(options({ now: p.now }), run);
    const first = await w.start(abort.signal);
    expect(first).toMatchObject({ state: 'aborted', tokens: 192, requests: 3 });
    expect(first.reason).toMatch(/whole/);
    expect(w.pending).toBe(true);
    const second = await w.start(new AbortController().signal);
    expect(second).toMatchObject({ state: 'done', tokens: 768, requests: 12 });
  });

  it('reports a failed request instead of throwing', async () => {
    const w = new PipelineWarmUp(options({}), () => Promise.reject(new Error('stage 2 is gone')));
    const status = await w.start(new AbortController().signal);
    expect(status).toMatchObject({ state: 'aborted', reason: 'stage 2 is gone', tokens: 0 });
  });

  it('is off with no tokens to decode: never pending, runs nothing', async () => {
    const p = fakePipeline();
    const w = new PipelineWarmUp(options({ tokens: 0 }), p.run);
    expect(w.pending).toBe(false);
    expect((await w.start(new AbortController().signal)).state).toBe('off');
    expect(p.calls).toHaveLength(0);
  });
});
