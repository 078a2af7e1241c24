// The pipelines' state for the live view: the API's admin endpoint (stages with layer ranges
// and health, queue depth, running requests, hit rate and tokens per timestep).
import { apiCall } from './api-client';
import { pipelinesSnapshotSchema, type PipelinesSnapshot } from './schemas';

export async function loadPipelines(token?: string): Promise<PipelinesSnapshot> {
  return apiCall('GET', '/admin/pipelines', pipelinesSnapshotSchema, { token });
}
