// Admission limits ahead of the queue (#16), against the real API, PostgreSQL and Redis: the
// pipeline's stages announce their KV memory in the stage registry (written here as stage
// nodes write it; nothing consumes the queue, so admitted jobs stay waiting). A request that
// no stage could ever hold is refused with a 400 naming max_tokens or the prompt; past
// QUEUE_MAX_WAITING waiting requests a new one gets 503 queue_full with Retry-After. Neither
// reserves quota or leaves a request row: nothing is billed.
import {
  kvSlotsFor,
  registryKey,
  registryPipelinesKey,
  type StageRegistration,
} from '@pipedec/contracts';
import { call, errorOf, MODEL, startTestApi, type TestApi } from './test-api.js';

let api: TestApi;

// Two stages of 1,000-byte rows whose budget holds one request of at most 100 rows; a
// request's smallest tree on 2 stages with depth 4 takes kvTreeRows(1, 2, 4) = 14 rows.
const BYTES_PER_ROW = 1000;
const LIMIT_BYTES = kvSlotsFor(100) * BYTES_PER_ROW;

function stage(index: number): StageRegistration {
  return {
    pipelineId: 'kv',
    stageIndex: index,
    stageCount: 2,
    layerStart: index,
    layerEnd: index + 1,
    numLayers: 2,
    address: `127.0.0.1:${5000 + index}`,
    healthUrl: `http://127.0.0.1:${6000 + index}/health`,
    fingerprint: 'f',
    ready: true,
    instanceId: `i${index}`,
    pid: 1,
    startedAt: 0,
    heartbeatAt: Date.now(),
    residentBytes: 0,
    downstream: `i${1 - index}`,
    kv: {
      limitBytes: LIMIT_BYTES,
      bytesPerRow: BYTES_PER_ROW,
      maxPositions: 4096,
      treeDepth: 4,
    },
  };
}

beforeAll(async () => {
  api = await startTestApi({ ADMIT_WITHOUT_PIPELINE: 'false', QUEUE_MAX_WAITING: '2' });
  await api.redis.sadd(registryPipelinesKey(api.prefix), 'kv');
  for (const s of [0, 1]) {
    await api.redis.set(registryKey(api.prefix, 'kv', s), JSON.stringify(stage(s)));
  }
}, 120_000);
afterAll(() => api?.close());

/** Quota counters and request rows of the demo tenant: what admission reserved and recorded. */
async function billed() {
  const keys = (await api.redis.keys(`${api.prefix}quota:${api.demoTenantId}:*`)).sort();
  const values = await Promise.all(keys.map((k) => api.redis.type(k)));
  const rows = await api.prisma.generationRequest.count({ where: { tenantId: api.demoTenantId } });
  return { keys: keys.map((k, i) => `${k}:${values[i]}`), rows, month: await monthCounter() };
}

async function monthCounter(): Promise<number> {
  const [key] = await api.redis.keys(`${api.prefix}quota:${api.demoTenantId}:month:*`);
  return key ? Number(await api.redis.get(key)) : 0;
}

const submit = (prompt: string, maxTokens: number) =>
  call(api, 'POST', '/v1/jobs', {
    token: api.demoKey,
    body: { model: MODEL, prompt, max_tokens: maxTokens },
  });

describe('KV memory and queue limits at admission', () => {
  it('refuses what no stage could hold, naming the field, and what would wait past the queue limit', async () => {
    const first = await submit('x'.repeat(10), 1);
    expect(first.status).toBe(202);
    const promptTokens = first.body.prompt_tokens as number;
    const room = 100 - 14 - promptTokens; // the most output tokens beside this prompt
    const admitted = await billed();
    expect(admitted.month).toBeGreaterThan(0);

    const long = await submit('x'.repeat(10), room + 1);
    expect(long.status).toBe(400);
    expect(errorOf(long)).toMatchObject({ code: 'kv_memory_exceeded', param: 'max_tokens' });
    expect(errorOf(long).message).toContain(
      `a stage's KV memory holds at most ${room} output tokens`,
    );
    const huge = await submit('x'.repeat(95), 1);
    expect(huge.status).toBe(400);
    expect(errorOf(huge)).toMatchObject({ code: 'kv_memory_exceeded', param: 'prompt' });
    expect(await billed()).toEqual(admitted);

    // What fits is queued (nothing takes it here), up to QUEUE_MAX_WAITING (2).
    expect((await submit('x'.repeat(10), room)).status).toBe(202);
    const queued = await billed();
    expect(queued.rows).toBe(admitted.rows + 1);
    const full = await submit('z', 10);
    expect(full.status).toBe(503);
    expect(errorOf(full).code).toBe('queue_full');
    expect(full.headers.get('retry-after')).toBe('2');
    expect(await billed()).toEqual(queued);
  });
});
