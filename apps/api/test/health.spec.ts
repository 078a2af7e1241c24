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
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      database: { ok: true },
      redis: { ok: true },
      pipelines: { ready: 0, total: 0 },
    });
    // No pipeline is registered under this test's prefix: up, but not able to generate.
    expect(res.body.status).toBe('degraded');
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
});
