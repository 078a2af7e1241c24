// GET /admin/pipelines: the live state of every pipeline, for the dashboard.
import { z } from 'zod';

export const stageViewSchema = z.object({
  stageIndex: z.number().int().min(0),
  stageCount: z.number().int().min(1),
  layerStart: z.number().int().min(0),
  layerEnd: z.number().int().min(1), // exclusive
  numLayers: z.number().int().min(1),
  address: z.string(),
  /** missing: not registered (or expired); stale: heartbeat older than STALE_AFTER_MS. */
  health: z.enum(['healthy', 'not_ready', 'stale', 'missing']),
  /** Share of recent time spent computing, 0..1 (null: the registry does not report it). */
  utilisation: z.number().min(0).max(1).nullable(),
  heartbeatAt: z.number().nullable(), // epoch ms
});
export type StageView = z.infer<typeof stageViewSchema>;

export const pipelineViewSchema = z.object({
  pipelineId: z.string(),
  whole: z.boolean(),
  problems: z.array(z.string()),
  stages: z.array(stageViewSchema),
  /** Draft acceptance over this pipeline's recent requests (null: none yet). */
  hitRate: z.number().min(0).max(1).nullable(),
  /** Committed tokens per pipeline timestep over its recent requests (null: none yet). */
  tokensPerTimestep: z.number().min(0).nullable(),
  activeRequests: z.number().int().min(0),
});
export type PipelineView = z.infer<typeof pipelineViewSchema>;

export const pipelinesSnapshotSchema = z.object({
  at: z.number(), // epoch ms
  /** Jobs waiting: in the fair scheduler and in BullMQ. */
  queueDepth: z.number().int().min(0).nullable(),
  pipelines: z.array(pipelineViewSchema),
});
export type PipelinesSnapshot = z.infer<typeof pipelinesSnapshotSchema>;

export const STALE_AFTER_MS = 5_000;
