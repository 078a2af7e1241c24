import {
  decodeEvent,
  encodeEvent,
  eventsKey,
  generationJobSchema,
  isTerminal,
  unsupportedCombination,
  type GenerationJob,
} from './index.js';

const job: GenerationJob = {
  version: 1,
  requestId: '7d6f7c1e-8d0e-4c55-9a59-3f1a2b9f0a11',
  tenantId: '0b0f3a3a-1b6d-4bde-9c07-6c1d2e0f9e55',
  model: 'pipedec-demo',
  prompt: { kind: 'text', text: 'Hello' },
  promptTokens: 2,
  maxTokens: 8,
  sampling: { temperature: 0, topP: 1, seed: 1 },
  method: 'pipedec',
  width: 2,
  stop: [],
  eventsKey: eventsKey('p:', '7d6f7c1e-8d0e-4c55-9a59-3f1a2b9f0a11'),
  cancelKey: 'p:req:7d6f7c1e-8d0e-4c55-9a59-3f1a2b9f0a11:cancel',
  enqueuedAt: 1,
};

describe('generation job contract', () => {
  it('accepts a valid job and refuses unknown fields', () => {
    expect(generationJobSchema.parse(job)).toEqual(job);
    expect(generationJobSchema.safeParse({ ...job, extra: 1 }).success).toBe(false);
  });

  it('names the stream key after the request', () => {
    expect(job.eventsKey).toBe('p:req:7d6f7c1e-8d0e-4c55-9a59-3f1a2b9f0a11:events');
  });

  it('refuses a tree width for plain pipelining instead of changing it', () => {
    expect(unsupportedCombination({ method: 'pp', width: 4 })?.param).toBe('tree_width');
    expect(unsupportedCombination({ method: 'pp', width: 1 })).toBeUndefined();
    expect(unsupportedCombination({ method: 'pipedec', width: 4 })).toBeUndefined();
  });
});

describe('event records', () => {
  it('round-trip and mark the terminal record', () => {
    const done = {
      type: 'done' as const,
      finishReason: 'length' as const,
      usage: { promptTokens: 2, completionTokens: 8 },
      stats: {
        timesteps: 5,
        tokensPerTimestep: 2.5,
        draftedTokens: 10,
        acceptedTokens: 6,
        verifiedTokens: 10,
        hitRate: 0.6,
        stageSeconds: 0.2,
        time: { wallMs: 40, draftMs: 5, stageComputeMs: 20, transferMs: 10 },
      },
      at: 3,
    };
    expect(decodeEvent(encodeEvent(done))).toEqual(done);
    expect(isTerminal(done)).toBe(true);
    expect(isTerminal({ type: 'error', code: 'X', message: 'm', retryable: true, at: 1 })).toBe(
      false,
    );
    expect(() => decodeEvent('{"type":"token","index":-1}')).toThrow();
  });

  it('writes a token record without its schema, as the schema would, and the reader checks it', () => {
    const token = {
      type: 'token',
      index: 3,
      tokenId: 17,
      text: 'é"\\',
      timestep: 9,
      at: 5,
    } as const;
    expect(encodeEvent(token)).toBe(JSON.stringify(token));
    expect(decodeEvent(encodeEvent(token))).toEqual(token);
    // Fields the record does not have are left out, as the strict schema's parse refused them.
    expect(JSON.parse(encodeEvent({ ...token, extra: 1 } as typeof token))).toEqual(token);
    expect(() => decodeEvent(encodeEvent({ ...token, index: -1 }))).toThrow();
  });
});
