// Bodies of the admin endpoints (dashboard).
import { z } from 'zod';

export const API_KEY_SCOPES = ['generate', 'read-usage'] as const;
export const apiKeyScopeSchema = z.enum(API_KEY_SCOPES);
export type ApiKeyScope = z.infer<typeof apiKeyScopeSchema>;

export const adminLoginSchema = z
  .object({ email: z.email().max(320), password: z.string().min(1).max(1024) })
  .strict();

export const createApiKeySchema = z
  .object({
    name: z.string().min(1).max(100),
    scopes: z.array(apiKeyScopeSchema).min(1),
    /** ISO date-time; absent means no expiry. */
    expiresAt: z.iso.datetime().optional(),
  })
  .strict();
export type CreateApiKey = z.infer<typeof createApiKeySchema>;

export const rotateApiKeySchema = z
  .object({
    /** Seconds the old secret keeps working (0: revoked at once). */
    gracePeriodSeconds: z
      .number()
      .int()
      .min(0)
      .max(30 * 24 * 3600)
      .default(0),
  })
  .strict();

const limitOverrides = {
  requestsPerMinute: z.number().int().min(1).nullable().optional(),
  tokensPerMinute: z.number().int().min(1).nullable().optional(),
  tokensPerMonth: z.number().int().min(1).nullable().optional(),
  concurrentRequests: z.number().int().min(1).nullable().optional(),
  maxPromptTokens: z.number().int().min(1).nullable().optional(),
  maxOutputTokens: z.number().int().min(1).nullable().optional(),
};

export const createTenantSchema = z
  .object({ name: z.string().min(1).max(100), plan: z.string().min(1), ...limitOverrides })
  .strict();
export type CreateTenant = z.infer<typeof createTenantSchema>;

export const updateTenantSchema = z
  .object({
    plan: z.string().min(1).optional(),
    status: z.enum(['active', 'suspended']).optional(),
    ...limitOverrides,
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

const planFields = {
  /** Queue priority and fair-share weight: higher is served more. */
  priority: z.number().int().min(0).max(98),
  requestsPerMinute: z.number().int().min(1),
  tokensPerMinute: z.number().int().min(1),
  tokensPerMonth: z.number().int().min(1),
  concurrentRequests: z.number().int().min(1),
  maxPromptTokens: z.number().int().min(1),
  maxOutputTokens: z.number().int().min(1),
  /** Micro-dollars per 1000 tokens. */
  priceInputPer1kMicros: z.number().int().min(0),
  priceOutputPer1kMicros: z.number().int().min(0),
};

export const createPlanSchema = z
  .object({ name: z.string().min(1).max(100), ...planFields })
  .strict();
export type CreatePlan = z.infer<typeof createPlanSchema>;

export const updatePlanSchema = z.object(planFields).partial().strict();
export type UpdatePlan = z.infer<typeof updatePlanSchema>;

export const metricsQuerySchema = z
  .object({
    tenantId: z.uuid().optional(),
    granularity: z.enum(['hour', 'day']).default('hour'),
    from: z.iso.datetime().optional(),
    to: z.iso.datetime().optional(),
  })
  .strict();
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
export const metricsReportSchema = z.object({
  from: z.iso.datetime(),
  to: z.iso.datetime(),
  series: z.array(metricsPointSchema),
});
export type MetricsReport = z.infer<typeof metricsReportSchema>;
