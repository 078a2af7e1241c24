export { testEnv, testEnvShape } from './config.js';
export { createTestDatabase, type TestDatabase } from './database.js';
export { deleteRedisPrefix, redisPrefix, testRedis } from './redis.js';
