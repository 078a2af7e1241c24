// StreamMux against a real Redis: every follow of a replica shares one blocking XREAD, and each
// still gets exactly its own stream's entries after its own resume point.
import { deleteRedisPrefix, redisPrefix, testEnv, testRedis } from '@pipedec/testkit';
import type { Redis } from 'ioredis';
import { parseApiConfig } from '../src/config/api-config.js';
import { StreamMux } from '../src/generation/stream-mux.js';
import { RedisConnections } from '../src/infra/redis.provider.js';

let prefix: string;
let redis: Redis;
let connections: RedisConnections;
let mux: StreamMux;

beforeEach(() => {
  prefix = redisPrefix();
  redis = testRedis();
  connections = new RedisConnections(
    parseApiConfig({ REDIS_URL: testEnv().TEST_REDIS_URL, REDIS_PREFIX: prefix }),
  );
  mux = new StreamMux(connections);
});
afterEach(async () => {
  await mux.onModuleDestroy();
  await connections.onModuleDestroy();
  await deleteRedisPrefix(redis, prefix);
  redis.disconnect();
});

const append = (stream: string, value: string) => redis.xadd(`${prefix}${stream}`, '*', 'v', value);

/** The values a follow reads until (and with) `last`. */
async function collect(
  stream: string,
  after: string,
  last: string,
  signal = new AbortController().signal,
): Promise<string[]> {
  const values: string[] = [];
  for await (const [, fields] of mux.read(`${prefix}${stream}`, after, signal)) {
    values.push(fields[1]);
    if (fields[1] === last) break;
  }
  return values;
}

describe('StreamMux', () => {
  it('gives each follow its own entries after its resume point, in order, once', async () => {
    await append('a', 'a1');
    const a2 = await append('a', 'a2');
    const fromStart = collect('a', '0', 'a5');
    const fromA2 = collect('a', a2!, 'a5');
    const other = collect('b', '0', 'b3');
    // Entries arrive while the follows block, interleaved across the streams.
    for (let i = 1; i <= 3; i++) {
      await new Promise((r) => setTimeout(r, 5));
      await append('b', `b${i}`);
      if (i < 3) await append('a', `a${i + 2}`);
    }
    // A follow that starts while the others' read blocks is in the next read.
    const late = collect('a', '0', 'a5');
    await append('a', 'a5');
    expect(await fromStart).toEqual(['a1', 'a2', 'a3', 'a4', 'a5']);
    expect(await fromA2).toEqual(['a3', 'a4', 'a5']);
    expect(await other).toEqual(['b1', 'b2', 'b3']);
    expect(await late).toEqual(['a1', 'a2', 'a3', 'a4', 'a5']);
  });

  it('ends a follow when its signal aborts, and keeps serving the others', async () => {
    const abort = new AbortController();
    const stopped = collect('c', '0', 'never', abort.signal);
    const going = collect('d', '0', 'd2');
    await append('c', 'c1');
    await append('d', 'd1');
    abort.abort();
    expect((await stopped).length).toBeLessThanOrEqual(1);
    await append('d', 'd2');
    expect(await going).toEqual(['d1', 'd2']);
  });
});
