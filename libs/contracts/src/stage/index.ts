export {
  STAGE_PROTO_LOADER_OPTIONS,
  STAGE_PROTO_PACKAGE,
  STAGE_PROTO_PATH,
  STAGE_SERVICE,
} from './proto-path.js';
export {
  checkPipeline,
  parseStageRegistration,
  registryChangedChannel,
  registryKey,
  registryPipelinesKey,
  stageBatchSchema,
  stageRegistrationSchema,
  type PipelineState,
  type StageBatch,
  type StageRegistration,
} from './registry.js';
export {
  kvBytesFor,
  kvNeed,
  kvRefusal,
  kvRowsCapacity,
  kvRowsFor,
  kvSlotsFor,
  kvTreeRows,
  type StageKv,
} from './kv-budget.js';
