import { PrismaPg } from '@prisma/adapter-pg';
import { PrismaClient } from '@prisma/client';
import { createPgPool } from './pg-pool.js';

export interface DbClientOptions {
  /** Pool size; the API's concurrency is bounded by quotas, so a small pool suffices. */
  poolSize?: number;
  /** Let the process exit while idle connections remain (scripts, tests). */
  allowExitOnIdle?: boolean;
}

/**
 * A Prisma client over a pg pool (query compiler + driver adapter: no native engine).
 * `$disconnect()` also ends the pool.
 */
export function createPrismaClient(url: string, options: DbClientOptions = {}): PrismaClient {
  const pool = createPgPool(url, {
    max: options.poolSize ?? 10,
    allowExitOnIdle: options.allowExitOnIdle ?? false,
  });
  return new PrismaClient({ adapter: new PrismaPg(pool, { disposeExternalPool: true }) });
}
