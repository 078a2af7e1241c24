export type {
  LayerShard,
  ModelInfo,
  OpenShardOptions,
  ShardMemory,
  ShardOutput,
  TreeBatch,
} from './shard.js';
export { ModelError, type ModelErrorCode } from './errors.js';
export { splitLayers, type LayerRange } from './split.js';
export { openShard } from './open-shard.js';
