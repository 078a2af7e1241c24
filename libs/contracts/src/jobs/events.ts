// Records of the per-request event stream `<prefix>req:<id>:events` (a Redis stream). The head
// appends them with XADD, one record per entry in the field `e` as JSON; the API reads them
// with XREAD/XRANGE and relays them (SSE, socket.io). A stream id is the resume point.
//
// Order: started, then token/stats in commit order, then exactly one of done | error as the
// last record of an attempt. A job retried by the queue appends a new `started` with a higher
// attempt and emits tokens from index 0 again; with the job's seed they are identical, so a
// reader skips indices it already delivered.
import { z } from 'zod';
import { decodingChoiceSchema } from './generation-job.js';

export const EVENT_FIELD = 'e';

export const speculativeStatsSchema = z
  .object({
    /** Pipeline timesteps used so far. */
    timesteps: z.number().int().min(0),
    draftedTokens: z.number().int().min(0),
    acceptedTokens: z.number().int().min(0),
    /** acceptedTokens / draftedTokens, 0 when nothing was drafted. */
    hitRate: z.number().min(0).max(1),
    /** Sum over stages of busy compute time, seconds. */
    stageSeconds: z.number().min(0),
  })
  .strict();
export type SpeculativeStats = z.infer<typeof speculativeStatsSchema>;

export const usageSchema = z
  .object({
    promptTokens: z.number().int().min(0),
    completionTokens: z.number().int().min(0),
  })
  .strict();
export type Usage = z.infer<typeof usageSchema>;

export const finishReasonSchema = z.enum(['stop', 'length', 'cancelled']);
export type FinishReason = z.infer<typeof finishReasonSchema>;

export const startedEventSchema = z
  .object({
    type: z.literal('started'),
    attempt: z.number().int().min(1),
    pipelineId: z.string(),
    /** The method and parameters this attempt decodes with (auto's choice included). */
    decoding: decodingChoiceSchema.optional(),
    at: z.number(), // epoch ms
  })
  .strict();

export const tokenEventSchema = z
  .object({
    type: z.literal('token'),
    /** Position in the output, from 0. */
    index: z.number().int().min(0),
    tokenId: z.number().int().min(0),
    /** Decoded text this token adds to the output (may be "" for partial UTF-8). */
    text: z.string(),
    /** Pipeline timestep at which the token was committed. */
    timestep: z.number().int().min(0),
    at: z.number(), // epoch ms
  })
  .strict();

export const statsEventSchema = z
  .object({ type: z.literal('stats'), stats: speculativeStatsSchema, at: z.number() })
  .strict();

export const doneEventSchema = z
  .object({
    type: z.literal('done'),
    finishReason: finishReasonSchema,
    usage: usageSchema,
    stats: speculativeStatsSchema,
    at: z.number(),
  })
  .strict();

export const errorEventSchema = z
  .object({
    type: z.literal('error'),
    code: z.string(),
    message: z.string(),
    /** True when the queue will retry the job (another started follows). */
    retryable: z.boolean(),
    at: z.number(),
  })
  .strict();

export const requestEventSchema = z.discriminatedUnion('type', [
  startedEventSchema,
  tokenEventSchema,
  statsEventSchema,
  doneEventSchema,
  errorEventSchema,
]);
export type RequestEvent = z.infer<typeof requestEventSchema>;
export type TokenEvent = z.infer<typeof tokenEventSchema>;
export type DoneEvent = z.infer<typeof doneEventSchema>;
export type ErrorEvent = z.infer<typeof errorEventSchema>;

/** Serializes a record for XADD's field `e`. */
export function encodeEvent(event: RequestEvent): string {
  return JSON.stringify(requestEventSchema.parse(event));
}

/** Parses field `e` of a stream entry; throws (zod) on a malformed record. */
export function decodeEvent(raw: string): RequestEvent {
  return requestEventSchema.parse(JSON.parse(raw));
}

/** True for the record that ends the request for good (not a retryable error). */
export function isTerminal(event: RequestEvent): boolean {
  return event.type === 'done' || (event.type === 'error' && !event.retryable);
}
