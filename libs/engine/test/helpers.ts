// Shared test factories: pipelines over toy or real shards, and one call that runs a method.

import {
  type CostModel,
  generateAR,
  generatePipeDec,
  generatePP,
  generateSTPP,
  type GenerateRequest,
  type GenerateResult,
  InProcessPipeline,
  type PipeDecOptions,
  type Pipeline,
  SimulatedPipeline,
  type StageShard,
  StageWorker,
  type StppOptions,
} from '../src/index.js';

export const UNIT_COST: CostModel = {
  name: 'unit',
  stageFixedMs: 1,
  stagePerPositionMs: 0,
  hopMs: 0,
  draftFixedMs: 0.1,
  draftPerPositionMs: 0,
};

export type MethodSpec =
  | { method: 'ar' }
  | { method: 'pp' }
  | ({ method: 'stpp' } & StppOptions)
  | ({ method: 'pipedec' } & PipeDecOptions);

export interface Rig {
  target: StageShard; // whole model, for AR
  stages: StageShard[];
  draft: StageShard;
}

export function makePipeline(
  stages: StageShard[],
  kind: 'sim' | 'async',
  cost = UNIT_COST,
): Pipeline & { workers: StageWorker[] } {
  const workers = stages.map((s, i) => new StageWorker(s, i));
  return kind === 'sim' ? new SimulatedPipeline(workers, cost) : new InProcessPipeline(workers);
}

export async function runMethod(
  rig: Rig,
  spec: MethodSpec,
  request: GenerateRequest,
  kind: 'sim' | 'async' = 'sim',
): Promise<GenerateResult> {
  if (spec.method === 'ar') return generateAR(rig.target, request);
  const pipeline = makePipeline(rig.stages, kind);
  const draft = pipeline instanceof SimulatedPipeline ? pipeline.meterDraft(rig.draft) : rig.draft;
  switch (spec.method) {
    case 'pp':
      return generatePP(pipeline, request);
    case 'stpp':
      return generateSTPP(pipeline, draft, request, spec);
    case 'pipedec':
      return generatePipeDec(pipeline, draft, request, spec);
  }
}

/** Deterministic pseudo-random prompts. */
export function prompts(count: number, vocab: number, seed: number, min = 3, max = 20): number[][] {
  let s = seed >>> 0;
  const rand = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 0x1_0000_0000;
  };
  return Array.from({ length: count }, () => {
    const len = min + Math.floor(rand() * (max - min + 1));
    return Array.from({ length: len }, () => 1 + Math.floor(rand() * (vocab - 1)));
  });
}
