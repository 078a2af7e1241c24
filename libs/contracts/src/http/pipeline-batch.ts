// A pipeline's batch in the live view (GET /admin/pipelines and the ADMIN_LIVE push): the
// requests its head runs now, how they share the stages' compute calls (a call computes one
// timestep's rows of every request it takes), and the tokens per second the head streams.
// Pooled from every stage's heartbeat (the registry's `batch`), over about the last 5 s.
import { z } from 'zod';

export const pipelineBatchSchema = z.object({
  /** Requests the head runs now, as of its last heartbeat (null: no live head report). */
  inFlight: z.number().int().min(0).nullable(),
  /** Requests per stage compute call, every stage's calls together (null: no call lately). */
  requestsPerCall: z.number().min(0).nullable(),
  /** Rows (tree nodes or prompt positions) per stage compute call (null: no call lately). */
  rowsPerCall: z.number().min(0).nullable(),
  /** Tokens the head streamed per second, all requests together (null: no live head report). */
  tokensPerSecond: z.number().min(0).nullable(),
});
export type PipelineBatch = z.infer<typeof pipelineBatchSchema>;
