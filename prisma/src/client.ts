import { PrismaPg } from '@prisma/adapter-pg';
import { PrismaClient } from '@prisma/client';
import type pg from 'pg';
import { createPgPool } from './pg-pool.js';

export type PgPool = pg.Pool;

export interface DbClientOptions {
  /** Pool size; the API's concurrency is bounded by quotas, so a small pool suffices. */
  poolSize?: number;
  /** Let the process exit while idle connections remain (scripts, tests). */
  allowExitOnIdle?: boolean;
  /**
   * Run over this pool (from createPgPool) instead of one of its own, so plain pg queries and
   * Prisma share connections. `poolSize` and `allowExitOnIdle` are then the pool's business.
   */
  pool?: PgPool;
}

/**
 * A Prisma client over a pg pool (query compiler + driver adapter: no native engine).
 * `$disconnect()` also ends the pool.
 */
export function createPrismaClient(url: string, options: DbClientOptions = {}): PrismaClient {
  const pool =
    options.pool ??
    createPgPool(url, {
      max: options.poolSize ?? 10,
      allowExitOnIdle: options.allowExitOnIdle ?? false,
    });
  return new PrismaClient({ adapter: new PrismaPg(pool, { disposeExternalPool: true }) });
}
