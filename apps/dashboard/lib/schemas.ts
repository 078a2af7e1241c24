// Shapes of the API's admin responses as the dashboard reads them. Every response is parsed
// (dub does the same), so a drifting API shows an error state instead of a broken page.
// Endpoints marked "expected" are not in apps/api yet; their shapes are this file's proposal.
import { z } from 'zod';

const isoDate = z.union([z.string(), z.date()]).transform((v) => new Date(v).toISOString());
const nullableIsoDate = isoDate.nullable();

export const limitsSchema = z.object({
  requestsPerMinute: z.number(),
  tokensPerMinute: z.number(),
  tokensPerMonth: z.number(),
  concurrentRequests: z.number(),
  maxPromptTokens: z.number(),
  maxOutputTokens: z.number(),
});
export type Limits = z.infer<typeof limitsSchema>;
export const LIMIT_FIELDS = Object.keys(limitsSchema.shape) as (keyof Limits)[];

/** GET /admin/tenants/:id (and each item of GET /admin/tenants). */
export const tenantSchema = z.object({
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
  createdAt: isoDate,
  /** Sent back by the edit form as expectedUpdatedAt: a stale save is refused (409). */
  updatedAt: isoDate,
});
export type Tenant = z.infer<typeof tenantSchema>;

/** GET /admin/plans items. */
export const planSchema = limitsSchema.extend({
  id: z.string(),
  name: z.string(),
  priority: z.number(),
  priceInputPer1kMicros: z.number(),
  priceOutputPer1kMicros: z.number(),
});
export type Plan = z.infer<typeof planSchema>;

/** An API key as the API lists it: never the secret, never its hash. */
export const apiKeySchema = z.object({
  id: z.string(),
  tenantId: z.string(),
  name: z.string(),
  prefix: z.string(),
  scopes: z.array(z.string()),
  status: z.enum(['active', 'revoked']),
  expiresAt: nullableIsoDate,
  lastUsedAt: nullableIsoDate,
  revokedAt: nullableIsoDate,
  previousSecretExpiresAt: nullableIsoDate,
  createdAt: isoDate,
});
export type ApiKey = z.infer<typeof apiKeySchema>;

/** POST .../keys and .../keys/:id/rotate: the key plus its secret, this once. */
export const createdApiKeySchema = apiKeySchema.extend({ secret: z.string().min(8) });

// GET /admin/tenants/:id/usage is the API's own contract, price segments included.
export { usageReportSchema, type PriceSegment, type UsageReport } from '@pipedec/contracts/http';

/**
 * GET /admin/metrics?tenantId=&from=&to=&granularity=hour|day, one point per
 * bucket over all tenants (or one), with latency percentiles over the bucket's requests.
 */
export const metricsPointSchema = z.object({
  bucketStart: isoDate,
  requests: z.number(),
  failedRequests: z.number(),
  promptTokens: z.number(),
  completionTokens: z.number(),
  costMicros: z.number(),
  ttftP50Ms: z.number().nullable(),
  ttftP95Ms: z.number().nullable(),
  tpotP50Ms: z.number().nullable(),
  tpotP95Ms: z.number().nullable(),
});
export type MetricsPoint = z.infer<typeof metricsPointSchema>;
export const metricsReportSchema = z.object({
  from: isoDate,
  to: isoDate,
  series: z.array(metricsPointSchema),
});

// The live pipeline view is the API's own contract (GET /admin/pipelines).
export {
  pipelinesSnapshotSchema,
  pipelineViewSchema,
  stageViewSchema,
  type PipelinesSnapshot,
  type PipelineView,
  type StageView,
} from '@pipedec/contracts/http';

export const adminMeSchema = z.object({
  id: z.string(),
  email: z.string(),
  role: z.enum(['admin', 'viewer']),
});
export type AdminMe = z.infer<typeof adminMeSchema>;

export const loginResponseSchema = z.object({
  token: z.string().min(8),
  expiresAt: isoDate,
  role: z.enum(['admin', 'viewer']),
  email: z.string(),
});

export const listOf = <T extends z.ZodType>(item: T) => z.object({ data: z.array(item) });
