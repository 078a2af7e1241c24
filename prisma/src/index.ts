export { createPrismaClient, type DbClientOptions, type PgPool } from './client.js';
export { dbEnvShape, parseDbConfig, seedEnvShape, type DbConfig } from './config.js';
export { migrateDeploy, MigrationError } from './migrate.js';
export { createPgPool, connectionParams } from './pg-pool.js';
export {
  API_KEY_PREFIX,
  digestsEqual,
  hashApiKeySecret,
  hashPassword,
  newApiKeySecret,
  verifyPassword,
  type NewApiKeySecret,
} from './secrets.js';
export { DEMO_PLAN, DEMO_SCOPES, seedDemo, type SeedOptions, type SeedResult } from './seed.js';
export * from '@prisma/client';
