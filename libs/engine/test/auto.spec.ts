// MethodChooser (decoding_method "auto"): every candidate is measured before any is trusted,
// the fastest by median is chosen, a few choices re-measure the stalest candidate, classes
// (greedy, sampled) are kept apart, on a simulated pipeline whose costs change the chooser
// follows the fastest method with bounded loss, and speculative candidates measured on
// requests of different difficulty are compared at the same draft agreement.

import fc from 'fast-check';
import {
  type AutoCandidate,
  decodeMsPerToken,
  defaultAutoCandidates,
  MethodChooser,
  requestClass,
} from '../src/index.js';

const PP: AutoCandidate = { method: 'pp', width: 1, depth: 0 };
const STPP: AutoCandidate = { method: 'stpp', width: 4, depth: 4 };
const PIPEDEC: AutoCandidate = { method: 'pipedec', width: 4, depth: 0 };
const ALL = [PIPEDEC, STPP, PP];

function serve(
  chooser: MethodChooser,
  cls: string,
  cost: (c: AutoCandidate) => number,
  n: number,
): { method: string; reason: string; ms: number }[] {
  const out = [];
  for (let i = 0; i < n; i++) {
    const c = chooser.choose(cls);
    const ms = cost(c);
    chooser.record(cls, c, ms);
    out.push({ method: c.method, reason: c.reason, ms });
  }
  return out;
}

describe('MethodChooser', () => {
  it('tries every candidate minSamples times before trusting any, then picks the fastest', () => {
    const chooser = new MethodChooser({ candidates: ALL, minSamples: 2 });
    const cost = { pipedec: 6, stpp: 4.8, pp: 6.2 };
    const runs = serve(chooser, 'greedy', (c) => cost[c.method], 12);
    expect(runs.slice(0, 6).map((r) => r.reason)).toEqual(Array(6).fill('untried'));
    expect(new Set(runs.slice(0, 6).map((r) => r.method))).toEqual(
      new Set(['pipedec', 'stpp', 'pp']),
    );
    expect(runs.slice(6).map((r) => r.method)).toEqual(Array(6).fill('stpp'));
    expect(runs.slice(6).every((r) => r.reason === 'fastest')).toBe(true);
  });

  it('uses the median, so one slow outlier does not flip the choice', () => {
    const chooser = new MethodChooser({ candidates: [PIPEDEC, STPP], minSamples: 3 });
    for (const ms of [3, 3.1, 40]) chooser.record('greedy', PIPEDEC, ms);
    for (const ms of [4, 4, 4]) chooser.record('greedy', STPP, ms);
    expect(chooser.choose('greedy').method).toBe('pipedec');
  });

  it('keeps greedy and sampled requests apart', () => {
    const chooser = new MethodChooser({ candidates: [PIPEDEC, PP], minSamples: 1 });
    const greedy = requestClass({ temperature: 0 });
    const sampled = requestClass({ temperature: 1 });
    expect(greedy).not.toBe(sampled);
    chooser.record(greedy, PIPEDEC, 2);
    chooser.record(greedy, PP, 6);
    chooser.record(sampled, PIPEDEC, 7);
    chooser.record(sampled, PP, 6);
    expect(chooser.choose(greedy).method).toBe('pipedec');
    expect(chooser.choose(sampled).method).toBe('pp');
  });

  it('honours a filter (a request that fixed tree_width 1 can only run pp)', () => {
    const chooser = new MethodChooser({ candidates: ALL, minSamples: 1 });
    for (const c of ALL) chooser.record('greedy', c, c === PP ? 9 : 1);
    expect(chooser.choose('greedy', (c) => c.method === 'pp').method).toBe('pp');
  });

  it('ignores measurements that are not positive and finite', () => {
    const chooser = new MethodChooser({ candidates: [PP], minSamples: 1 });
    chooser.record('greedy', PP, Number.NaN);
    chooser.record('greedy', PP, 0);
    expect(chooser.median('greedy', PP)).toBeUndefined();
    expect(chooser.choose('greedy').reason).toBe('untried');
  });

  it('follows a pipeline whose fastest method changes, within a bounded loss', () => {
    // A deployment whose hops grow (stages moved apart): PipeDec overtakes STPP at request 60.
    const chooser = new MethodChooser({ candidates: ALL, window: 6, exploreEvery: 8 });
    const before = { pipedec: 6, stpp: 4.8, pp: 6.2 };
    const after = { pipedec: 13, stpp: 14.2, pp: 30.5 };
    serve(chooser, 'greedy', (c) => before[c.method], 60);
    const runs = serve(chooser, 'greedy', (c) => after[c.method], 60);
    expect(
      runs
        .slice(-16)
        .filter((r) => r.reason === 'fastest')
        .map((r) => r.method),
    ).toEqual(Array(runs.slice(-16).filter((r) => r.reason === 'fastest').length).fill('pipedec'));
    const mean = runs.slice(-30).reduce((a, r) => a + r.ms, 0) / 30;
    expect(mean / after.pipedec).toBeLessThan(1.15);
  });

  it('re-measures only candidates within exploreWithin of the fastest, until the fastest slows', () => {
    const chooser = new MethodChooser({ candidates: [PIPEDEC, PP], exploreEvery: 4 });
    const cost: Record<string, number> = { pipedec: 8, pp: 4 };
    const runs = serve(chooser, 'greedy', (c) => cost[c.method], 64);
    expect(runs.slice(4).every((r) => r.method === 'pp' && r.reason === 'fastest')).toBe(true);
    cost.pp = 7; // the fastest slows: PipeDec (8) is within 1.5x again and is re-measured
    const after = serve(chooser, 'greedy', (c) => cost[c.method], 16);
    expect(after.filter((r) => r.reason === 'explore').map((r) => r.method)).toContain('pipedec');
  });

  it('property: after warm-up, the mean cost stays within the exploration budget of the best', () => {
    fc.assert(
      fc.property(
        fc.array(fc.double({ min: 1, max: 50, noNaN: true }), { minLength: 3, maxLength: 3 }),
        fc.integer({ min: 4, max: 32 }),
        (costs, exploreEvery) => {
          const chooser = new MethodChooser({ candidates: ALL, exploreEvery });
          const byMethod = (c: AutoCandidate) => costs[ALL.findIndex((x) => x.method === c.method)];
          serve(chooser, 'greedy', byMethod, 6);
          const runs = serve(chooser, 'greedy', byMethod, 10 * exploreEvery);
          const best = Math.min(...costs);
          const worst = Math.max(...costs);
          const mean = runs.reduce((a, r) => a + r.ms, 0) / runs.length;
          // Only explore choices may differ from the best: one in exploreEvery, rounded up.
          const explores = Math.ceil(runs.length / exploreEvery);
          return mean <= best + ((worst - best) * explores) / runs.length + 1e-9;
        },
      ),
    );
  });

  it('compares speculative candidates at equal draft agreement, not on the requests each served', () => {
    // bench:api (d) before this: fixed STPP requests of every prompt set fed width 2's
    // samples, while width 4 was measured only on the easy scripture requests auto sent it; its
    // raw median looked best though it is 1.25x slower on any request.
    const W2: AutoCandidate = { method: 'stpp', width: 2, depth: 4 };
    const W4: AutoCandidate = { method: 'stpp', width: 4, depth: 4 };
    const cost = (c: AutoCandidate, a: number) =>
      (c.width === 4 ? 1.25 : 1) * 20 * Math.exp(-2.5 * a);
    const chooser = new MethodChooser({ candidates: [W4, W2], minSamples: 2 });
    for (const a of [0.55, 0.6, 0.9, 0.55, 0.6]) chooser.record('greedy', W2, cost(W2, a), a);
    for (const a of [0.9, 0.92]) chooser.record('greedy', W4, cost(W4, a), a);
    expect(chooser.median('greedy', W4)!).toBeLessThan(chooser.median('greedy', W2)!);
    expect(chooser.choose('greedy')).toMatchObject({ width: 2, reason: 'fastest' });
    expect(chooser.estimate('greedy', W4)! / chooser.estimate('greedy', W2)!).toBeCloseTo(1.25, 9);
    expect(chooser.adjustment('greedy')!.slope).toBeCloseTo(-2.5, 9);
  });

  it('prefers a steady method to one equal at the median difficulty but slower on average', () => {
    const W2: AutoCandidate = { method: 'stpp', width: 2, depth: 4 };
    const chooser = new MethodChooser({ candidates: [W2, PP], minSamples: 2 });
    const stpp = (a: number) => 20 * Math.exp(-2.5 * a); // 7.36, 4.46, 2.71
    for (const a of [0.4, 0.6, 0.8]) chooser.record('sampled', W2, stpp(a), a);
    for (const ms of [4.6, 4.6]) chooser.record('sampled', PP, ms);
    expect(stpp(chooser.adjustment('sampled')!.agreement)).toBeLessThan(4.6);
    expect(chooser.estimate('sampled', W2)).toBeCloseTo((stpp(0.4) + stpp(0.6) + stpp(0.8)) / 3, 9);
    expect(chooser.choose('sampled').method).toBe('pp');
  });

  it('keeps its last choice unless another is switchMargin faster', () => {
    const chooser = new MethodChooser({ candidates: [PIPEDEC, PP], minSamples: 1 });
    chooser.record('greedy', PIPEDEC, 4);
    chooser.record('greedy', PP, 4.2);
    expect(chooser.choose('greedy').method).toBe('pipedec');
    chooser.record('greedy', PP, 3.6); // PP's median 3.9: 2.5% lower, within the margin
    expect(chooser.choose('greedy').method).toBe('pipedec');
    chooser.record('greedy', PP, 3.4); // median 3.6: 10% lower
    expect(chooser.choose('greedy').method).toBe('pp');
  });

  it('without agreements (or too little spread in them) compares plain medians', () => {
    const chooser = new MethodChooser({ candidates: [PIPEDEC, STPP], minSamples: 2 });
    for (const ms of [3, 3.2]) chooser.record('greedy', PIPEDEC, ms, 0.8);
    for (const ms of [4, 4.4]) chooser.record('greedy', STPP, ms, 0.81);
    expect(chooser.adjustment('greedy')!.slope).toBe(0);
    expect(chooser.estimate('greedy', PIPEDEC)).toBeCloseTo(3.1, 9);
    expect(chooser.estimate('greedy', STPP)).toBeCloseTo(4.2, 9);
    chooser.record('greedy', PP, 5);
    chooser.record('greedy', PP, 5, 0.2); // PP drafts nothing: an agreement given is ignored
    expect(chooser.adjustment('greedy')!.agreement).toBeCloseTo(0.805, 9);
  });

  it('property: whichever requests fed which candidate, it picks the fastest on average over the agreements seen', () => {
    const SPEC = [PIPEDEC, STPP, { method: 'stpp', width: 2, depth: 4 } as AutoCandidate];
    fc.assert(
      fc.property(
        fc.array(fc.double({ min: 1, max: 3, noNaN: true }), { minLength: 3, maxLength: 3 }),
        fc.double({ min: 1, max: 8, noNaN: true }),
        fc.double({ min: -4, max: -0.5, noNaN: true }),
        fc.array(
          fc.array(fc.double({ min: 0.3, max: 1, noNaN: true }), { minLength: 2, maxLength: 8 }),
          { minLength: 3, maxLength: 3 },
        ),
        (levels, ppMs, slope, agreements) => {
          // One candidate's requests spread enough to fit the slope; the others' may be alike.
          agreements[0] = [0.4, 0.9, ...agreements[0]];
          const chooser = new MethodChooser({
            candidates: [...SPEC, PP],
            window: 10,
            referenceWindow: 100,
          });
          const cost = (i: number, a: number) => levels[i] * 10 * Math.exp(slope * a);
          SPEC.forEach((c, i) => {
            for (const a of agreements[i]) chooser.record('g', c, cost(i, a), a);
          });
          chooser.record('g', PP, ppMs);
          chooser.record('g', PP, ppMs);
          // What a request costs on average over the difficulties seen.
          const seen = agreements.flat();
          const mean = (i: number) => seen.reduce((a, r) => a + cost(i, r), 0) / seen.length;
          const truth = [...SPEC.map((_, i) => mean(i)), ppMs];
          const best = truth.indexOf(Math.min(...truth));
          const picked = chooser.choose('g');
          const got =
            truth[
              [...SPEC, PP].findIndex((c) => c.method === picked.method && c.width === picked.width)
            ];
          return got <= truth[best] * (1 + 1e-9);
        },
      ),
    );
  });

  it('is deterministic: the same calls give the same choices', () => {
    const costs = { pipedec: 5, stpp: 5.5, pp: 7 };
    const a = serve(new MethodChooser({ candidates: ALL }), 'g', (c) => costs[c.method], 50);
    const b = serve(new MethodChooser({ candidates: ALL }), 'g', (c) => costs[c.method], 50);
    expect(a).toEqual(b);
  });
});

describe('defaultAutoCandidates', () => {
  it('offers PipeDec and STPP at the width asked for, and PP', () => {
    expect(defaultAutoCandidates(8, 4)).toEqual([
      { method: 'pipedec', width: 8, depth: 0 },
      { method: 'stpp', width: 8, depth: 4 },
      { method: 'pp', width: 1, depth: 0 },
    ]);
    expect(defaultAutoCandidates(undefined, 3).map((c) => `${c.method}/${c.width}`)).toEqual([
      'pipedec/4',
      'stpp/4',
      'pipedec/2',
      'stpp/2',
      'pp/1',
    ]);
  });
});

describe('decodeMsPerToken', () => {
  it('leaves out the first token and refuses too-short requests', () => {
    expect(decodeMsPerToken({ wallMs: 110, ttftWallMs: 10, outputTokens: 11 })).toBe(10);
    expect(decodeMsPerToken({ wallMs: 50, ttftWallMs: 10, outputTokens: 3 })).toBeUndefined();
  });
});
