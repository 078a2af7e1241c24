export { testEnv, testEnvShape } from './config.js';
export {
  createPrismaClient,
  createTestDatabase,
  seedDemo,
  type PrismaClient,
  type TestDatabase,
} from './database.js';
export { deleteRedisPrefix, redisPrefix, testRedis } from './redis.js';
