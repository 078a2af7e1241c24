import { createPrismaClient } from '@pipedec/db';
import pg from 'pg';
import { createTestDatabase } from './database.js';
import { deleteRedisPrefix, redisPrefix, testRedis } from './redis.js';
import { testEnv } from './config.js';

async function databaseExists(name: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: testEnv().TEST_POSTGRES_URL });
  await client.connect();
  try {
    const r = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    return r.rowCount === 1;
  } finally {
    await client.end();
  }
}

describe('createTestDatabase', () => {
  it('creates a migrated database of its own and drops it', async () => {
    const db = await createTestDatabase();
    expect(db.name).toMatch(/^pipedec_test_[0-9a-f]{12}$/);
    const prisma = createPrismaClient(db.url, { poolSize: 1 });
    try {
      // Tables from the committed migrations exist and are empty.
      expect(await prisma.tenant.count()).toBe(0);
      const rows = await prisma.$queryRaw<{ n: bigint }[]>`
        SELECT count(*) AS n FROM _prisma_migrations WHERE finished_at IS NOT NULL`;
      expect(Number(rows[0].n)).toBeGreaterThanOrEqual(1);
    } finally {
      await prisma.$disconnect();
    }
    expect(await databaseExists(db.name)).toBe(true);
    await db.drop();
    expect(await databaseExists(db.name)).toBe(false);
  }, 60_000);
});

describe('redisPrefix', () => {
  it('gives each run its own prefix and removes only its keys', async () => {
    const a = redisPrefix();
    const b = redisPrefix();
    expect(a).not.toBe(b);
    const redis = testRedis();
    try {
      await redis.set(`${a}x`, '1');
      await redis.set(`${a}y`, '1');
      await redis.set(`${b}x`, '1');
      expect(await deleteRedisPrefix(redis, a)).toBe(2);
      expect(await redis.exists(`${a}x`, `${a}y`)).toBe(0);
      expect(await redis.get(`${b}x`)).toBe('1');
      await deleteRedisPrefix(redis, b);
    } finally {
      redis.disconnect();
    }
  });
});
