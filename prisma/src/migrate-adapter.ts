import { randomUUID } from 'node:crypto';
import { PrismaPg } from '@prisma/adapter-pg';
import type { SqlMigrationAwareDriverAdapterFactory } from '@prisma/driver-adapter-utils';
import { connectionParams, createPgPool } from './pg-pool.js';

/**
 * The driver adapter for Prisma's JavaScript schema engine (`engine: "js"`), working around
 * two problems of @prisma/adapter-pg 6.19 (see environment.md):
 * - its own shadow database copies the pool options; with a connectionString the copy still
 *   points at the main database. We create the shadow database ourselves from parts.
 * - it drops the shadow database before closing that database's pool, which fails while
 *   connections are open. We close the pool first, then DROP ... WITH (FORCE).
 * Pools allow exit on idle, so the CLI process ends when the work is done.
 */
export function migrationAdapterFactory(url: string): SqlMigrationAwareDriverAdapterFactory {
  const main = new PrismaPg(createPgPool(url, { allowExitOnIdle: true, max: 2 }), {
    disposeExternalPool: true,
  });
  return {
    provider: 'postgres',
    adapterName: main.adapterName,
    connect: () => main.connect(),
    connectToShadowDb: async () => {
      const database = `prisma_shadow_${randomUUID().replaceAll('-', '')}`;
      const admin = createPgPool(url, { allowExitOnIdle: true, max: 1 });
      await admin.query(`CREATE DATABASE "${database}"`);
      const shadowUrl = new URL(url);
      shadowUrl.pathname = `/${database}`;
      // Its connections end when the shadow database is dropped; that is expected.
      const pool = createPgPool(shadowUrl.toString(), {
        allowExitOnIdle: true,
        max: 2,
        onIdleError: () => undefined,
      });
      const adapter = await new PrismaPg(pool).connect();
      const dispose = adapter.dispose.bind(adapter);
      adapter.dispose = async () => {
        await dispose();
        await pool.end();
        await admin.query(`DROP DATABASE IF EXISTS "${database}" WITH (FORCE)`);
        await admin.end();
      };
      return adapter;
    },
  };
}

export { connectionParams };
