import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { testEnv } from './config.js';

/** A key prefix unique to this test run, e.g. `test:3f9a1c2b:`. Pass it to every Redis user. */
export function redisPrefix(): string {
  return `test:${randomBytes(4).toString('hex')}:`;
}

/** A Redis connection to the test server (close it yourself). */
export function testRedis(): Redis {
  return new Redis(testEnv().TEST_REDIS_URL, { maxRetriesPerRequest: null, lazyConnect: false });
}

/** Deletes every key under `prefix`; returns how many were deleted. */
export async function deleteRedisPrefix(redis: Redis, prefix: string): Promise<number> {
  let cursor = '0';
  let deleted = 0;
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${escapeGlob(prefix)}*`, 'COUNT', 500);
    cursor = next;
    if (keys.length > 0) deleted += await redis.del(...keys);
  } while (cursor !== '0');
  return deleted;
}

function escapeGlob(s: string): string {
  return s.replace(/[*?[\]\\]/g, (c) => `\\${c}`);
}
