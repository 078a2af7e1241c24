// The controllers' event loop (run.ts) must let go of each event once it has handled it: a
// request lasts seconds under load, and events it kept reachable until its end outlive V8's
// young generation, so a busy head spends its time in full mark-compacts (bench:batching's
// head: 43-50 of them in a run when the loop raced every event against one abort promise).
import v8 from 'node:v8';
import vm from 'node:vm';

import {
  generatePipeDec,
  generatePP,
  type Pipeline,
  type PipelineEvent,
  type PipelineSession,
} from '../src/index.js';
import { makePipeline } from './helpers.js';
import { type ToyConfig, ToyShard, toyStages } from './toy-model.js';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

const TARGET: ToyConfig = { layers: 8, vocab: 61, maxPositions: 160, seed: 3, eosTokenIds: [] };

/** The pipeline, with a weak reference to every event its sessions hand out. */
function watched(inner: Pipeline): { pipeline: Pipeline; events: WeakRef<PipelineEvent>[] } {
  const events: WeakRef<PipelineEvent>[] = [];
  const pipeline: Pipeline = {
    info: inner.info,
    stageCount: inner.stageCount,
    open(requestId: string): PipelineSession {
      const s = inner.open(requestId);
      return Object.assign(Object.create(s) as PipelineSession, {
        next: async () => {
          const ev = await s.next();
          events.push(new WeakRef(ev));
          return ev;
        },
      });
    },
  };
  return { pipeline, events };
}

describe('the event loop', () => {
  it.each(['pp', 'pipedec'] as const)(
    '%s keeps no handled event reachable while the request runs (with an abort signal)',
    async (method) => {
      const { pipeline, events } = watched(makePipeline(toyStages(TARGET, 4), 'async'));
      const draft = new ToyShard({ ...TARGET, disagreement: 0.3, noiseSeed: 9 });
      let alive: number | null = null;
      let seen = 0;
      const request = {
        requestId: 'r',
        prompt: [1, 2, 3],
        maxTokens: 120,
        signal: new AbortController().signal,
        onEvent: (e: { index: number }) => {
          if (e.index !== 100) return;
          // Mid-request: every event handed out so far except the last few has been handled.
          seen = events.length - 8;
          gc();
          alive = events.slice(0, seen).filter((r) => r.deref() !== undefined).length;
        },
      };
      const res =
        method === 'pp'
          ? await generatePP(pipeline, request)
          : await generatePipeDec(pipeline, draft, request, { width: 2 });
      expect(res.tokens).toHaveLength(120);
      expect(seen).toBeGreaterThan(100);
      expect(alive).toBe(0);
    },
  );
});
