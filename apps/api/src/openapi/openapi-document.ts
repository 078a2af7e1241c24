// The OpenAPI 3.1 document of the API, built from the same zod schemas that validate the
// bodies (libs/contracts/src/http), so the document cannot drift from what is enforced.
import {
  adminLoginSchema,
  chatCompletionRequestSchema,
  completionRequestSchema,
  createPlanSchema,
  createApiKeySchema,
  createTenantSchema,
  errorBodySchema,
  jobSubmitSchema,
  rotateApiKeySchema,
  updatePlanSchema,
  updateTenantSchema,
} from '@pipedec/contracts';
import { z } from 'zod';

type Auth = 'apiKey' | 'admin' | 'none';

interface Op {
  method: 'get' | 'post' | 'patch' | 'delete';
  path: string;
  summary: string;
  auth: Auth;
  body?: z.ZodType;
  ok?: number;
}

const ops: Op[] = [
  {
    method: 'get',
    path: '/health',
    summary: 'Readiness: 200 when the database, Redis and a whole pipeline answer, else 503',
    auth: 'none',
  },
  {
    method: 'get',
    path: '/health/live',
    summary: 'Liveness: 200 while the process answers',
    auth: 'none',
  },
  {
    method: 'get',
    path: '/metrics',
    summary: 'Prometheus metrics (Authorization: Bearer METRICS_TOKEN)',
    auth: 'none',
  },
  { method: 'get', path: '/openapi.json', summary: 'This document', auth: 'none' },
  { method: 'get', path: '/docs', summary: 'Interactive reference of this document', auth: 'none' },
  {
    method: 'get',
    path: '/docs/{file}',
    summary: "The reference page's files (Swagger UI)",
    auth: 'none',
  },
  { method: 'get', path: '/v1/models', summary: 'Models served', auth: 'apiKey' },
  {
    method: 'post',
    path: '/v1/completions',
    summary: 'OpenAI-compatible completion (stream: SSE)',
    auth: 'apiKey',
    body: completionRequestSchema,
  },
  {
    method: 'post',
    path: '/v1/chat/completions',
    summary: 'OpenAI-compatible chat completion (stream: SSE)',
    auth: 'apiKey',
    body: chatCompletionRequestSchema,
  },
  {
    method: 'post',
    path: '/v1/jobs',
    summary: 'Submit a generation job',
    auth: 'apiKey',
    body: jobSubmitSchema,
    ok: 202,
  },
  { method: 'get', path: '/v1/jobs/{id}', summary: 'Status and result of a job', auth: 'apiKey' },
  { method: 'post', path: '/v1/jobs/{id}/cancel', summary: 'Cancel a job', auth: 'apiKey' },
  { method: 'delete', path: '/v1/jobs/{id}', summary: 'Cancel a job', auth: 'apiKey' },
  {
    method: 'get',
    path: '/v1/usage',
    summary: "The key's tenant usage (scope read-usage)",
    auth: 'apiKey',
  },
  {
    method: 'post',
    path: '/admin/login',
    summary: 'Open an admin session (rate-limited)',
    auth: 'none',
    body: adminLoginSchema,
  },
  { method: 'post', path: '/admin/logout', summary: 'End the session', auth: 'admin', ok: 204 },
  { method: 'get', path: '/admin/me', summary: 'The signed-in admin', auth: 'admin' },
  { method: 'get', path: '/admin/plans', summary: 'Plans with limits and prices', auth: 'admin' },
  {
    method: 'post',
    path: '/admin/plans',
    summary: 'Create a plan (limits, prices, priority)',
    auth: 'admin',
    body: createPlanSchema,
    ok: 201,
  },
  {
    method: 'patch',
    path: '/admin/plans/{name}',
    summary: "Change a plan's limits, prices or priority",
    auth: 'admin',
    body: updatePlanSchema,
  },
  {
    method: 'get',
    path: '/admin/tenants',
    summary: 'Tenants with effective limits',
    auth: 'admin',
  },
  {
    method: 'post',
    path: '/admin/tenants',
    summary: 'Create a tenant',
    auth: 'admin',
    body: createTenantSchema,
    ok: 201,
  },
  { method: 'get', path: '/admin/tenants/{tenantId}', summary: 'One tenant', auth: 'admin' },
  {
    method: 'patch',
    path: '/admin/tenants/{tenantId}',
    summary: 'Change plan, status or limit overrides',
    auth: 'admin',
    body: updateTenantSchema,
  },
  {
    method: 'get',
    path: '/admin/tenants/{tenantId}/keys',
    summary: "A tenant's API keys (never secrets)",
    auth: 'admin',
  },
  {
    method: 'post',
    path: '/admin/tenants/{tenantId}/keys',
    summary: 'Create a key; the secret is returned once',
    auth: 'admin',
    body: createApiKeySchema,
    ok: 201,
  },
  {
    method: 'post',
    path: '/admin/tenants/{tenantId}/keys/{keyId}/revoke',
    summary: 'Revoke a key at once',
    auth: 'admin',
    ok: 201,
  },
  {
    method: 'post',
    path: '/admin/tenants/{tenantId}/keys/{keyId}/rotate',
    summary: 'New secret; the old one works for the grace period',
    auth: 'admin',
    body: rotateApiKeySchema,
    ok: 201,
  },
  {
    method: 'get',
    path: '/admin/tenants/{tenantId}/usage',
    summary: 'Usage, latency and cost of a tenant over time',
    auth: 'admin',
  },
  {
    method: 'get',
    path: '/admin/usage',
    summary: 'Usage, latency and cost per tenant',
    auth: 'admin',
  },
  {
    method: 'get',
    path: '/admin/refusals',
    summary:
      'Refused requests (429: rate, tokens, monthly quota, concurrency) per tenant and reason',
    auth: 'admin',
  },
  {
    method: 'get',
    path: '/admin/tenants/{tenantId}/requests/{requestId}',
    summary: "A tenant's request: status, output, decoding choice, timesteps, hit rate",
    auth: 'admin',
  },
  { method: 'get', path: '/admin/audit', summary: 'Audit log', auth: 'admin' },
  {
    method: 'post',
    path: '/admin/tenants/{tenantId}/keys/{keyId}/completions',
    summary: "Playground: a completion run as a tenant's key (billed to it, audited)",
    auth: 'admin',
    body: completionRequestSchema,
  },
  {
    method: 'get',
    path: '/admin/metrics',
    summary: 'Latency percentiles, volume and cost per hour or day (all tenants or one)',
    auth: 'admin',
  },
  {
    method: 'get',
    path: '/admin/pipelines',
    summary: 'Live pipelines: stages, health, queue depth, recent hit rate',
    auth: 'admin',
  },
  {
    method: 'post',
    path: '/admin/live/tickets',
    summary:
      'A one-use ticket (30 s) for the socket.io namespace /admin/live, which pushes the pipelines snapshot every second',
    auth: 'admin',
  },
];

export function openApiDocument(version: string): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  const error = z.toJSONSchema(errorBodySchema);
  for (const op of ops) {
    const params = [...op.path.matchAll(/\{(\w+)\}/g)].map((m) => ({
      name: m[1],
      in: 'path',
      required: true,
      schema: { type: 'string' },
    }));
    paths[op.path] ??= {};
    paths[op.path][op.method] = {
      summary: op.summary,
      ...(params.length ? { parameters: params } : {}),
      ...(op.auth === 'none'
        ? { security: [] }
        : { security: [op.auth === 'apiKey' ? { apiKey: [] } : { adminSession: [] }] }),
      ...(op.body
        ? {
            requestBody: {
              required: true,
              content: { 'application/json': { schema: z.toJSONSchema(op.body, { io: 'input' }) } },
            },
          }
        : {}),
      responses: {
        [String(op.ok ?? 200)]: { description: 'OK' },
        default: {
          description: "Error in OpenAI's shape",
          content: { 'application/json': { schema: error } },
        },
      },
    };
  }
  return {
    openapi: '3.1.0',
    info: { title: 'pipedec-service API', version },
    components: {
      securitySchemes: {
        apiKey: { type: 'http', scheme: 'bearer', description: 'Tenant API key (pd_...)' },
        adminSession: {
          type: 'http',
          scheme: 'bearer',
          description: 'Admin session token (pds_...) or cookie pd_admin_session',
        },
      },
    },
    paths,
  };
}

/** The documented routes, for the test that compares them with the routes Nest serves. */
export function documentedRoutes(): string[] {
  return ops.map((o) => `${o.method.toUpperCase()} ${o.path.replace(/\{(\w+)\}/g, ':$1')}`);
}
