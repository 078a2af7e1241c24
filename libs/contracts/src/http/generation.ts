// Request bodies of the generation endpoints: OpenAI's /v1/completions and
// /v1/chat/completions (the fields this service supports, unknown fields refused) and the
// native job endpoint. Extra parameters: seed, decoding_method, tree_width, keep_running.
import { z } from 'zod';
import { finishReasonSchema, speculativeStatsSchema } from '../jobs/events.js';
import {
  acceptanceSchema,
  decodingChoiceSchema,
  decodingMethodSchema,
  MAX_STOP_STRINGS,
  MAX_TREE_WIDTH,
} from '../jobs/generation-job.js';

/** A method with its width as people read it and auto's estimates are keyed: "pp", "stpp/w2". */
export function decodingLabel(d: { method: string; width: number }): string {
  return d.method === 'pp' ? 'pp' : `${d.method}/w${d.width}`;
}

/** Output tokens one request may ask for; a plan's maxOutputTokens lowers it further. */
export const MAX_TOKENS_LIMIT = 1_000_000;
const maxTokens = (label: string) =>
  z
    .number()
    .int({ error: `${label} must be a whole number from 1 to 1,000,000` })
    .min(1, { error: `${label} must be a whole number from 1 to 1,000,000` })
    .max(MAX_TOKENS_LIMIT, { error: `${label} must be a whole number from 1 to 1,000,000` });
/**
 * An empty prompt is refused here: the tokenizer would add a start token and the request would
 * be admitted and billed for a prompt nobody wrote.
 */
const promptText = z.string().min(1, { error: 'prompt must not be empty' });

/**
 * A stop string is stored with the request's parameters (PostgreSQL JSON), which cannot hold
 * NUL: refused here with a 400 naming `stop` instead of a 500 (found by the #18 fuzz).
 */
const stopString = z
  .string()
  .min(1)
  .refine((v) => !v.includes('\u0000'), { error: 'stop strings must not contain NUL (\\u0000)' });
const stopSchema = z.union([stopString, z.array(stopString).max(MAX_STOP_STRINGS)]);

/** Parameters common to both OpenAI endpoints and the native one. */
const commonParams = {
  model: z.string().min(1).max(200),
  max_tokens: maxTokens('max_tokens').optional(),
  temperature: z.number().min(0).max(2).optional(),
  top_p: z.number().gt(0).max(1).optional(),
  /** Only the k likeliest tokens can be drawn; 0 (the default) means all of them. */
  top_k: z
    .number()
    .int({ error: 'top_k must be a whole number from 0 (all tokens) to 100,000' })
    .min(0, { error: 'top_k must be a whole number from 0 (all tokens) to 100,000' })
    .max(100_000, { error: 'top_k must be a whole number from 0 (all tokens) to 100,000' })
    .describe('Only the k likeliest tokens can be drawn; 0, the default, means all.')
    .optional(),
  n: z.literal(1).optional(),
  stop: stopSchema.nullable().optional(),
  seed: z
    .number()
    .int()
    .min(0)
    .max(2 ** 31 - 1)
    .describe(
      'Seeds the sampling: with speculative_acceptance "exact" (the default with a seed) every method writes the same tokens for a seed.',
    )
    .optional(),
  user: z.string().max(256).optional(),
  /** Zero only: the pipeline does not implement penalties, and refuses rather than ignores. */
  presence_penalty: z.literal(0).optional(),
  frequency_penalty: z.literal(0).optional(),
  decoding_method: decodingMethodSchema
    .describe(
      '"auto" (the default), "pipedec", "stpp" or "pp". With "auto" the head of the pipeline picks the method (and, unless tree_width is given, the width): it tries each method on the first requests of a kind (greedy or sampled), then runs the one with the lowest median decode time per token measured on that pipeline. Every method writes exactly the target model\'s tokens; a combination the pipeline cannot honour is refused with a 400 naming the field, never changed.',
    )
    .optional(),
  tree_width: z
    .number()
    .int()
    .min(1)
    .max(MAX_TREE_WIDTH)
    .describe(
      'Tree width W: PipeDec keeps at most W drafted nodes per tree layer; STPP drafts at most W nodes per level of its static tree.',
    )
    .optional(),
  /** Default: "exact" when the request gives a seed, "distribution" otherwise. */
  speculative_acceptance: acceptanceSchema
    .describe(
      'How PipeDec and STPP accept drafted tokens when sampling (temperature > 0): "exact" accepts a drafted token only if it is the target\'s own seeded draw, so every method writes the same tokens for a seed; "distribution" uses recursive rejection sampling over the draft\'s candidates, so the tokens are distributed exactly as the target model\'s (after temperature and top-p) while far more drafted tokens are accepted. Default: "exact" when the request gives a seed, "distribution" otherwise; greedy requests are the same in both.',
    )
    .optional(),
};

const streamParams = {
  stream: z.boolean().optional(),
  stream_options: z
    .object({
      include_usage: z
        .boolean()
        .describe(
          'As OpenAI streams: when true, every chunk has usage: null and one last chunk with empty choices carries the usage; when false or absent, no chunk has usage.',
        )
        .optional(),
    })
    .strict()
    .nullable()
    .optional(),
  /** Keep generating when the client drops the SSE stream (default: cancel). */
  keep_running: z
    .boolean()
    .describe(
      'Keep generating when a streaming client disconnects; by default the job is cancelled, and if the API relaying it dies, its head cancels it a few seconds later (RELAY_LOST_CANCEL_MS), billed the tokens it wrote.',
    )
    .optional(),
};

export const completionRequestSchema = z
  .object({
    ...commonParams,
    ...streamParams,
    prompt: z
      .union([z.string(), z.array(z.string()).length(1)])
      // Refinements also run after the union failed (zod 4), so `p` is checked for shape too.
      .refine((p: unknown) => (Array.isArray(p) ? p[0] : p) !== '', {
        error: 'prompt must not be empty',
      }),
    echo: z.literal(false).optional(),
    logprobs: z.null().optional(),
  })
  .strict();
export type CompletionRequest = z.infer<typeof completionRequestSchema>;

export const chatMessageSchema = z
  .object({
    role: z.enum(['system', 'user', 'assistant']),
    content: z.string(),
    name: z.string().max(64).optional(),
  })
  .strict();

export const chatCompletionRequestSchema = z
  .object({
    ...commonParams,
    ...streamParams,
    messages: z.array(chatMessageSchema).min(1).max(256),
    max_completion_tokens: maxTokens('max_completion_tokens').optional(),
    logprobs: z.literal(false).nullable().optional(),
  })
  .strict();
export type ChatCompletionRequest = z.infer<typeof chatCompletionRequestSchema>;

/** POST /v1/jobs: submit and return at once; poll GET /v1/jobs/:id or subscribe. */
export const jobSubmitSchema = z
  .object({
    ...commonParams,
    prompt: promptText,
  })
  .strict();
export type JobSubmit = z.infer<typeof jobSubmitSchema>;

/**
 * GET /v1/jobs/:id (and the admins' GET /admin/tenants/:t/requests/:id): a request's status
 * and, once it has ended, its result and statistics.
 */
export const jobStatusSchema = z.object({
  id: z.string(),
  status: z.enum(['queued', 'running', 'succeeded', 'failed', 'cancelled']),
  model: z.string(),
  /** The method asked for ("auto" included). */
  method: z.string(),
  /** What it decodes with: the method named, or auto's choice, with its parameters. */
  decoding: decodingChoiceSchema.nullable(),
  /** The text committed so far. */
  output: z.string(),
  finishReason: finishReasonSchema.nullable(),
  error: z.string().nullable(),
  usage: z
    .object({
      prompt_tokens: z.number().int(),
      completion_tokens: z.number().int(),
      total_tokens: z.number().int(),
    })
    .nullable(),
  timings: z.object({
    queuedAt: z.iso.datetime(),
    startedAt: z.iso.datetime().nullable(),
    finishedAt: z.iso.datetime().nullable(),
    timeToFirstTokenMs: z.number().nullable(),
    timePerOutputTokenMs: z.number().nullable(),
    totalLatencyMs: z.number().nullable(),
  }),
  /**
   * Timesteps, tokens per timestep, hit rate and the time split of the attempt that finished;
   * null until the request has ended (and for a request that never ran a step).
   */
  stats: speculativeStatsSchema.nullable(),
  costMicros: z.number(),
  /** The request's event stream position to resume from (socket.io / SSE). */
  lastEventId: z.string().nullable(),
});
export type JobStatus = z.infer<typeof jobStatusSchema>;
