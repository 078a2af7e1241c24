// Lossless parity on the toy model: AR, PP, STPP and PipeDec emit identical tokens for every
// stage count and tree width, greedy and seeded sampling, in the simulator and on real async
// in-process stages.

import { jest } from '@jest/globals';
import type { SamplingParams } from '../src/index.js';
import { type MethodSpec, prompts, type Rig, runMethod } from './helpers.js';
import { type ToyConfig, ToyShard, toyStages } from './toy-model.js';

jest.setTimeout(60_000);

const TARGET: ToyConfig = { layers: 16, vocab: 97, maxPositions: 128, seed: 11 };
const DRAFT: ToyConfig = { ...TARGET, layers: 2, disagreement: 0.25, noiseSeed: 5 };
// Six prompts here; the ONNX suites run the full dozen.
const PROMPTS = prompts(6, TARGET.vocab, 42);
const SAMPLINGS: [string, SamplingParams][] = [
  ['greedy', { temperature: 0, topP: 1, seed: 0 }],
  ['sampled', { temperature: 0.8, topP: 0.9, seed: 1234 }],
];

function rig(stages: number): Rig {
  // The toy draft must agree with the target most of the time: it is the target's own function
  // with a few paths perturbed, so give it the target's layers.
  return {
    target: new ToyShard(TARGET),
    stages: toyStages(TARGET, stages),
    draft: new ToyShard({ ...DRAFT, layers: TARGET.layers }),
  };
}

describe.each(SAMPLINGS)('toy model, %s', (_name, sampling) => {
  const reference = new Map<number, number[]>();
  beforeAll(async () => {
    const r = rig(1);
    for (const [i, prompt] of PROMPTS.entries()) {
      const res = await runMethod(
        r,
        { method: 'ar' },
        {
          requestId: `ar-${i}`,
          prompt,
          maxTokens: 12,
          sampling,
          prefillChunk: 8,
        },
      );
      expect(res.tokens).toHaveLength(12);
      reference.set(i, res.tokens);
    }
  });

  it.each([1, 2, 3, 4, 8, 16])('S=%i: PP, STPP and PipeDec (W=1,4,16) equal AR', async (stages) => {
    const r = rig(stages);
    const specs: MethodSpec[] = [
      { method: 'pp' },
      { method: 'stpp', depth: 4, branching: 2, budget: 12 },
      { method: 'pipedec', width: 1 },
      { method: 'pipedec', width: 4 },
      { method: 'pipedec', width: 16, branching: 4 },
      // Beyond the paper: several layers per packet, and a refill packet with a subtree.
      { method: 'pipedec', width: 4, layersPerStep: 2, refillLayers: 4 },
      // Beyond the paper: the draft works ahead on a wider tree, refills come from it.
      { method: 'pipedec', width: 2, draftWidth: 8, refillBudget: 6 },
      { method: 'pipedec', width: 4, draftWidth: 8, layersPerStep: 2 },
      // The draft's scores at another temperature: other nodes speculated, same output.
      { method: 'pipedec', width: 4, scoreTemperature: 0.5 },
      { method: 'stpp', depth: 4, branching: 2, budget: 12, scoreTemperature: 0.5 },
    ];
    for (const spec of specs) {
      for (const [i, prompt] of PROMPTS.entries()) {
        const res = await runMethod(r, spec, {
          requestId: `${spec.method}-${stages}-${i}`,
          prompt,
          maxTokens: 12,
          sampling,
          prefillChunk: 8,
        });
        expect({ spec, i, tokens: res.tokens }).toEqual({ spec, i, tokens: reference.get(i) });
        for (const s of r.stages) expect((s as ToyShard).seqs.size).toBe(0);
        expect((r.draft as ToyShard).seqs.size).toBe(0);
      }
    }
  });

  it('real async in-process stages give the same tokens', async () => {
    const r = rig(4);
    for (const [i, prompt] of PROMPTS.slice(0, 6).entries()) {
      for (const spec of [
        { method: 'pp' },
        { method: 'pipedec', width: 4 },
        { method: 'stpp', depth: 3, branching: 2, budget: 8 },
      ] as MethodSpec[]) {
        const res = await runMethod(
          r,
          spec,
          { requestId: `async-${i}`, prompt, maxTokens: 12, sampling, prefillChunk: 8 },
          'async',
        );
        expect(res.tokens).toEqual(reference.get(i));
      }
    }
  });
});
