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

/**
 * What "hit rate" means wherever it is shown (a job's result, the playground, the live view):
 * one sentence, written once here and shown beside the number.
 */
export const HIT_RATE_DEFINITION =
  'Hit rate: the share of tokens committed after the first that the draft had proposed and the pipeline had already computed (PipeDec: the target token was in the tree; STPP: on the accepted path); PP drafts nothing.';

/** What the time split's parts measure, shown beside them. */
export const TIME_SPLIT_DEFINITION =
  "Time split: draft is the draft model's own compute; of the rest of the time this request had packets in the pipeline, stage compute is the share its stages spent in forward passes and transfer the share its packets spent between them (hops, encoding, waiting at a busy stage). The parts never add up to more than the wall time.";

export const timeSplitSchema = z
  .object({
    /** The request's run at the head, first packet to last verdict, ms. */
    wallMs: z.number().min(0),
    /** The draft model's own compute for this request, ms. */
    draftMs: z.number().min(0),
    /** Share of the pipeline time spent in the stages' forward passes, ms. */
    stageComputeMs: z.number().min(0),
    /** Share of the pipeline time spent between stages (hops, codec, queues), ms. */
    transferMs: z.number().min(0),
  })
  .strict()
  .describe(TIME_SPLIT_DEFINITION);
export type TimeSplit = z.infer<typeof timeSplitSchema>;

export const speculativeStatsSchema = z
  .object({
    /** Pipeline timesteps used, prefill included. */
    timesteps: z.number().int().min(0),
    /** Committed tokens after the first per timestep after the first token's (0: one token). */
    tokensPerTimestep: z.number().min(0),
    /** Tree nodes sent into the pipeline. */
    draftedTokens: z.number().int().min(0),
    /** Tokens committed after the first that the draft had proposed (hitRate's numerator). */
    acceptedTokens: z.number().int().min(0),
    /** Tokens committed by verification, every one after the first (hitRate's denominator). */
    verifiedTokens: z.number().int().min(0),
    /** acceptedTokens / verifiedTokens; null when nothing was drafted (PP). */
    hitRate: z.number().min(0).max(1).nullable().describe(HIT_RATE_DEFINITION),
    /** Sum over stages of busy compute time, seconds (what usage reports). */
    stageSeconds: z.number().min(0),
    time: timeSplitSchema,
  })
  .strict();
export type SpeculativeStats = z.infer<typeof speculativeStatsSchema>;

/** The statistics of a request that never ran (cancelled while it waited). */
export function emptySpeculativeStats(): SpeculativeStats {
  return {
    timesteps: 0,
    tokensPerTimestep: 0,
    draftedTokens: 0,
    acceptedTokens: 0,
    verifiedTokens: 0,
    hitRate: null,
    stageSeconds: 0,
    time: { wallMs: 0, draftMs: 0, stageComputeMs: 0, transferMs: 0 },
  };
}

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

/**
 * Serializes a record for XADD's field `e`. Every record but a token is checked against its
 * schema first. A token record, one per output token on the head's thread, is written field
 * by field from the head's typed values instead (the API checks each record it reads,
 * decodeEvent): zod's parse was ~1.5% of the head's CPU under load (perf, bench:batching).
 */
export function encodeEvent(event: RequestEvent): string {
  if (event.type === 'token') {
    const { index, tokenId, text, timestep, at } = event;
    return JSON.stringify({ type: 'token', index, tokenId, text, timestep, at });
  }
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
