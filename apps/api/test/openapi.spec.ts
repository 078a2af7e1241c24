// The OpenAPI document is generated from the routes the app registers (#19): every route
// Express serves is in it with its method and auth, and the request schemas are the very zod
// schemas the routes validate with. The routes are read from Express's router, not from Nest's
// metadata that the generator walks, so a route the generator missed is caught.
import {
  auditQuerySchema,
  chatCompletionRequestSchema,
  completionRequestSchema,
  jobSubmitSchema,
  updatePlanSchema,
} from '@pipedec/contracts';
import { listRoutes } from '../src/app.js';
import { jsonSchemaOf } from '../src/openapi/openapi-document.js';
import { adminLogin, call, errorOf, MODEL, startTestApi, type TestApi } from './test-api.js';

let api: TestApi;

beforeAll(async () => {
  api = await startTestApi();
}, 120_000);
afterAll(async () => {
  await api?.close();
});

interface Schema {
  type?: string;
  format?: string;
  enum?: unknown[];
  description?: string;
  minimum?: number;
  maximum?: number;
  default?: unknown;
  pattern?: string;
  maxLength?: number;
  properties?: Record<string, Schema>;
  required?: string[];
  additionalProperties?: unknown;
}
interface Parameter {
  name: string;
  in: string;
  required: boolean;
  description?: string;
  schema: Schema;
}
interface Operation {
  summary?: string;
  security: Record<string, string[]>[];
  parameters?: Parameter[];
  requestBody?: { content: { 'application/json': { schema: Schema } } };
  responses: Record<string, { description: string; content?: Record<string, { schema?: Schema }> }>;
}
interface Document {
  openapi: string;
  paths: Record<string, Record<string, Operation>>;
}

async function document(): Promise<Document> {
  const res = await call<Document>(api, 'GET', '/openapi.json');
  expect(res.status).toBe(200);
  return res.body;
}

/** "GET /v1/jobs/:id" for every route on Express's router (Express 5: app.router.stack). */
function expressRoutes(): string[] {
  const express = api.app.getHttpAdapter().getInstance() as {
    router: { stack: { route?: { path: string; methods: Record<string, boolean> } }[] };
  };
  return express.router.stack.flatMap((layer) =>
    layer.route
      ? Object.keys(layer.route.methods)
          .filter((m) => m !== '_all')
          .map((m) => `${m.toUpperCase()} ${layer.route!.path}`)
      : [],
  );
}

function body(doc: Document, path: string, method: string): Schema {
  return doc.paths[path][method].requestBody!.content['application/json'].schema;
}

describe('the OpenAPI document', () => {
  it('has every route Express serves, with its method, and nothing else', async () => {
    const doc = await document();
    expect(doc.openapi).toBe('3.1.0');
    const served = expressRoutes();
    // The Nest app has routes in every area: a missing router read would pass vacuously.
    expect(served.length).toBeGreaterThanOrEqual(30);
    expect(served).toEqual(expect.arrayContaining(['POST /v1/completions', 'GET /admin/audit']));
    const documented = Object.entries(doc.paths).flatMap(([path, ops]) =>
      Object.keys(ops).map((m) => `${m.toUpperCase()} ${path.replace(/\{(\w+)\}/g, ':$1')}`),
    );
    expect([...documented].sort()).toEqual([...new Set(served)].sort());
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(ops)) {
        expect(`${method} ${path}: ${op.summary ?? ''}`).toMatch(/: \w/);
        for (const m of path.matchAll(/\{(\w+)\}/g)) {
          expect(op.parameters?.find((p) => p.name === m[1] && p.in === 'path')).toBeDefined();
        }
      }
    }
  });

  it("states each route's auth as its @Auth declares it", async () => {
    const doc = await document();
    for (const { route, policy } of listRoutes(api.app) as {
      route: string;
      policy: { kind: string; role?: string; scopes?: string[] };
    }[]) {
      const [method, path] = route.split(' ');
      const op = doc.paths[path.replace(/:(\w+)/g, '{$1}')][method.toLowerCase()];
      const expected =
        policy.kind === 'public'
          ? []
          : policy.kind === 'apiKey'
            ? [{ apiKey: policy.scopes }]
            : [{ adminSession: [policy.role] }];
      expect({ route, security: op.security }).toEqual({ route, security: expected });
      if (policy.kind !== 'public') expect(op.responses['401']).toBeDefined();
    }
    expect(doc.paths['/v1/usage'].get.security).toEqual([{ apiKey: ['read-usage'] }]);
    expect(doc.paths['/admin/tenants'].post.security).toEqual([{ adminSession: ['admin'] }]);
    expect(doc.paths['/admin/tenants'].post.responses['403']).toBeDefined();
    expect(doc.paths['/health'].get.security).toEqual([]);
  });

  it('gives each request body the schema its route validates with', async () => {
    const doc = await document();
    const completion = body(doc, '/v1/completions', 'post');
    expect(completion).toEqual(jsonSchemaOf(completionRequestSchema, 'input'));
    expect(body(doc, '/v1/chat/completions', 'post')).toEqual(
      jsonSchemaOf(chatCompletionRequestSchema, 'input'),
    );
    expect(body(doc, '/v1/jobs', 'post')).toEqual(jsonSchemaOf(jobSubmitSchema, 'input'));
    expect(body(doc, '/admin/plans/{name}', 'patch')).toEqual(
      jsonSchemaOf(updatePlanSchema, 'input'),
    );
    // The bounds a client reads are the ones enforced.
    const p = completion.properties!;
    expect(completion.additionalProperties).toBe(false);
    expect(completion.required).toEqual(expect.arrayContaining(['model', 'prompt']));
    expect(p.max_tokens).toMatchObject({ type: 'integer', minimum: 1, maximum: 1_000_000 });
    expect(p.temperature).toMatchObject({ type: 'number', minimum: 0, maximum: 2 });
    expect(p.top_k).toMatchObject({ type: 'integer', minimum: 0, maximum: 100_000 });
    expect(p.decoding_method.enum).toEqual(['auto', 'pipedec', 'stpp', 'pp']);
    expect(p.speculative_acceptance.enum).toEqual(['exact', 'distribution']);
    // The README's words ride along as descriptions.
    expect(p.decoding_method.description).toMatch(/"auto" \(the default\)/);
    expect(p.speculative_acceptance.description).toMatch(/recursive rejection sampling/);
    expect(p.top_k.description).toMatch(/0, the default, means all/);
    // What the document says is what the route enforces.
    const over = await call(api, 'POST', '/v1/completions', {
      token: api.demoKey,
      body: { model: MODEL, prompt: 'x', max_tokens: p.max_tokens.maximum! + 1 },
    });
    expect(over.status).toBe(400);
    expect(errorOf(over).param).toBe('max_tokens');
    const method = await call(api, 'POST', '/v1/completions', {
      token: api.demoKey,
      body: { model: MODEL, prompt: 'x', decoding_method: 'beam' },
    });
    expect(errorOf(method).param).toBe('decoding_method');
  });

  it('lists query, header and path parameters with their schemas', async () => {
    const doc = await document();
    const audit = doc.paths['/admin/audit'].get.parameters!;
    const fromSchema = jsonSchemaOf(auditQuerySchema, 'input').properties as Record<string, Schema>;
    expect(audit.map((q) => q.name).sort()).toEqual(Object.keys(fromSchema).sort());
    expect(audit.find((q) => q.name === 'limit')).toMatchObject({
      in: 'query',
      required: false,
      schema: { type: 'integer', minimum: 1, maximum: 500, default: 100 },
    });
    const admin = await adminLogin(api);
    const bad = await call(api, 'GET', '/admin/audit?limit=501', { token: admin });
    expect(errorOf(bad).param).toBe('limit');

    const idem = doc.paths['/v1/jobs'].post.parameters!.find((q) => q.in === 'header');
    expect(idem).toMatchObject({ name: 'Idempotency-Key', required: false });
    expect(idem!.description).toMatch(/same request/);
    expect(idem!.schema.pattern).toBeDefined();

    const job = doc.paths['/v1/jobs/{id}'].get;
    expect(job.parameters).toEqual([
      { name: 'id', in: 'path', required: true, schema: { type: 'string', format: 'uuid' } },
    ]);
    expect(Object.keys(job.responses)).toEqual(expect.arrayContaining(['200', '400', '404']));
    const plan = doc.paths['/admin/plans/{name}'].patch.parameters!.find((q) => q.name === 'name');
    expect(plan).toMatchObject({ in: 'path', required: true, schema: { type: 'string' } });
    expect(plan!.schema.maxLength).toBeDefined();
  });

  it('states success statuses and answer schemas', async () => {
    const doc = await document();
    expect(doc.paths['/v1/jobs'].post.responses['202']).toBeDefined();
    expect(doc.paths['/admin/logout'].post.responses['204']).toBeDefined();
    expect(Object.keys(doc.paths['/v1/completions'].post.responses['200'].content!)).toEqual([
      'application/json',
      'text/event-stream',
    ]);
    expect(doc.paths['/v1/completions'].post.responses['429']).toBeDefined();
    const me = doc.paths['/admin/me'].get.responses['200'].content!['application/json'].schema!;
    expect(Object.keys(me.properties as object)).toEqual(
      expect.arrayContaining(['id', 'email', 'role']),
    );
    const error = doc.paths['/v1/jobs/{id}'].get.responses['404'].content!['application/json'];
    expect(error.schema!.properties).toHaveProperty('error');
  });

  it('serves an interactive reference of the document at /docs', async () => {
    const page = await fetch(`${api.url}/docs`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    const html = await page.text();
    for (const src of [...html.matchAll(/(?:src|href)="(\/docs\/[^"]+)"/g)].map((m) => m[1])) {
      const res = await fetch(`${api.url}${src}`);
      expect({ src, status: res.status }).toEqual({ src, status: 200 });
    }
    expect(await (await fetch(`${api.url}/docs/init.js`)).text()).toContain('/openapi.json');
    expect((await fetch(`${api.url}/docs/package.json`)).status).toBe(404);
    expect((await fetch(`${api.url}/docs/..%2Fpackage.json`)).status).toBe(404);
  });
});
