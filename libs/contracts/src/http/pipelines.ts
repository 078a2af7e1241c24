// GET /admin/pipelines: the live state of every pipeline, for the dashboard; the same
// snapshot is pushed every second on the socket.io namespace ADMIN_LIVE.namespace.
import { z } from 'zod';
import { HIT_RATE_DEFINITION, timeSplitSchema } from '../jobs/events.js';
import { pipelineBatchSchema } from './pipeline-batch.js';

// The sentences the dashboard shows beside these figures (its pages import from ./http).
export { HIT_RATE_DEFINITION, TIME_SPLIT_DEFINITION, type TimeSplit } from '../jobs/events.js';

export const stageViewSchema = z.object({
  stageIndex: z.number().int().min(0),
  stageCount: z.number().int().min(1),
  layerStart: z.number().int().min(0),
  layerEnd: z.number().int().min(1), // exclusive
  numLayers: z.number().int().min(1),
  address: z.string(),
  /** missing: not registered (or expired); stale: heartbeat older than STALE_AFTER_MS. */
  health: z.enum(['healthy', 'not_ready', 'stale', 'missing']),
  /**
   * Share of the last 5 s the stage spent in its model's forward calls, as of its last
   * heartbeat, 0..1 (null: the stage does not report it, or its entry is stale).
   */
  utilisation: z.number().min(0).max(1).nullable(),
  heartbeatAt: z.number().nullable(), // epoch ms
});
export type StageView = z.infer<typeof stageViewSchema>;

export const pipelineViewSchema = z.object({
  pipelineId: z.string(),
  whole: z.boolean(),
  problems: z.array(z.string()),
  stages: z.array(stageViewSchema),
  /** How many of its most recent finished requests the figures below pool. */
  recentRequests: z.number().int().min(0),
  /** Their pipeline timesteps, summed (null: none yet). */
  timesteps: z.number().int().min(0).nullable(),
  /**
   * Their accepted drafted tokens over their verified tokens: the job result's hit rate,
   * pooled (null: none yet, or only PP).
   */
  hitRate: z.number().min(0).max(1).nullable().describe(HIT_RATE_DEFINITION),
  /** Their tokens after the first per timestep after the first token's, pooled (null: none). */
  tokensPerTimestep: z.number().min(0).nullable(),
  /** Their time splits, summed (null: none yet). */
  time: timeSplitSchema.nullable(),
  activeRequests: z.number().int().min(0),
  batch: pipelineBatchSchema,
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

/** POST /admin/live/tickets: a single-use credential for one socket.io connection. */
export const liveTicketSchema = z.object({
  ticket: z.string().min(1),
  expiresAt: z.number(), // epoch ms
});
export type LiveTicket = z.infer<typeof liveTicketSchema>;

/**
 * The admins' live namespace. Connect with `auth: { ticket }` (from POST /admin/live/tickets;
 * a refused connection's connect_error carries `data.code`), emit `subscribe` {topic:
 * 'pipelines'}, then receive a PipelinesSnapshot as `pipelines` about every second, `failure`
 * {message} when a snapshot could not be read, and `expired` just before the server closes
 * the connection because the admin session ended.
 */
export const ADMIN_LIVE = {
  namespace: '/admin/live',
  subscribe: 'subscribe',
  pipelines: 'pipelines',
  failure: 'failure',
  expired: 'expired',
} as const;

export const liveSubscribeSchema = z.object({ topic: z.enum(['pipelines']) }).strict();

/** Codes in a refused connection's connect_error `data`. */
export const LIVE_REFUSALS = ['missing_ticket', 'invalid_ticket', 'session_ended'] as const;
export type LiveRefusal = (typeof LIVE_REFUSALS)[number];
