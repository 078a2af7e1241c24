import { randomBytes } from 'node:crypto';
import { createPgPool, migrateDeploy } from '@pipedec/db';

// For tests of apps that do not use the database themselves (the dashboard's stack seeds it).
export { createPrismaClient, seedDemo, type PrismaClient } from '@pipedec/db';
import { testEnv } from './config.js';

export interface TestDatabase {
  /** Connection URL of the new database, migrations applied. */
  url: string;
  name: string;
  /** Drops the database, closing whatever connections are still open to it. */
  drop(): Promise<void>;
}

/**
 * A fresh database `pipedec_test_<random>` with the committed migrations applied, so test
 * files and concurrent runs never share tables. Close your clients before `drop()`; it
 * forces any that remain.
 */
export async function createTestDatabase(): Promise<TestDatabase> {
  const serverUrl = testEnv().TEST_POSTGRES_URL;
  const name = `pipedec_test_${randomBytes(6).toString('hex')}`;
  const admin = createPgPool(serverUrl, { max: 1, allowExitOnIdle: true });
  try {
    await admin.query(`CREATE DATABASE "${name}"`);
  } finally {
    await admin.end();
  }
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  const dbUrl = url.toString();
  try {
    await migrateDeploy(dbUrl);
  } catch (error) {
    await dropDatabase(serverUrl, name);
    throw error;
  }
  return { url: dbUrl, name, drop: () => dropDatabase(serverUrl, name) };
}

async function dropDatabase(serverUrl: string, name: string): Promise<void> {
  const admin = createPgPool(serverUrl, { max: 1, allowExitOnIdle: true });
  try {
    await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  } finally {
    await admin.end();
  }
}
