// Controller behaviour on the toy model: the tree and every cache stay consistent after any
// run (property-based), timesteps match the method's theory, cancellation frees everything,
// stop rules and the context window behave the same in every method.

import { jest } from '@jest/globals';
import fc from 'fast-check';
import type { ShardOutput, TreeBatch } from '@pipedec/model';
import {
  CATCH_UP_CHUNK,
  draftAgreement,
  EngineError,
  generatePipeDec,
  inFlightWindow,
  type GenerateRequest,
  type PredictionTree,
  type SamplingParams,
  SimulatedPipeline,
  type TokenEvent,
} from '../src/index.js';
import {
  makePipeline,
  type MethodSpec,
  prompts,
  type Rig,
  runMethod,
  UNIT_COST,
} from './helpers.js';
import { type ToyConfig, ToyShard, toyStages } from './toy-model.js';

jest.setTimeout(120_000);

const TARGET: ToyConfig = { layers: 8, vocab: 61, maxPositions: 64, seed: 3, eosTokenIds: [] };
const GREEDY: SamplingParams = { temperature: 0, topP: 1, seed: 0 };

function rig(stages: number, disagreement: number, target = TARGET): Rig {
  return {
    target: new ToyShard(target),
    stages: toyStages(target, stages),
    draft: new ToyShard({ ...target, disagreement, noiseSeed: 9 }),
  };
}

/** The rows of every call `shard` computes from now on, in order. */
function callRows(shard: ToyShard): number[] {
  const rows: number[] = [];
  const forward = shard.forward.bind(shard);
  shard.forward = (seq: string, batch: TreeBatch): Promise<ShardOutput> => {
    rows.push(batch.nodeIds.length);
    return forward(seq, batch);
  };
  return rows;
}

/** The rows of every packet stage 0 computes for the rig from now on, in order. */
function stage0Rows(r: Rig): number[] {
  return callRows(r.stages[0] as ToyShard);
}

function assertReleased(r: Rig): void {
  for (const s of [...r.stages, r.draft, r.target]) expect((s as ToyShard).seqs.size).toBe(0);
}

const ALL: MethodSpec[] = [
  { method: 'ar' },
  { method: 'pp' },
  { method: 'stpp', depth: 3, branching: 2, budget: 8 },
  { method: 'pipedec', width: 4 },
];

describe('PipeDec controller on the toy model', () => {
  it('property: after every verification no stage, worker or draft holds a row outside the live tree; tokens equal AR', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 6 }),
        fc.integer({ min: 1, max: 8 }),
        fc.integer({ min: 1, max: 4 }),
        fc.double({ min: 0, max: 0.7, noNaN: true }),
        fc.array(fc.integer({ min: 1, max: 60 }), { minLength: 1, maxLength: 12 }),
        fc.integer({ min: 1, max: 8 }),
        fc.boolean(),
        fc.integer({ min: 1, max: 3 }),
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 0, max: 3 }),
        async (
          stages,
          width,
          branching,
          disagreement,
          prompt,
          chunk,
          sampled,
          k,
          refill,
          ahead,
        ) => {
          const r = rig(stages, disagreement);
          const sampling = sampled ? { temperature: 0.9, topP: 0.95, seed: 77 } : GREEDY;
          const request = { prompt, maxTokens: 10, sampling, prefillChunk: chunk };
          const ar = await runMethod(r, { method: 'ar' }, { ...request, requestId: 'ar' });
          const pipeline = makePipeline(r.stages, 'sim') as SimulatedPipeline;
          let checks = 0;
          const onVerify = (tree: PredictionTree) => {
            checks++;
            const live = new Set(tree.liveIds());
            for (const shard of [...r.stages, r.draft] as ToyShard[]) {
              for (const id of shard.rows('pd').tree) expect(live.has(id)).toBe(true);
            }
            for (const w of pipeline.workers) {
              for (const id of w.treeRows('pd')) expect(live.has(id)).toBe(true);
            }
            for (const n of tree.liveNodes())
              expect(tree.isAncestorOrSelf(tree.root.id, n.id)).toBe(true);
          };
          const res = await generatePipeDec(
            pipeline,
            pipeline.meterDraft(r.draft),
            { ...request, requestId: 'pd' },
            // ahead > 0: the draft works ahead on a tree `ahead` times wider than the stages'.
            ahead > 0
              ? { width, branching, onVerify, layersPerStep: k, draftWidth: ahead * width }
              : { width, branching, onVerify, layersPerStep: k, refillLayers: refill },
          );
          expect(res.tokens).toEqual(ar.tokens);
          expect(checks).toBe(res.stats.committedTokens);
          expect(res.stats.hits + res.stats.misses).toBe(res.stats.verifications);
          assertReleased(r);
        },
      ),
      { numRuns: 40 },
    );
  });

  it('timesteps: PP takes S per token, a perfect draft gives PipeDec 1, STPP S/(D+1)', async () => {
    const stages = 4;
    const r = rig(stages, 0);
    const req = { requestId: 't', prompt: [5, 6, 7], maxTokens: 13, prefillChunk: 4 };
    const pp = await runMethod(r, { method: 'pp' }, req);
    const pd = await runMethod(r, { method: 'pipedec', width: 2 }, req);
    const stpp = await runMethod(r, { method: 'stpp', depth: 3, branching: 1, budget: 3 }, req);
    // Beyond the paper: two layers per packet, a perfect draft confirms two tokens a timestep.
    const two = await runMethod(r, { method: 'pipedec', width: 2, layersPerStep: 2 }, req);
    expect(two.stats.timestepsPerToken).toBeLessThanOrEqual(0.6);
    expect(two.tokens).toEqual(pp.tokens);
    // Drafting ahead, the same two tokens a timestep, and the stages never wait for the draft.
    const sim = makePipeline(r.stages, 'sim') as SimulatedPipeline;
    const ahead = await generatePipeDec(sim, sim.meterDraft(r.draft), req, {
      width: 2,
      layersPerStep: 2,
      draftWidth: 4,
    });
    expect(ahead.tokens).toEqual(pp.tokens);
    expect(ahead.stats.timestepsPerToken).toBeLessThanOrEqual(0.6);
    const decodeLoads = sim.loads.slice(ahead.stats.prefillTimesteps);
    expect(decodeLoads.reduce((n, l) => n + l.serialDraftCalls, 0)).toBe(0);
    expect(decodeLoads.reduce((n, l) => n + l.overlapDraftCalls, 0)).toBeGreaterThan(0);
    expect(pp.stats.timestepsPerToken).toBe(stages);
    expect(pd.stats.timestepsPerToken).toBe(1);
    expect(pd.stats.hitRate).toBe(1);
    expect(pd.stats.misses).toBe(0);
    expect(stpp.stats.timestepsPerToken).toBe(stages / 4);
    expect(pd.tokens).toEqual(pp.tokens);
    // Each miss refills the pipeline: S timesteps for that token.
    const noisy = await runMethod(rig(stages, 0.5), { method: 'pipedec', width: 1 }, req);
    const s = noisy.stats;
    expect(s.misses).toBeGreaterThan(0);
    expect(s.timesteps - s.prefillTimesteps).toBe(s.hits + s.misses * stages);
    expect(s.refillsPer100Tokens).toBeCloseTo((100 * s.refills) / s.committedTokens);
    expect(s.stageBusyMs).toHaveLength(stages);
    expect(s.stagePositions.every((p) => p > 0)).toBe(true);
    expect(s.simulatedMs).toBeGreaterThan(0);
  });

  it("draft agreement: the share of committed tokens that were the draft's first proposal, for any tree", async () => {
    const req = { requestId: 'a', prompt: [5, 6, 7], maxTokens: 24, prefillChunk: 4 };
    const perfect = rig(4, 0);
    expect(draftAgreement((await runMethod(perfect, { method: 'pp' }, req)).stats)).toBeUndefined();
    for (const m of [
      { method: 'pipedec', width: 2 },
      { method: 'stpp', depth: 3, branching: 2, budget: 6 },
    ] as const) {
      expect(draftAgreement((await runMethod(perfect, m, req)).stats)).toBe(1);
    }
    // A draft wrong half the time: every shape sees about the same agreement, well inside (0, 1).
    const noisy = rig(4, 0.5);
    const seen = [];
    for (const m of [
      { method: 'pipedec', width: 1 },
      { method: 'pipedec', width: 4 },
      { method: 'stpp', depth: 3, branching: 1, budget: 3 },
      { method: 'stpp', depth: 4, branching: 4, budget: 16 },
    ] as const) {
      const s = (await runMethod(noisy, m, req)).stats;
      expect(s.firstProposalChecks).toBeGreaterThan(10);
      seen.push(draftAgreement(s)!);
    }
    expect(Math.min(...seen)).toBeGreaterThan(0.2);
    expect(Math.max(...seen)).toBeLessThan(0.8);
    expect(Math.max(...seen) - Math.min(...seen)).toBeLessThan(0.25);
  });

  it('emits one event per output token with its timestep and text', async () => {
    const events: TokenEvent[] = [];
    const decode = (ids: readonly number[]) => ids.map((i) => `<${i}>`).join('');
    const res = await runMethod(
      rig(3, 0.2),
      { method: 'pipedec', width: 4 },
      {
        requestId: 'ev',
        prompt: [1, 2, 3, 4],
        maxTokens: 9,
        text: { push: (id) => decode([id]), flush: () => '' },
        onEvent: (e) => events.push(e),
      },
    );
    expect(events.map((e) => e.token)).toEqual(res.tokens);
    expect(events.map((e) => e.index)).toEqual(res.tokens.map((_, i) => i));
    expect(events.map((e) => e.text).join('')).toBe(decode(res.tokens));
    for (let i = 1; i < events.length; i++) {
      expect(events[i].timestep).toBeGreaterThanOrEqual(events[i - 1].timestep);
    }
    expect(res.text).toBe(decode(res.tokens));
  });

  it.each(['sim', 'async'] as const)(
    'cancellation at any moment frees every stage and the draft (%s)',
    async (kind) => {
      for (const spec of ALL.slice(1)) {
        for (let at = 0; at < 8; at++) {
          const r = rig(3, 0.3);
          const ac = new AbortController();
          let n = 0;
          const request: GenerateRequest = {
            requestId: `c${at}`,
            prompt: [3, 1, 4, 1, 5, 9, 2, 6],
            maxTokens: 40,
            prefillChunk: 3,
            signal: ac.signal,
            onEvent: () => {
              if (++n === at) ac.abort();
            },
          };
          if (at === 0) ac.abort();
          const res = await runMethod(r, spec, request, kind);
          expect(res.finishReason).toBe('cancelled');
          expect(res.tokens.length).toBe(at);
          assertReleased(r);
        }
      }
    },
  );

  it("PipeDec's width follows widthNow layer by layer without changing the output", async () => {
    const sampled: SamplingParams = { temperature: 0.9, topP: 1, seed: 7, acceptance: 'exact' };
    for (const sampling of [GREEDY, sampled]) {
      for (const [k, prompt] of prompts(4, TARGET.vocab, 11).entries()) {
        const request: GenerateRequest = { requestId: `w${k}`, prompt, maxTokens: 24, sampling };
        const ar = await runMethod(rig(3, 0.3), { method: 'ar' }, request);
        // Narrowed to one node a layer: every decode packet into stage 0 holds one row.
        const narrow = rig(3, 0.3);
        const rows = stage0Rows(narrow);
        const one = await runMethod(
          narrow,
          { method: 'pipedec', width: 4, widthNow: () => 1 },
          request,
        );
        expect(one.tokens).toEqual(ar.tokens);
        const prefillPackets = Math.ceil(prompt.length / 32);
        expect(Math.max(...rows.slice(prefillPackets))).toBe(1);
        // Any schedule (load coming and going, values out of range clamped): AR's tokens.
        let t = 0;
        const schedule = [4, 1, 2, 0, 7, 3, 1, 4];
        const varied = await runMethod(
          rig(3, 0.3),
          { method: 'pipedec', width: 4, widthNow: () => schedule[t++ % schedule.length] },
          request,
        );
        expect(varied.tokens).toEqual(ar.tokens);
        expect(t).toBeGreaterThan(0);
      }
    }
  });

  it('PipeDec at widthNow 0 sends each token alone, as PP does, and widens again after', async () => {
    for (const [k, prompt] of prompts(4, TARGET.vocab, 13).entries()) {
      const request: GenerateRequest = { requestId: `z${k}`, prompt, maxTokens: 24 };
      const ar = await runMethod(rig(3, 0.3), { method: 'ar' }, request);
      const ppRig = rig(3, 0.3);
      const ppRows = stage0Rows(ppRig);
      await runMethod(ppRig, { method: 'pp' }, request);
      // Past the cut for the whole request: PP's packets, row for row.
      const zeroRig = rig(3, 0.3);
      const zeroRows = stage0Rows(zeroRig);
      const zeroDraft = callRows(zeroRig.draft as ToyShard);
      const zero = await runMethod(
        zeroRig,
        { method: 'pipedec', width: 4, widthNow: () => 0 },
        request,
      );
      expect(zero.tokens).toEqual(ar.tokens);
      expect(zeroRows).toEqual(ppRows);
      // ... and the draft computes nothing, not even the prompt: nothing would use it.
      expect(zeroDraft).toEqual([]);
      assertReleased(zeroRig);
      // The load falls after 10 ticks: the tree grows again, the output stays AR's.
      let ticks = 0;
      const laterRig = rig(3, 0.3);
      const laterRows = stage0Rows(laterRig);
      const later = await runMethod(
        laterRig,
        { method: 'pipedec', width: 4, widthNow: () => (++ticks <= 10 ? 0 : 4) },
        request,
      );
      expect(later.tokens).toEqual(ar.tokens);
      expect(Math.max(...laterRows.slice(Math.ceil(prompt.length / 32)))).toBeGreaterThan(1);
      assertReleased(laterRig);
    }
  });

  it('a draft that skipped the tokens sent at width 0 catches up on them in one call', async () => {
    // The draft is the target itself (no disagreement): once caught up it proposes the
    // target's own tokens, so every verification after the tree widens hits. A draft that
    // caught up at the wrong positions or parents would miss.
    for (const [k, prompt] of prompts(4, TARGET.vocab, 17).entries()) {
      let emitted = 0;
      const request: GenerateRequest = {
        requestId: `c${k}`,
        prompt,
        maxTokens: 30,
        onEvent: () => void emitted++,
      };
      const ar = await runMethod(rig(3, 0), { method: 'ar' }, request);
      const r = rig(3, 0);
      const draftRows = callRows(r.draft as ToyShard);
      let ticks = 0;
      let atWiden = -1; // tokens committed while the tree was 0 wide
      emitted = 0;
      const res = await runMethod(
        r,
        {
          method: 'pipedec',
          width: 2,
          widthNow: () => {
            if (++ticks <= 12) return 0;
            if (atWiden < 0) atWiden = emitted;
            return 2;
          },
        },
        request,
      );
      expect(res.tokens).toEqual(ar.tokens);
      expect(atWiden).toBeGreaterThan(1);
      // The request started 0 wide, so the draft left the prompt too: its first call holds
      // the prompt and the tokens committed at width 0 (one chunk: both are short here) and
      // the root after them; every later call is one tree layer, at most 2 rows.
      expect(draftRows[0]).toBeGreaterThanOrEqual(prompt.length - 1 + atWiden);
      expect(Math.max(...draftRows.slice(1))).toBeLessThanOrEqual(2);
      // Each token sent alone is a miss; after the catch-up the draft (= target) hits.
      expect(res.stats.misses).toBeLessThanOrEqual(atWiden + 1);
      expect(res.stats.hits).toBeGreaterThanOrEqual(30 - atWiden - 2 - 3);
      assertReleased(r);
    }
  });

  it('a long prompt skipped under load is caught up in calls of at most CATCH_UP_CHUNK rows', async () => {
    const long: ToyConfig = { ...TARGET, maxPositions: 400 };
    const prompt = prompts(1, long.vocab, 23, 230, 230)[0];
    const request: GenerateRequest = { requestId: 'long', prompt, maxTokens: 40 };
    const ar = await runMethod(rig(3, 0, long), { method: 'ar' }, request);
    const r = rig(3, 0, long);
    const draftRows = callRows(r.draft as ToyShard);
    let ticks = 0;
    const res = await runMethod(
      r,
      { method: 'pipedec', width: 2, widthNow: () => (++ticks <= 16 ? 0 : 2) },
      request,
    );
    expect(res.tokens).toEqual(ar.tokens);
    // The catch-up: full chunks, then the rest with the root in one call; then tree layers.
    const full = Math.floor((prompt.length - 1) / CATCH_UP_CHUNK);
    expect(full).toBeGreaterThanOrEqual(3);
    expect(draftRows.slice(0, full)).toEqual(Array(full).fill(CATCH_UP_CHUNK));
    expect(draftRows[full]).toBeLessThanOrEqual(CATCH_UP_CHUNK + 1);
    expect(Math.max(...draftRows.slice(full + 1))).toBeLessThanOrEqual(2);
    // Every skipped row was computed once: the prompt, and each token committed at width 0.
    const caughtUp = draftRows.slice(0, full + 1).reduce((a, b) => a + b, 0);
    expect(caughtUp).toBeGreaterThan(prompt.length - 1);
    // The draft is the target: after the catch-up every verification hits.
    expect(res.stats.hits).toBeGreaterThan(15);
    assertReleased(r);
  });

  it('distribution acceptance keeps its width whatever widthNow says', async () => {
    const sampling: SamplingParams = {
      temperature: 1,
      topP: 1,
      seed: 5,
      acceptance: 'distribution',
    };
    const request: GenerateRequest = {
      requestId: 'd',
      prompt: [3, 1, 4, 1, 5],
      maxTokens: 20,
      sampling,
    };
    const fixed = await runMethod(rig(3, 0.3), { method: 'pipedec', width: 4 }, request);
    let asked = 0;
    const told = await runMethod(
      rig(3, 0.3),
      { method: 'pipedec', width: 4, widthNow: () => (asked++, 1) },
      request,
    );
    expect(told.tokens).toEqual(fixed.tokens);
    expect(asked).toBe(0);
  });

  it('a request cancelled before its first token reports no negative rate', async () => {
    // Cancelled after prefill but before a verification committed a token: the job's
    // statistics must still validate (tokens per timestep was -1/steps here).
    let zeroTokenRuns = 0;
    for (const spec of ALL.slice(1)) {
      for (let calls = 1; calls <= 6; calls++) {
        const r = rig(3, 0.3);
        const ac = new AbortController();
        const last = r.stages[r.stages.length - 1] as ToyShard;
        const forward = last.forward.bind(last);
        let n = 0;
        last.forward = (seq, batch) => {
          if (++n === calls) ac.abort();
          return forward(seq, batch);
        };
        const res = await runMethod(
          r,
          spec,
          {
            requestId: `z${calls}`,
            prompt: [3, 1, 4, 1, 5],
            maxTokens: 40,
            prefillChunk: 2,
            signal: ac.signal,
          },
          'async',
        );
        if (res.tokens.length === 0 && res.stats.timesteps > res.stats.prefillTimesteps)
          zeroTokenRuns++;
        for (const [k, v] of Object.entries(res.stats)) {
          if (typeof v === 'number')
            expect({ [k]: v >= 0 && Number.isFinite(v) }).toEqual({ [k]: true });
        }
      }
    }
    expect(zeroTokenRuns).toBeGreaterThan(0);
  });

  it('cancellation mid-computation (timer) frees everything on async stages', async () => {
    for (const spec of ALL.slice(1)) {
      for (const delay of [0, 1, 3, 8]) {
        const r = rig(4, 0.3);
        const ac = new AbortController();
        setTimeout(() => ac.abort(), delay);
        const res = await runMethod(
          r,
          spec,
          { requestId: `t${delay}`, prompt: [1, 2, 3, 4, 5], maxTokens: 50, signal: ac.signal },
          'async',
        );
        expect(['cancelled', 'max_tokens']).toContain(res.finishReason);
        assertReleased(r);
      }
    }
  });

  it('async stages of uneven speed: stage 0 keeps at most S + 1 packets in flight, and waiting on a slow stage is not a stall', async () => {
    // The last stage is much slower than stage 0. Before the in-flight window, stage 0 ran
    // ahead and the tree grew to the last useful position; the stale packets dropped after a
    // miss then looked like idle ticks and the run failed with PIPELINE_STALLED.
    class SlowShard extends ToyShard {
      override async forward(seq: string, batch: TreeBatch): Promise<ShardOutput> {
        await new Promise((resolve) => setTimeout(resolve, 2));
        return super.forward(seq, batch);
      }
    }
    for (const stages of [2, 3]) {
      const r = rig(stages, 0.3);
      const last = r.stages[stages - 1] as ToyShard;
      r.stages[stages - 1] = new SlowShard(last.config, last.layerStart, last.layerEnd);
      const pipeline = makePipeline(r.stages, 'async');
      let most = 0;
      const open = pipeline.open.bind(pipeline);
      pipeline.open = (id: string) => {
        const session = open(id);
        const send = session.send.bind(session);
        session.send = (packet) => {
          send(packet);
          most = Math.max(most, session.inFlight);
        };
        return session;
      };
      for (const width of [1, 2]) {
        const request = {
          requestId: `uneven-${stages}-${width}`,
          prompt: [4, 2, 9],
          maxTokens: 40,
        };
        const ar = await runMethod(r, { method: 'ar' }, request);
        const res = await generatePipeDec(pipeline, r.draft, request, { width });
        expect(res.tokens).toEqual(ar.tokens);
        expect(res.stats.misses).toBeGreaterThan(0);
      }
      expect(most).toBeLessThanOrEqual(inFlightWindow(stages));
      expect(most).toBe(stages + 1);
      assertReleased(r);
    }
  });

  it('stop strings and end-of-sequence stop every method at the same token', async () => {
    const r = rig(4, 0.3);
    const decode = (ids: readonly number[]) => ids.map((i) => String.fromCharCode(65 + i)).join('');
    const base = { prompt: [9, 8, 7], maxTokens: 12 };
    const ar = await runMethod(r, { method: 'ar' }, { ...base, requestId: 'ref' });
    const stop = decode(ar.tokens.slice(4, 6));
    const eos = ar.tokens[6];
    for (const spec of ALL) {
      const text = { push: (id: number) => decode([id]), flush: () => '' };
      const s = await runMethod(r, spec, { ...base, requestId: 's', text, stop: [stop] });
      expect(s.finishReason).toBe('stop_string');
      expect(s.text).toBe(decode(ar.tokens).slice(0, decode(ar.tokens).indexOf(stop)));
      const e = await runMethod(r, spec, { ...base, requestId: 'e', eosTokenIds: [eos] });
      expect(e.finishReason).toBe('eos');
      expect(e.tokens).toEqual(ar.tokens.slice(0, ar.tokens.indexOf(eos)));
      assertReleased(r);
    }
  });

  it('a prompt that fills the context window', async () => {
    const small: ToyConfig = { ...TARGET, maxPositions: 24 };
    const r = rig(3, 0.3, small);
    const long = prompts(1, small.vocab, 5, 22, 22)[0];
    const ref = await runMethod(
      r,
      { method: 'ar' },
      { requestId: 'a', prompt: long, maxTokens: 10 },
    );
    expect(ref.finishReason).toBe('context_full');
    expect(ref.tokens).toHaveLength(2);
    for (const spec of ALL) {
      const res = await runMethod(r, spec, { requestId: 'w', prompt: long, maxTokens: 10 });
      expect(res.tokens).toEqual(ref.tokens);
      expect(res.finishReason).toBe('context_full');
      const full = await runMethod(r, spec, {
        requestId: 'f',
        prompt: [...long, 1, 2],
        maxTokens: 3,
      });
      expect(full.tokens).toEqual([]);
      expect(full.finishReason).toBe('context_full');
      await expect(
        runMethod(r, spec, { requestId: 'x', prompt: [...long, 1, 2, 3], maxTokens: 3 }),
      ).rejects.toThrow(EngineError);
      assertReleased(r);
    }
  });

  it('refuses a draft with another vocabulary, naming both values', async () => {
    const r = rig(2, 0);
    r.draft = new ToyShard({ ...TARGET, vocab: 50 });
    await expect(
      runMethod(r, { method: 'pipedec', width: 2 }, { requestId: 'v', prompt: [1], maxTokens: 2 }),
    ).rejects.toThrow('vocabSize target 61 draft 50');
  });

  it("the draft's score temperature changes which nodes are speculated, not the output", async () => {
    const r = rig(8, 0.25);
    let drafted = [0, 0];
    for (const [i, prompt] of prompts(6, TARGET.vocab, 42).entries()) {
      const runs = await Promise.all(
        [1, 0.25].map((scoreTemperature) =>
          runMethod(
            r,
            { method: 'pipedec', width: 4, scoreTemperature },
            { requestId: `t${scoreTemperature}-${i}`, prompt, maxTokens: 12, sampling: GREEDY },
          ),
        ),
      );
      expect(runs[1].tokens).toEqual(runs[0].tokens);
      drafted = drafted.map((d, k) => d + runs[k].stats.draftedNodes);
    }
    expect(drafted[1]).not.toBe(drafted[0]);
    await expect(
      runMethod(
        r,
        { method: 'pipedec', width: 2, scoreTemperature: 0 },
        { requestId: 'bad-t', prompt: [1], maxTokens: 2 },
      ),
    ).rejects.toThrow('score temperature must be > 0');
  });
});

test('the unit cost model charges 1 ms a stage, which the timestep tests above read it as', () => {
  expect(UNIT_COST.stageFixedMs).toBe(1);
});
