import { ModelError } from './errors.js';
import type { LayerShard, OpenShardOptions } from './shard.js';

/** Opens a stage over `[layerStart, layerEnd)` of the checkpoint, running on ONNX Runtime. */
export function openShard(opts: OpenShardOptions): Promise<LayerShard> {
  return Promise.reject(
    new ModelError('RUNTIME_FAILED', `openShard(${opts.checkpointDir}) is not implemented yet`),
  );
}
