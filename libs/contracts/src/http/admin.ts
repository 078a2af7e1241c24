// Bodies of the admin endpoints (dashboard). Every number has explicit bounds and every bound
// its message in an operator's words ("requests per minute must be a whole number from 1 to
// 1,000,000"): the columns behind them are 32-bit integers, so an unbounded field reached
// PostgreSQL and came back as a 500.
import { z } from 'zod';

/** "requestsPerMinute" → "requests per minute", "max_tokens" → "max tokens". */
export function fieldLabel(key: string): string {
  return key
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .replaceAll('_', ' ')
    .toLowerCase()
    .replace(/\b1k\b/, '1000 tokens');
}

const fmt = (n: number) => n.toLocaleString('en-US');

/** A whole number in [min, max], refused with one message naming the field and the range. */
export function boundedInt(label: string, min: number, max: number) {
  const error = `${label} must be a whole number from ${fmt(min)} to ${fmt(max)}`;
  return z.number({ error }).int({ error }).min(min, { error }).max(max, { error });
}

/**
 * A name an operator types: trimmed of nothing (what is typed is what is stored), at least one
 * visible character, no control characters (a NUL reached PostgreSQL's text type as a 500).
 */
export function displayName(label: string, max = 100) {
  return (
    z
      .string({ error: `${label} is required` })
      .min(1, { error: `${label} is required` })
      .max(max, { error: `${label} must be at most ${max} characters` })
      .refine((s) => s.trim().length > 0, { error: `${label} must not be blank` })
      // eslint-disable-next-line no-control-regex -- finding control characters is the point
      .refine((s) => !/[\u0000-\u001f\u007f]/.test(s), {
        error: `${label} must not contain control characters`,
      })
  );
}

/** Bounds of every limit, shared by plans, tenant overrides and the dashboard's forms. */
export const LIMIT_BOUNDS = {
  requestsPerMinute: { min: 1, max: 1_000_000 },
  tokensPerMinute: { min: 1, max: 1_000_000_000 },
  tokensPerMonth: { min: 1, max: 1_000_000_000_000 },
  concurrentRequests: { min: 1, max: 10_000 },
  maxPromptTokens: { min: 1, max: 1_000_000 },
  maxOutputTokens: { min: 1, max: 1_000_000 },
} as const;
/** Micro-dollars per 1000 tokens: up to $1,000,000 per 1000 tokens. */
export const PRICE_MAX_MICROS = 1_000_000_000_000;
export const PRIORITY_MAX = 98;
/** Key expiry, in days from now, when not "never". */
export const KEY_EXPIRY_MAX_DAYS = 3650;
/** A rotated key's old secret keeps working at most this long. */
export const GRACE_MAX_SECONDS = 30 * 24 * 3600;

const limit = (key: keyof typeof LIMIT_BOUNDS) =>
  boundedInt(fieldLabel(key), LIMIT_BOUNDS[key].min, LIMIT_BOUNDS[key].max);

export const API_KEY_SCOPES = ['generate', 'read-usage'] as const;
export const apiKeyScopeSchema = z.enum(API_KEY_SCOPES, {
  error: `scopes must be among ${API_KEY_SCOPES.join(', ')}`,
});
export type ApiKeyScope = z.infer<typeof apiKeyScopeSchema>;

export const adminLoginSchema = z
  .object({ email: z.email().max(320), password: z.string().min(1).max(1024) })
  .strict();

/** In the future and at most KEY_EXPIRY_MAX_DAYS away: checked by the API against its clock. */
const expiresAtSchema = z.iso.datetime({
  error: 'expiry must be a date and time like 2027-01-31T00:00:00Z',
});

export const createApiKeySchema = z
  .object({
    name: displayName('key name'),
    scopes: z
      .array(apiKeyScopeSchema, { error: 'scopes must be a list' })
      .min(1, { error: 'choose at least one scope' })
      .max(API_KEY_SCOPES.length),
    /**
     * ISO date-time, or null for a key that never expires. Absent also means never (older
     * clients); the dashboard always sends one of the two explicitly.
     */
    expiresAt: expiresAtSchema.nullable().optional(),
  })
  .strict();
export type CreateApiKey = z.infer<typeof createApiKeySchema>;

export const rotateApiKeySchema = z
  .object({
    /** Seconds the old secret keeps working (0: revoked at once). */
    gracePeriodSeconds: boundedInt('grace period in seconds', 0, GRACE_MAX_SECONDS).default(0),
  })
  .strict();

const limitOverrides = {
  requestsPerMinute: limit('requestsPerMinute').nullable().optional(),
  tokensPerMinute: limit('tokensPerMinute').nullable().optional(),
  tokensPerMonth: limit('tokensPerMonth').nullable().optional(),
  concurrentRequests: limit('concurrentRequests').nullable().optional(),
  maxPromptTokens: limit('maxPromptTokens').nullable().optional(),
  maxOutputTokens: limit('maxOutputTokens').nullable().optional(),
};

const planName = displayName('plan name');

export const createTenantSchema = z
  .object({ name: displayName('tenant name'), plan: planName, ...limitOverrides })
  .strict();
export type CreateTenant = z.infer<typeof createTenantSchema>;

export const updateTenantSchema = z
  .object({
    plan: planName.optional(),
    status: z
      .enum(['active', 'suspended'], { error: 'status must be active or suspended' })
      .optional(),
    ...limitOverrides,
    /**
     * The tenant's updatedAt as the editor loaded it. When set and the tenant changed since,
     * the save is refused (409) instead of overwriting someone else's change with the
     * form's stale values.
     */
    expectedUpdatedAt: z.iso
      .datetime({ error: 'expected updated-at must be a date and time' })
      .optional(),
  })
  .strict();
export type UpdateTenant = z.infer<typeof updateTenantSchema>;

export const usageQuerySchema = z
  .object({
    granularity: z.enum(['hour', 'day']).default('day'),
    from: z.iso.datetime().optional(),
    to: z.iso.datetime().optional(),
  })
  .strict();
export type UsageQuery = z.infer<typeof usageQuerySchema>;

const price = (label: string) => boundedInt(label, 0, PRICE_MAX_MICROS);

const planFields = {
  /** Queue priority and fair-share weight: higher is served more. */
  priority: boundedInt('priority', 0, PRIORITY_MAX),
  requestsPerMinute: limit('requestsPerMinute'),
  tokensPerMinute: limit('tokensPerMinute'),
  tokensPerMonth: limit('tokensPerMonth'),
  concurrentRequests: limit('concurrentRequests'),
  maxPromptTokens: limit('maxPromptTokens'),
  maxOutputTokens: limit('maxOutputTokens'),
  /** Micro-dollars per 1000 tokens. */
  priceInputPer1kMicros: price('input price (micro-dollars per 1000 tokens)'),
  priceOutputPer1kMicros: price('output price (micro-dollars per 1000 tokens)'),
};

export const createPlanSchema = z.object({ name: planName, ...planFields }).strict();
export type CreatePlan = z.infer<typeof createPlanSchema>;

export const updatePlanSchema = z.object(planFields).partial().strict();
export type UpdatePlan = z.infer<typeof updatePlanSchema>;

/** The longest range GET /admin/metrics serves per minute (the 15 min and 1 h views). */
export const METRICS_MINUTE_MAX_MS = 24 * 3600_000;

export const metricsQuerySchema = z
  .object({
    tenantId: z.uuid().optional(),
    granularity: z
      .enum(['minute', 'hour', 'day'], { error: 'granularity must be minute, hour or day' })
      .default('hour'),
    from: z.iso.datetime().optional(),
    to: z.iso.datetime().optional(),
  })
  .strict()
  .refine(
    (q) =>
      q.granularity !== 'minute' ||
      (q.from !== undefined &&
        (q.to ? Date.parse(q.to) : Date.now()) - Date.parse(q.from) <= METRICS_MINUTE_MAX_MS),
    {
      error: 'granularity minute needs a from at most 24 hours before to',
      path: ['granularity'],
    },
  );
export type MetricsQuery = z.infer<typeof metricsQuerySchema>;

/** GET /admin/metrics: one point per bucket (all tenants or one), latency percentiles included. */
export const metricsPointSchema = z.object({
  bucketStart: z.iso.datetime(),
  requests: z.number().int(),
  failedRequests: z.number().int(),
  promptTokens: z.number().int(),
  completionTokens: z.number().int(),
  costMicros: z.number().int(),
  ttftP50Ms: z.number().nullable(),
  ttftP95Ms: z.number().nullable(),
  tpotP50Ms: z.number().nullable(),
  tpotP95Ms: z.number().nullable(),
});
export type MetricsPoint = z.infer<typeof metricsPointSchema>;
export const metricsReportSchema = z.object({
  from: z.iso.datetime(),
  to: z.iso.datetime(),
  series: z.array(metricsPointSchema),
});
export type MetricsReport = z.infer<typeof metricsReportSchema>;

/**
 * Requests billed at one pair of prices (micro-dollars per 1000 tokens). After a mid-month
 * plan change a tenant's month has several, and each multiplies out on its own:
 * costMicros = sum over its requests of ceil((prompt x input + completion x output) / 1000).
 */
export const priceSegmentSchema = z.object({
  inputPer1kMicros: z.number().int(),
  outputPer1kMicros: z.number().int(),
  firstRequestAt: z.iso.datetime(),
  lastRequestAt: z.iso.datetime(),
  requests: z.number().int(),
  promptTokens: z.number().int(),
  completionTokens: z.number().int(),
  costMicros: z.number().int(),
});
export type PriceSegment = z.infer<typeof priceSegmentSchema>;

/** GET /admin/tenants/:id/usage: totals over [from, to) and the rollup series. */
export const usageReportSchema = z.object({
  tenantId: z.string(),
  from: z.iso.datetime(),
  to: z.iso.datetime(),
  totals: z.object({
    requests: z.number().int(),
    promptTokens: z.number().int(),
    completionTokens: z.number().int(),
    costMicros: z.number().int(),
    avgTotalLatencyMs: z.number().nullable(),
    avgTimeToFirstTokenMs: z.number().nullable(),
    avgTimePerOutputTokenMs: z.number().nullable(),
    priceSegments: z.array(priceSegmentSchema),
  }),
  series: z.array(
    z.object({
      bucketStart: z.iso.datetime(),
      requests: z.number().int(),
      failedRequests: z.number().int(),
      promptTokens: z.number().int(),
      completionTokens: z.number().int(),
      costMicros: z.number().int(),
      avgLatencyMs: z.number().nullable(),
      avgTimeToFirstTokenMs: z.number().nullable(),
      stageSeconds: z.number(),
    }),
  ),
});
export type UsageReport = z.infer<typeof usageReportSchema>;

/** Why a request was refused at admission (the 429's code), in the words an operator reads. */
export const REFUSAL_REASONS = {
  rate_limit_exceeded: 'Requests per minute',
  tokens_per_minute_exceeded: 'Tokens per minute',
  monthly_quota_exceeded: 'Monthly token quota',
  concurrency_limit_exceeded: 'Concurrent requests',
} as const;
export type RefusalReason = keyof typeof REFUSAL_REASONS;

/** GET /admin/refusals: refused admissions counted per hour; the range is rounded out to hours. */
export const refusalsQuerySchema = z
  .object({
    tenantId: z.uuid().optional(),
    from: z.iso.datetime().optional(),
    to: z.iso.datetime().optional(),
  })
  .strict();
export type RefusalsQuery = z.infer<typeof refusalsQuerySchema>;

export const refusalsReportSchema = z.object({
  from: z.iso.datetime(),
  to: z.iso.datetime(),
  /** One row per tenant and reason with at least one refusal, most refused first. */
  refusals: z.array(
    z.object({ tenantId: z.string(), reason: z.string(), count: z.number().int() }),
  ),
});
export type RefusalsReport = z.infer<typeof refusalsReportSchema>;

/**
 * GET /admin/audit: newest first, filtered by tenant, actor (part of "admin:<id>" or of the
 * admin's email, any case), action (exact, or a prefix ending in "." such as "tenant."), and
 * time [from, to). Paged by id: pass the previous page's nextBefore as before.
 */
export const auditQuerySchema = z
  .object({
    tenantId: z.uuid({ error: 'tenant must be a tenant id' }).optional(),
    actor: z.string().trim().min(1).max(200).optional(),
    action: z
      .string()
      .trim()
      .max(100)
      .regex(/^[a-z0-9_.-]+$/i, { error: 'action holds only letters, digits, ".", "_" and "-"' })
      .optional(),
    from: z.iso.datetime({ error: 'from must be a date and time' }).optional(),
    to: z.iso.datetime({ error: 'to must be a date and time' }).optional(),
    before: z
      .string()
      .regex(/^\d{1,19}$/, { error: 'before must be an entry id from a previous page' })
      .optional(),
    limit: z.coerce
      .number({ error: 'limit must be a whole number from 1 to 500' })
      .int({ error: 'limit must be a whole number from 1 to 500' })
      .min(1, { error: 'limit must be a whole number from 1 to 500' })
      .max(500, { error: 'limit must be a whole number from 1 to 500' })
      .default(100),
  })
  .strict();
export type AuditQuery = z.infer<typeof auditQuerySchema>;

export const auditEntrySchema = z.object({
  id: z.string(),
  at: z.iso.datetime(),
  actor: z.string(),
  /** The admin's email when the actor is an admin that still exists. */
  actorEmail: z.string().nullable(),
  action: z.string(),
  targetType: z.string(),
  targetId: z.string().nullable(),
  tenantId: z.string().nullable(),
  details: z.record(z.string(), z.unknown()),
});
export type AuditEntryView = z.infer<typeof auditEntrySchema>;

export const auditPageSchema = z.object({
  data: z.array(auditEntrySchema),
  /** Pass as before for the next (older) page; null on the last page. */
  nextBefore: z.string().nullable(),
});
export type AuditPage = z.infer<typeof auditPageSchema>;

// Responses of the admin API as the dashboard reads them. The dashboard parses every response
// with these (a drifting API shows an error state, not a broken page), and the API's specs
// parse its own responses with them, so the two cannot disagree unnoticed.

export const limitsSchema = z.object({
  requestsPerMinute: z.number(),
  tokensPerMinute: z.number(),
  tokensPerMonth: z.number(),
  concurrentRequests: z.number(),
  maxPromptTokens: z.number(),
  maxOutputTokens: z.number(),
});
export type Limits = z.infer<typeof limitsSchema>;

/** GET /admin/tenants/:id (and each item of GET /admin/tenants). */
export const tenantViewSchema = z.object({
  id: z.string(),
  name: z.string(),
  status: z.enum(['active', 'suspended']),
  plan: z.string(),
  limits: limitsSchema,
  overrides: z.object({
    requestsPerMinute: z.number().nullable(),
    tokensPerMinute: z.number().nullable(),
    tokensPerMonth: z.number().nullable(),
    concurrentRequests: z.number().nullable(),
    maxPromptTokens: z.number().nullable(),
    maxOutputTokens: z.number().nullable(),
  }),
  prices: z.object({ inputPer1kMicros: z.number(), outputPer1kMicros: z.number() }),
  createdAt: z.iso.datetime(),
  /** Sent back by the edit form as expectedUpdatedAt: a stale save is refused (409). */
  updatedAt: z.iso.datetime(),
});
export type TenantView = z.infer<typeof tenantViewSchema>;

/** GET /admin/plans items. */
export const planViewSchema = limitsSchema.extend({
  id: z.string(),
  name: z.string(),
  priority: z.number(),
  priceInputPer1kMicros: z.number(),
  priceOutputPer1kMicros: z.number(),
});
export type PlanView = z.infer<typeof planViewSchema>;

/** An API key as the API lists it: never the secret, never its hash. */
export const apiKeyViewSchema = z.object({
  id: z.string(),
  tenantId: z.string(),
  name: z.string(),
  prefix: z.string(),
  scopes: z.array(z.string()),
  status: z.enum(['active', 'revoked']),
  expiresAt: z.iso.datetime().nullable(),
  lastUsedAt: z.iso.datetime().nullable(),
  revokedAt: z.iso.datetime().nullable(),
  previousSecretExpiresAt: z.iso.datetime().nullable(),
  createdAt: z.iso.datetime(),
});
export type ApiKeyView = z.infer<typeof apiKeyViewSchema>;

/** POST .../keys and .../keys/:id/rotate: the key plus its secret, this once. */
export const createdApiKeySchema = apiKeyViewSchema.extend({ secret: z.string().min(8) });

/** GET /admin/me. */
export const adminMeSchema = z.object({
  id: z.string(),
  email: z.string(),
  role: z.enum(['admin', 'viewer']),
});
export type AdminMe = z.infer<typeof adminMeSchema>;

/** POST /admin/login. */
export const loginResponseSchema = z.object({
  token: z.string().min(8),
  expiresAt: z.iso.datetime(),
  role: z.enum(['admin', 'viewer']),
  email: z.string(),
});

/** The admin API's list responses: { data: [...] }. */
export const listOf = <T extends z.ZodType>(item: T) => z.object({ data: z.array(item) });
