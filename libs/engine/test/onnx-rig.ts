// Shared rig of the lossless parity tests on real ONNX shards of tiny random Llama
// checkpoints (libs/model): AR, PP, STPP and PipeDec produce identical tokens for S in
// {1, 2, 3, 4, 8, 16}, W in {1, 4, 16}, greedy and seeded sampling, a dozen prompts, and the
// committed tokens' logits stay within float rounding of AR's. Two drafts: the target itself (every guess right: deep trees, hits)
// and an unrelated random model (nearly every guess wrong: misses and refills).

import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { type LayerShard, OnnxShard, splitLayers, writeRandomCheckpoint } from '@pipedec/model';
import type { GenerateResult, PredictionTree, SamplingParams } from '../src/index.js';
import { type MethodSpec, prompts, type Rig, runMethod } from './helpers.js';

const LAYERS = 16;
const TINY = {
  layers: LAYERS,
  hidden: 32,
  heads: 4,
  kvHeads: 2,
  intermediate: 64,
  vocab: 300,
  dtype: 'f32' as const,
  tied: false,
  maxPositions: 256,
};
const STAGES = [1, 2, 3, 4, 8, 16];
export const PROMPTS = prompts(12, 256, 99, 3, 24);
const MAX_TOKENS = 8;
const LOGIT_TOL = 1e-3;

let tmp = '';
const pipelines = new Map<number, LayerShard[]>();
let selfDraft: LayerShard;
let otherDraft: LayerShard;
const opened: LayerShard[] = [];

export async function openRig(): Promise<void> {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'pipedec-engine-'));
  const target = path.join(tmp, 'target');
  const draft = path.join(tmp, 'draft');
  await writeRandomCheckpoint(target, { ...TINY, seed: 17 });
  await writeRandomCheckpoint(draft, { ...TINY, layers: 2, seed: 18 });
  const cacheDir = path.join(tmp, 'graphs');
  const open = async (
    dir: string,
    r?: { layerStart: number; layerEnd: number },
    proposals = false,
  ) => {
    const s = await OnnxShard.open({
      checkpointDir: dir,
      ...r,
      cacheDir,
      intraOpThreads: 1,
      proposals,
    });
    opened.push(s);
    return s;
  };
  for (const s of STAGES) {
    const shards: LayerShard[] = [];
    for (const r of splitLayers(LAYERS, s)) shards.push(await open(target, r));
    pipelines.set(s, shards);
  }
  // The drafts rank their proposals in the graph (TopK, ReduceLogSumExp); the toy-model suites
  // cover the JavaScript path. selfDraft also serves AR as the whole target (full logits).
  selfDraft = await open(target, undefined, true);
  otherDraft = await open(draft, undefined, true);
}

export async function closeRig(): Promise<void> {
  for (const s of opened) await s.close();
  await rm(tmp, { recursive: true, force: true });
}

function expectSame(res: GenerateResult, ref: GenerateResult, label: string): void {
  expect({ label, tokens: res.tokens }).toEqual({ label, tokens: ref.tokens });
  const drift = Math.max(...res.tokenLogits.map((l, i) => Math.abs(l - ref.tokenLogits[i])));
  if (!(drift <= LOGIT_TOL)) throw new Error(`${label}: logit drift ${drift} > ${LOGIT_TOL}`);
}

function assertFree(shards: LayerShard[]): void {
  for (const s of shards) expect(s.memory().sequences).toBe(0);
}

export function losslessSuite(name: string, sampling: SamplingParams): void {
  describe(`tiny random Llama on ONNX Runtime, ${name}`, () => {
    const reference: GenerateResult[] = [];

    beforeAll(async () => {
      const whole = pipelines.get(1)![0];
      for (const [i, prompt] of PROMPTS.entries()) {
        const rig: Rig = { target: whole, stages: [whole], draft: selfDraft };
        const res = await runMethod(
          rig,
          { method: 'ar' },
          {
            requestId: `ar-${name}-${i}`,
            prompt,
            maxTokens: MAX_TOKENS,
            sampling,
            eosTokenIds: [],
            prefillChunk: 8,
          },
        );
        expect(res.tokens).toHaveLength(MAX_TOKENS);
        reference.push(res);
      }
      // Seeded sampling must actually sample: not every token is the argmax.
      if (sampling.temperature > 0) {
        const greedy = await runMethod(
          { target: whole, stages: [whole], draft: selfDraft },
          { method: 'ar' },
          { requestId: 'g', prompt: PROMPTS[0], maxTokens: MAX_TOKENS, eosTokenIds: [] },
        );
        expect(greedy.tokens).not.toEqual(reference[0].tokens);
      }
    });

    it.each(STAGES)('S=%i: PP, STPP and PipeDec (W = 1, 4, 16) equal AR', async (stages) => {
      const shards = pipelines.get(stages)!;
      const specs: [MethodSpec, LayerShard][] = [
        [{ method: 'pp' }, selfDraft],
        [{ method: 'stpp', depth: 4, branching: 2, budget: 10 }, selfDraft],
        [{ method: 'pipedec', width: 1 }, otherDraft],
        [{ method: 'pipedec', width: 4 }, otherDraft],
        [{ method: 'pipedec', width: 16, branching: 4 }, selfDraft],
        // Beyond the paper: drafting ahead on a wider tree, two layers per packet.
        [{ method: 'pipedec', width: 4, draftWidth: 8, layersPerStep: 2 }, otherDraft],
      ];
      for (const [spec, draft] of specs) {
        for (const [i, prompt] of PROMPTS.entries()) {
          const rig: Rig = { target: shards[0], stages: shards, draft };
          const requestId = `${name}-${stages}-${i}`;
          // After each verification every cache holds exactly the committed prefix (up to the
          // new root) plus at most the live tree: pruned rows are gone from real KV caches.
          const onVerify = (tree: PredictionTree) => {
            for (const shard of [...shards, draft] as OnnxShard[]) {
              const { rows, committed } = shard.rowsOf(requestId);
              expect(committed).toBe(tree.root.position);
              expect(rows - committed).toBeLessThanOrEqual(tree.size);
            }
          };
          const res = await runMethod(
            rig,
            spec.method === 'pipedec' ? { ...spec, onVerify } : spec,
            {
              requestId,
              prompt,
              maxTokens: MAX_TOKENS,
              sampling,
              eosTokenIds: [],
              prefillChunk: 8,
            },
          );
          expectSame(
            res,
            reference[i],
            `${JSON.stringify(spec)} draft=${draft === selfDraft ? 'self' : 'other'} prompt ${i}`,
          );
          // With one stage a root's verdict returns before any child is injected: no tree, so
          // every verification is empty. From two stages on, a perfect draft never misses.
          if (
            spec.method === 'pipedec' &&
            draft === selfDraft &&
            !sampling.temperature &&
            stages > 1
          ) {
            expect(res.stats.misses).toBe(0);
          }
        }
        assertFree([...shards, draft]);
      }
    });
  });
}
