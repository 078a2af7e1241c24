// CacheInvalidation against a real Redis, with two replicas in one process: an admin change
// answers only once the other replica has stopped serving what it cached, even when that
// replica reads its subscription late, and a receiver that never answers delays it by
// ACK_TIMEOUT_MS at most.
import { deleteRedisPrefix, redisPrefix, testEnv, testRedis } from '@pipedec/testkit';
import type { Redis } from 'ioredis';
import { parseApiConfig } from '../src/config/api-config.js';
import { ACK_TIMEOUT_MS, CacheInvalidation } from '../src/infra/cache-invalidation.js';
import { RedisConnections } from '../src/infra/redis.provider.js';

/** A replica's connections whose subscriber hands each message on `lagMs` late. */
class LaggingConnections extends RedisConnections {
  constructor(
    prefix: string,
    private readonly lagMs: number,
  ) {
    super(parseApiConfig({ REDIS_URL: testEnv().TEST_REDIS_URL, REDIS_PREFIX: prefix }));
  }

  override duplicate(options: { subscriber?: boolean } = {}): Redis {
    const conn = super.duplicate(options);
    const emit = conn.emit.bind(conn);
    conn.emit = (event: string | symbol, ...args: unknown[]) => {
      if (event !== 'message' || this.lagMs === 0) return emit(event, ...args);
      setTimeout(() => emit(event, ...args), this.lagMs);
      return true;
    };
    return conn;
  }
}

let prefix: string;
let redis: Redis;
const replicas: { connections: RedisConnections; invalidation: CacheInvalidation }[] = [];

async function replica(lagMs = 0): Promise<CacheInvalidation> {
  const connections = new LaggingConnections(prefix, lagMs);
  const invalidation = new CacheInvalidation(connections);
  replicas.push({ connections, invalidation });
  while (invalidation.generation === null) await new Promise((r) => setTimeout(r, 5));
  return invalidation;
}

beforeEach(() => {
  prefix = redisPrefix();
  redis = testRedis();
});
afterEach(async () => {
  for (const { connections, invalidation } of replicas.splice(0)) {
    invalidation.onModuleDestroy();
    await connections.onModuleDestroy();
  }
  await deleteRedisPrefix(redis, prefix);
  redis.disconnect();
});

describe('CacheInvalidation', () => {
  it('answers a change only after a replica that reads it late has moved on', async () => {
    const admin = await replica();
    const slow = await replica(150);
    const before = slow.generation;
    const started = Date.now();
    await admin.changed();
    expect(slow.generation).not.toBe(before);
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
    expect(Date.now() - started).toBeLessThan(ACK_TIMEOUT_MS);
  });

  it('every replica, the one that made the change too, moves on', async () => {
    const [a, b, c] = [await replica(), await replica(), await replica(20)];
    const before = [a.generation, b.generation, c.generation];
    await b.changed();
    const after = [a.generation, b.generation, c.generation];
    after.forEach((g, i) => expect(g).toBeGreaterThan(before[i]!));
  });

  it('a change Redis cannot take still answers (it is committed), and this replica moves on', async () => {
    const admin = await replica();
    const before = admin.generation!;
    replicas[0].connections.command.disconnect();
    await expect(admin.changed()).resolves.toBeUndefined();
    expect(admin.generation).toBeGreaterThan(before);
  });

  it('a receiver that never acknowledges holds a change back for ACK_TIMEOUT_MS, no longer', async () => {
    const admin = await replica();
    const deaf = testRedis();
    await deaf.subscribe(`${prefix}cache:invalidate`);
    try {
      const started = Date.now();
      await admin.changed();
      const took = Date.now() - started;
      expect(took).toBeGreaterThanOrEqual(ACK_TIMEOUT_MS - 10);
      expect(took).toBeLessThan(ACK_TIMEOUT_MS + 1_000);
    } finally {
      deaf.disconnect();
    }
  });
});
