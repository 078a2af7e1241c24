export type {
  SequenceBatch,
  LayerShard,
  ModelInfo,
  OpenShardOptions,
  RowDistributions,
  ShardMemory,
  ProposalRequest,
  ShardOutput,
  TopLogits,
  TreeBatch,
} from './shard.js';
export { ModelError, type ModelErrorCode } from './errors.js';
export { splitLayers, type LayerRange } from './split.js';
export { openShard, OnnxShard, type OnnxShardOptions } from './onnx-shard.js';
export { ReferenceModel, type ReferenceOptions } from './reference.js';
export { writeRandomCheckpoint, type RandomCheckpointOptions } from './random-checkpoint.js';
export {
  loadTokenizer,
  type ChatMessage,
  type LoadedTokenizer,
  type StreamDecoder,
} from './tokenizer.js';
export { Checkpoint } from './checkpoint.js';
export { parseLlamaConfig, type LlamaConfig, type Llama3RopeScaling } from './config.js';
export { SafetensorsFile, writeSafetensors, type TensorEntry } from './safetensors.js';
export { EXECUTION_PROVIDERS, resolveExecutionProvider, runtimeCpuMs } from './onnx-runtime.js';
export { kvBytesPerRow, MASK_HIDDEN, type KvGeometry } from './kv-cache.js';
export { decodeFp16, encodeFp16, halfBitsToNumber, toHalfBits } from './fp16.js';
