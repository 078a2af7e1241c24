// The OpenAPI 3.1 document of the API, generated from the routes Nest registers (#19: it was a
// hand list beside the controllers, so a new route could be missing). Each operation comes
// from its handler's own declarations: method and path (@Get, @Post, ... on the controller),
// success status (@HttpCode), security (@Auth), request body, query, path parameters and
// headers (the zod schemas of @ValidBody, @ValidQuery, @ValidParam, @ValidHeader, the very
// ones that validate the request, converted with z.toJSONSchema), and summary, answer schema
// and service errors (@ApiDoc). Field descriptions are the schemas' own (.describe in
// @pipedec/contracts).
import { errorBodySchema } from '@pipedec/contracts';
import { z } from 'zod';
import type { AuthPolicy } from '../auth/auth-policy.js';
import type { RouteInput } from '../common/route-inputs.js';
import type { DeclaredRoute } from './routes.js';

type JsonSchema = Record<string, unknown>;

/** A zod schema as JSON Schema 2020-12 (OpenAPI 3.1's dialect), without the $schema line. */
export function jsonSchemaOf(schema: z.ZodType, io: 'input' | 'output'): JsonSchema {
  const json = z.toJSONSchema(schema, { io, unrepresentable: 'any' }) as JsonSchema;
  delete json.$schema;
  return json;
}

const ERROR_TEXT: Record<number, string> = {
  400: 'Invalid request: `error.param` names the offending field',
  401: 'Missing or invalid credentials',
  403: 'Authenticated but not allowed (scope, role, suspended tenant)',
  404: 'Not found (or not visible to this tenant)',
  409: 'Conflict with the current state',
  413: 'Body larger than BODY_LIMIT_BYTES',
  429: 'Refused by a rate limit, token quota or concurrency limit (Retry-After says when to retry)',
  503: 'No whole pipeline, or a dependency is down',
};

/** "/v1/jobs/:id" → "/v1/jobs/{id}" */
export function openApiPath(expressPath: string): string {
  return expressPath.replace(/:(\w+)/g, '{$1}');
}

function security(policy: AuthPolicy | undefined): Record<string, unknown> {
  if (!policy || policy.kind === 'public') return { security: [] };
  if (policy.kind === 'apiKey') return { security: [{ apiKey: policy.scopes }] };
  return { security: [{ adminSession: [policy.role] }] };
}

function authNote(policy: AuthPolicy | undefined): string | undefined {
  if (policy?.kind === 'apiKey' && policy.scopes.length > 0)
    return `Needs an API key with scope ${policy.scopes.join(', ')}.`;
  if (policy?.kind === 'admin')
    return policy.role === 'admin' ? 'Admins only (not viewers).' : 'Admins and viewers.';
  return undefined;
}

/** Every property of an object schema as one parameter `in` the query or a header. */
function parameters(route: DeclaredRoute): JsonSchema[] {
  const out: JsonSchema[] = [];
  const validatedPath = new Set<string>();
  for (const input of route.inputs) {
    if (input.in === 'query') {
      const json = jsonSchemaOf(input.schema, 'input');
      const props = (json.properties ?? {}) as Record<string, JsonSchema>;
      const required = new Set((json.required as string[] | undefined) ?? []);
      for (const [name, schema] of Object.entries(props)) {
        const { description, ...rest } = schema;
        out.push({
          name,
          in: 'query',
          required: required.has(name),
          ...(description ? { description } : {}),
          schema: rest,
        });
      }
    } else if (input.in === 'path' || input.in === 'header') {
      if (input.in === 'path') validatedPath.add(input.name);
      const { description, ...schema } = jsonSchemaOf(input.schema, 'input');
      out.push({
        name: input.name,
        in: input.in,
        required: input.in === 'path',
        ...(description ? { description } : {}),
        schema,
      });
    }
  }
  for (const m of route.path.matchAll(/:(\w+)/g)) {
    const name = m[1];
    if (validatedPath.has(name)) continue;
    const uuid = route.paramPipes[name]?.includes('ParseUUIDPipe');
    out.push({
      name,
      in: 'path',
      required: true,
      schema: uuid ? { type: 'string', format: 'uuid' } : { type: 'string' },
    });
  }
  return out;
}

/** The error statuses of a route: its validation's, its auth's and its service's. */
function errorStatuses(route: DeclaredRoute): number[] {
  const statuses = new Set(route.doc?.errors ?? []);
  const validates =
    route.inputs.length > 0 ||
    Object.values(route.paramPipes).some((pipes) => pipes.includes('ParseUUIDPipe'));
  if (validates) statuses.add(400);
  if (route.inputs.some((i) => i.in === 'body')) statuses.add(413);
  const policy = route.policy;
  if (policy && policy.kind !== 'public') statuses.add(401);
  if (policy?.kind === 'apiKey' || (policy?.kind === 'admin' && policy.role === 'admin'))
    statuses.add(403);
  return [...statuses].sort((a, b) => a - b);
}

function operation(route: DeclaredRoute, error: JsonSchema): JsonSchema {
  const doc = route.doc;
  const body = route.inputs.find((i): i is Extract<RouteInput, { in: 'body' }> => i.in === 'body');
  const params = parameters(route);
  const description = [doc?.description, authNote(route.policy)].filter(Boolean).join('\n\n');
  const media = doc?.produces ?? ['application/json'];
  const ok = doc?.response ? jsonSchemaOf(doc.response, 'output') : undefined;
  const responses: Record<string, unknown> = {
    [String(route.status)]: {
      description: doc?.summary ?? 'OK',
      ...(route.status === 204
        ? {}
        : {
            content: Object.fromEntries(
              media.map((type) => [type, type === 'application/json' && ok ? { schema: ok } : {}]),
            ),
          }),
    },
  };
  const json = { 'application/json': { schema: error } };
  for (const status of errorStatuses(route)) {
    responses[String(status)] = { description: ERROR_TEXT[status] ?? 'Error', content: json };
  }
  responses.default = { description: "Any other error, in OpenAI's shape", content: json };
  return {
    operationId: route.handler.replace('.', '_'),
    ...(doc ? { summary: doc.summary } : {}),
    ...(description ? { description } : {}),
    ...security(route.policy),
    ...(params.length > 0 ? { parameters: params } : {}),
    ...(body
      ? {
          requestBody: {
            required: true,
            content: { 'application/json': { schema: jsonSchemaOf(body.schema, 'input') } },
          },
        }
      : {}),
    responses,
  };
}

export function openApiDocument(routes: DeclaredRoute[], version: string): JsonSchema {
  const error = jsonSchemaOf(errorBodySchema, 'output');
  const paths: Record<string, Record<string, JsonSchema>> = {};
  const sorted = [...routes].sort((a, b) => a.path.localeCompare(b.path));
  for (const route of sorted) {
    const path = openApiPath(route.path);
    paths[path] ??= {};
    paths[path][route.method.toLowerCase()] = operation(route, error);
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
