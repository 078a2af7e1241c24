import { Global, Module } from '@nestjs/common';
import { CacheInvalidation } from './cache-invalidation.js';
import { Clock } from './clock.js';
import { Database } from './prisma.provider.js';
import { RedisConnections } from './redis.provider.js';

@Global()
@Module({
  providers: [Database, RedisConnections, Clock, CacheInvalidation],
  exports: [Database, RedisConnections, Clock, CacheInvalidation],
})
export class InfraModule {}
