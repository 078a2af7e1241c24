// The live view's batch numbers end to end: real stage processes on the bundled demo pair,
// with batching on (STAGE_BATCH_REQUESTS 4) and a head that runs 4 requests at once, report
// their compute calls in their heartbeats, and GET /admin/pipelines pools them while the
// requests run. A pipeline of its own, so that stages.spec's single pipeline stays as it is.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { pipelinesSnapshotSchema, type PipelineView } from '@pipedec/contracts';
import { LocalCluster } from '@pipedec/testkit/local-cluster';
import { adminLogin, call, startTestApi, type TestApi, waitFor } from './test-api.js';

const MODEL = 'pipedec-demo';
/** The demo model continues it greedily for 200 tokens and more. */
const LONG_PROMPT = 'And the LORD spake unto Moses, saying,';
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const TARGET = path.join(ROOT, 'models/demo-target');
const DRAFT = path.join(ROOT, 'models/demo-draft');
/** The demo tenant's concurrency limit, the head's QUEUE_CONCURRENCY and the batch limit. */
const REQUESTS = 4;

let api: TestApi;
let cluster: LocalCluster;

beforeAll(async () => {
  api = await startTestApi({ MODEL_NAME: MODEL, MODEL_DIR: TARGET });
  cluster = await LocalCluster.start({
    pipelineId: 'p-batch',
    stages: 2,
    checkpointDir: TARGET,
    draftCheckpointDir: DRAFT,
    redisUrl: api.config.REDIS_URL,
    redisPrefix: api.prefix,
    env: {
      MODEL_NAME: MODEL,
      HEARTBEAT_MS: '250',
      QUEUE_CONCURRENCY: String(REQUESTS),
      STAGE_BATCH_REQUESTS: String(REQUESTS),
      STAGE_LANES: '1', // every runnable request in one call, not one group per stage
      // All of them speculate (past SPECULATE_MAX_IN_FLIGHT a request would decode as PP).
      SPECULATE_MAX_IN_FLIGHT: String(REQUESTS),
    },
    readyTimeoutMs: 90_000,
  });
}, 180_000);

afterAll(async () => {
  await cluster?.stop();
  await api?.close();
}, 60_000);

describe("the live view's batch of a pipeline", () => {
  it('reports requests in flight, requests and rows per stage call and tokens/s while requests run', async () => {
    const admin = await adminLogin(api);
    const view = async (): Promise<PipelineView> => {
      const res = await call(api, 'GET', '/admin/pipelines', { token: admin });
      expect(res.status).toBe(200);
      const p = pipelinesSnapshotSchema.parse(res.body).pipelines;
      expect(p.map((x) => x.pipelineId)).toEqual(['p-batch']);
      return p[0];
    };
    // Idle: nothing runs; the averages need calls, and the stages have made none yet.
    const idle = await waitFor(async () => {
      const p = await view();
      return p.batch.inFlight !== null && p.batch.tokensPerSecond !== null ? p : undefined;
    }, 10_000);
    expect(idle.batch).toEqual({
      inFlight: 0,
      requestsPerCall: null,
      rowsPerCall: null,
      tokensPerSecond: 0,
    });

    const ids = await Promise.all(
      Array.from({ length: REQUESTS }, async () => {
        const res = await call(api, 'POST', '/v1/jobs', {
          token: api.demoKey,
          body: {
            model: MODEL,
            prompt: LONG_PROMPT,
            max_tokens: 200,
            temperature: 0,
            decoding_method: 'pipedec',
            tree_width: 2,
          },
        });
        expect(res.status).toBe(202);
        return res.body.id as string;
      }),
    );
    // Every request runs, and the stages computed several of them per call lately.
    const busy = await waitFor(async () => {
      const p = await view();
      const b = p.batch;
      return b.inFlight === REQUESTS && (b.requestsPerCall ?? 0) > 1 && (b.tokensPerSecond ?? 0) > 0
        ? p
        : undefined;
    }, 60_000);
    expect(busy.batch.requestsPerCall).toBeLessThanOrEqual(REQUESTS);
    // A tree of width 2 sends several rows per request, except pruned (empty) packets.
    expect(busy.batch.rowsPerCall).toBeGreaterThan(busy.batch.requestsPerCall!);

    // When they are done the head runs none, whatever the last seconds' averages still say.
    for (const id of ids) {
      await waitFor(async () => {
        const s = await call(api, 'GET', `/v1/jobs/${id}`, { token: api.demoKey });
        return s.body.status === 'succeeded' ? true : undefined;
      }, 120_000);
    }
    const after = await waitFor(async () => {
      const p = await view();
      return p.batch.inFlight === 0 ? p : undefined;
    }, 10_000);
    expect(after.activeRequests).toBe(0);
  }, 240_000);
});
