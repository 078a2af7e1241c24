// The generation job: what apps/api enqueues on the BullMQ queue "generation" and what the
// head stage node of a pipeline consumes. Parsed on both sides.
import { z } from 'zod';

export const GENERATION_QUEUE = 'generation';
export const GENERATION_JOB_NAME = 'generate';
export const GENERATION_JOB_VERSION = 1;

/**
 * What a request may ask for. pipedec: speculative tree over the pipeline; stpp: single-tree
 * pipelined; pp: plain pipeline; auto (the default): the head picks one of the three, and its
 * width, from what each has measured on this pipeline (MethodChooser in libs/engine).
 */
export const decodingMethodSchema = z.enum(['auto', 'pipedec', 'stpp', 'pp']);
export type DecodingMethod = z.infer<typeof decodingMethodSchema>;
/** A method the pipeline runs: what `auto` resolves to. */
export const concreteMethodSchema = z.enum(['pipedec', 'stpp', 'pp']);
export type ConcreteMethod = z.infer<typeof concreteMethodSchema>;

/**
 * How a speculative method accepts drafted tokens at temperature > 0 (libs/engine
 * acceptance.ts). "exact": a drafted token is accepted only if it is the target's own seeded
 * draw, so every method writes the same tokens for a seed. "distribution": recursive rejection
 * sampling; the tokens are distributed exactly as the target's, and far more drafted tokens
 * are accepted. Greedy requests (temperature 0) are the same in both.
 */
export const acceptanceSchema = z.enum(['exact', 'distribution'], {
  error: 'speculative_acceptance must be "exact" or "distribution"',
});
export type SpeculativeAcceptance = z.infer<typeof acceptanceSchema>;

/** The method and parameters a request was decoded with (shown in its result and usage). */
export const decodingChoiceSchema = z
  .object({
    method: concreteMethodSchema,
    /** Tree width (PipeDec) or per-level budget (STPP); 1 for pp. */
    width: z.number().int().min(1).max(16),
    /** STPP's tree depth; 0 for the others. */
    depth: z.number().int().min(0).max(64),
    /** Why: "requested" (the request named it), "fastest", "explore" or "untried" (auto). */
    reason: z.enum(['requested', 'fastest', 'explore', 'untried']),
    /** The acceptance mode it ran with (absent in results recorded before it existed). */
    acceptance: acceptanceSchema.optional(),
    /**
     * The width chosen before the row budget narrowed it: the pipeline was busy with other
     * requests when this one started (libs/engine row-budget.ts). Absent: not narrowed.
     */
    narrowedFrom: z.number().int().min(1).max(16).optional(),
    /**
     * The speculative method chosen (named by the request or by auto) before the pipeline's
     * load turned speculation off: more requests were in flight than SPECULATE_MAX_IN_FLIGHT
     * when this one started, so it decoded as PP, with the same tokens (libs/engine
     * row-budget.ts). Absent: it ran the method chosen.
     */
    fellBackFrom: z.enum(['stpp', 'pipedec']).optional(),
    /**
     * PipeDec only: the most tree layers a refill packet carried (the pipeline's
     * PIPEDEC_REFILL_LAYERS; 1 is the paper's one layer a timestep). Absent for the other
     * methods, and in results recorded before it existed.
     */
    refillLayers: z.number().int().min(1).max(1024).optional(),
    /**
     * auto only: what it weighed, each candidate's decode ms per token as estimated on this
     * pipeline when it chose, keyed by decodingLabel (http/generation.ts: "pp", "stpp/w2", "pipedec/w4", ...;
     * libs/engine auto.ts).
     * Absent for a named method, or before any candidate was measured.
     */
    estimates: z.record(z.string().max(32), z.number().nonnegative()).optional(),
  })
  .strict();
export type DecodingChoice = z.infer<typeof decodingChoiceSchema>;

export const MAX_TREE_WIDTH = 16;
export const MAX_STOP_STRINGS = 4;

export const samplingSchema = z
  .object({
    /** 0 means greedy. */
    temperature: z.number().min(0).max(2),
    topP: z.number().gt(0).max(1),
    /** Only the k likeliest tokens can be drawn; 0 or absent: all. */
    topK: z.number().int().min(0).max(100_000).optional(),
    /** Makes sampling reproducible (and a retried attempt regenerate the same tokens). */
    seed: z
      .number()
      .int()
      .min(0)
      .max(2 ** 31 - 1),
    /** Absent (jobs queued before it existed): "exact". */
    acceptance: acceptanceSchema.optional(),
  })
  .strict();
export type Sampling = z.infer<typeof samplingSchema>;

export const jobPromptSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('text'), text: z.string() }).strict(),
  z
    .object({ kind: z.literal('tokens'), tokenIds: z.array(z.number().int().min(0)).min(1) })
    .strict(),
]);
export type JobPrompt = z.infer<typeof jobPromptSchema>;

export const generationJobSchema = z
  .object({
    version: z.literal(GENERATION_JOB_VERSION),
    requestId: z.uuid(),
    tenantId: z.uuid(),
    model: z.string().min(1),
    prompt: jobPromptSchema,
    /** Prompt length as the API counted it (the quota was reserved on this count). */
    promptTokens: z.number().int().min(0),
    maxTokens: z.number().int().min(1),
    sampling: samplingSchema,
    method: decodingMethodSchema,
    /**
     * Tree width W: PipeDec keeps at most W drafted nodes per tree layer; STPP drafts at most
     * W nodes per level of its static tree. Each node proposes up to min(W, 4) children
     * (defaultBranching in libs/engine; PipeDec with distribution acceptance at temperature
     * > 0: min(W, 8)). 1 for method "pp", which drafts nothing. 0 only with
     * "auto": the head picks the width too.
     */
    width: z.number().int().min(0).max(MAX_TREE_WIDTH),
    stop: z.array(z.string().min(1)).max(MAX_STOP_STRINGS),
    /** Redis stream the head appends this request's events to (see events.ts). */
    eventsKey: z.string().min(1),
    /** Redis key the head polls between timesteps; present means "stop now" (see cancel.ts). */
    cancelKey: z.string().min(1),
    /** Epoch ms at admission, for queue-time accounting. */
    enqueuedAt: z.number(),
    /**
     * Present when the request is cancelled with its client (a streaming or waiting client,
     * without keep_running): the relay's heartbeat key (keys.ts relayKey). The head cancels the
     * job once no API has refreshed it for RELAY_LOST_CANCEL_MS. Absent: the job runs to its end
     * whoever listens (keep_running, POST /v1/jobs).
     */
    relayKey: z.string().min(1).optional(),
  })
  .strict();
export type GenerationJob = z.infer<typeof generationJobSchema>;

/**
 * Combinations the pipeline cannot honour. The API refuses them with this message rather
 * than silently changing a parameter; the head checks again and fails the job the same way.
 */
export function unsupportedCombination(
  job: Pick<GenerationJob, 'method' | 'width'>,
): { param: string; message: string } | undefined {
  if (job.width === 0 && job.method !== 'auto') {
    return {
      param: 'tree_width',
      message: `tree_width must be from 1 to ${MAX_TREE_WIDTH} with decoding method "${job.method}"`,
    };
  }
  if (job.method === 'pp' && job.width !== 1) {
    return {
      param: 'tree_width',
      message: `decoding method "pp" has no draft tree: tree_width must be 1, got ${job.width}`,
    };
  }
  return undefined;
}
