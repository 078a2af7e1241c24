// Runs one generation with the method the job asks for, over the head's pipeline.
import type { ConcreteMethod } from '@pipedec/contracts';
import {
  defaultBranching,
  generatePipeDec,
  generatePP,
  generateSTPP,
  type GenerateRequest,
  type GenerateResult,
  type Pipeline,
  type StageShard,
} from '@pipedec/engine';

export interface MethodOptions {
  width: number; // PipeDec tree width; STPP's per-level budget
  stppDepth: number;
  /** Temperature of the draft's scores that rank a tree's nodes (engine scoreTemperature). */
  scoreTemperature: number;
  /** PipeDec's width for the next layer, asked each tick (row-budget.ts; engine widthNow). */
  widthNow?: () => number;
  /** Most tree layers in a PipeDec refill packet (engine refillLayers; 1: the paper's). */
  refillLayers?: number;
}

export function runMethod(
  method: ConcreteMethod,
  pipeline: Pipeline,
  draft: StageShard,
  request: GenerateRequest,
  opts: MethodOptions,
): Promise<GenerateResult> {
  switch (method) {
    case 'pp':
      return generatePP(pipeline, request);
    case 'stpp':
      return generateSTPP(pipeline, draft, request, {
        depth: opts.stppDepth,
        branching: defaultBranching(opts.width),
        budget: opts.width * opts.stppDepth,
        scoreTemperature: opts.scoreTemperature,
      });
    case 'pipedec':
      return generatePipeDec(pipeline, draft, request, {
        width: opts.width,
        widthNow: opts.widthNow,
        refillLayers: opts.refillLayers,
        scoreTemperature: opts.scoreTemperature,
      });
  }
}
