export { decodeFp16, encodeFp16, halfBitsToNumber, toHalfBits } from './fp16.js';
export { StageProtocolError, type StageProtocolErrorCode } from './errors.js';
export { decodeTensor, encodeTensor, type WireDtype, type WireTensor } from './tensor-codec.js';
export {
  decisionFromWire,
  decisionToWire,
  emptyTrace,
  packetFromWire,
  packetToWire,
  verdictFromWire,
  verdictToWire,
  type DecisionRecord,
  type PacketEnvelope,
  type PacketRecord,
  type PacketTrace,
  type SamplingParams,
  type VerdictEnvelope,
  type VerdictRecord,
  type WireDecision,
  type WireLayerPacket,
  type WireVerdict,
} from './messages.js';
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
  stageRegistrationSchema,
  type PipelineState,
  type StageRegistration,
} from './registry.js';
