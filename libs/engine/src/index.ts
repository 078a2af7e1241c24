export {
  acceptDistribution,
  committedToken,
  draftProposals,
  isDistribution,
  plantResidualBiasForTests,
} from './acceptance.js';
export { generateAR } from './ar.js';
export {
  type AutoCandidate,
  type AutoChoice,
  type AutoMethod,
  decodeMsPerToken,
  defaultAutoCandidates,
  MethodChooser,
  type MethodChooserOptions,
  requestClass,
} from './auto.js';
export {
  CATCH_UP_CHUNK,
  checkCompatible,
  type DraftHost,
  DraftRunner,
  type DraftRow,
  DRAW_POOL,
  firstDrawScore,
  NUCLEUS_POOL,
  type Proposal,
  proposalRequest,
} from './draft.js';
export { EngineError, type EngineErrorCode } from './errors.js';
export type { Decision, LayerPacket, Verdict } from './messages.js';
export { AheadDrafter, type AheadOptions } from './ahead.js';
export { Speculation } from './speculation.js';
export { defaultBranching, generatePipeDec, type PipeDecOptions } from './pipedec.js';
export {
  inFlightWindow,
  InProcessPipeline,
  type Pipeline,
  type PipelineEvent,
  type PipelineSession,
  type StageUsage,
  TickLoop,
  type TickState,
} from './pipeline.js';
export { generatePP } from './pp.js';
export {
  type GenerateRequest,
  type GenerateResult,
  type MethodHandlers,
  emptyStats,
  planLength,
  RequestRun,
} from './run.js';
export {
  type Acceptance,
  argmax,
  chooseToken,
  chooseTokenFromTop,
  GREEDY,
  gumbelAt,
  gumbelTopK,
  logSoftmax,
  logSumExp,
  sampledDistribution,
  rowKeyOf,
  type RowTop,
  type SamplingParams,
  supportOf,
  topK,
  uniformAt,
} from './sampling.js';
export {
  type CostModel,
  PAPER_A100_COST,
  SimulatedPipeline,
  stageCostMs,
  type TimestepLoad,
  timestepMs,
} from './simulator.js';
export { RELEASED_MEMORY, type StageResult, type StageShard, StageWorker } from './stage.js';
export { draftAgreement, draftHits } from './stats.js';
export type { Method, RequestStats, TokenEvent } from './stats.js';
export { type FinishReason, StopRules, type TextStream } from './stop.js';
export { generateSTPP, type StppOptions } from './stpp.js';
export { type AncestorMask, type Candidate, PredictionTree, type TreeNode } from './tree.js';
export {
  DEFAULT_ROW_BUDGET,
  DEFAULT_SPECULATE_MAX_IN_FLIGHT,
  decodingUnderLoad,
  layerWidthUnderLoad,
  widthUnderLoad,
  type LoadMethod,
} from './row-budget.js';
