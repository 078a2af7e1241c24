// The pipelines' state for the live view. Prefers the API's admin endpoint (stages with layer
// ranges, utilisation, hit rate, queue depth); until it exists, reads the public health check,
// which knows only whether each pipeline is whole, and marks the snapshot partial.
import { apiCall } from './api-client';
import { ApiError } from './errors';
import { healthSchema, pipelinesSnapshotSchema, type PipelinesSnapshot } from './schemas';

export async function loadPipelines(token?: string): Promise<PipelinesSnapshot> {
  try {
    return await apiCall('GET', '/admin/pipelines', pipelinesSnapshotSchema, { token });
  } catch (error) {
    if (!(error instanceof ApiError) || error.code !== 'not_available') throw error;
  }
  const health = await apiCall('GET', '/health', healthSchema, { token: null });
  return {
    at: Date.now(),
    queueDepth: null,
    partial: true,
    pipelines: health.pipelines.items.map((p) => ({
      pipelineId: p.id,
      whole: p.ready,
      problems: p.problems,
      stages: [],
      hitRate: null,
      tokensPerTimestep: null,
      activeRequests: 0,
    })),
  };
}
