import { Global, Module } from '@nestjs/common';
import { Clock } from './clock.js';
import { Database } from './prisma.provider.js';
import { RedisConnections } from './redis.provider.js';

@Global()
@Module({
  providers: [Database, RedisConnections, Clock],
  exports: [Database, RedisConnections, Clock],
})
export class InfraModule {}
