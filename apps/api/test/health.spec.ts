import { testEnv } from '@pipedec/testkit';
import { createApp } from '../src/app.js';
import { parseApiConfig } from '../src/config/api-config.js';
import { call, startTestApi, type TestApi } from './test-api.js';

let api: TestApi;
beforeAll(async () => {
  api = await startTestApi();
}, 120_000);
afterAll(async () => {
  await api?.close();
});

describe('GET /health', () => {
  it('reports the database, Redis and the pipelines', async () => {
    const res = await call(api, 'GET', '/health');
    // No pipeline is registered under this test's prefix: it cannot serve generation, so a
    // load balancer must not route to it (200 "degraded" before).
    expect(res.status).toBe(503);
    expect(res.body).toMatchObject({
      database: { ok: true },
      redis: { ok: true },
      pipelines: { ready: 0, total: 0 },
    });
    expect(res.body.status).toBe('degraded');
    // Liveness stays 200: the process is fine, restarting it would not help.
    const live = await call(api, 'GET', '/health/live');
    expect(live.status).toBe(200);
  });

  it('answers unknown routes in the OpenAI error shape', async () => {
    const res = await call(api, 'GET', '/v1/nothing-here');
    expect(res.status).toBe(404);
    expect(res.body).toEqual({
      error: {
        type: 'not_found_error',
        code: 'not_found',
        message: expect.any(String) as string,
        param: null,
      },
    });
  });

  it('starts and answers 503 when the database is unreachable', async () => {
    const app = await createApp(
      parseApiConfig({
        NODE_ENV: 'test',
        DATABASE_URL: 'postgresql://postgres@127.0.0.1:5432/pipedec_no_such_database',
        REDIS_URL: testEnv().TEST_REDIS_URL,
        REDIS_PREFIX: api.prefix,
      }),
    );
    try {
      await app.listen(0, '127.0.0.1');
      const { port } = (app.getHttpServer() as import('node:http').Server).address() as {
        port: number;
      };
      const res = await call({ url: `http://127.0.0.1:${port}` }, 'GET', '/health');
      expect(res.status).toBe(503);
      expect((await call({ url: `http://127.0.0.1:${port}` }, 'GET', '/health/live')).status).toBe(
        200,
      );
      expect(res.body).toMatchObject({
        status: 'down',
        database: { ok: false },
        redis: { ok: true },
      });
    } finally {
      await app.close();
    }
  });
});
