import { Inject, Injectable, type OnModuleDestroy } from '@nestjs/common';
import { createPgPool, createPrismaClient, type PgPool, type PrismaClient } from '@pipedec/db';
import { API_CONFIG, type ApiConfig } from '../config/api-config.js';

/**
 * Owns the API's database connections; repositories receive them as `client` (Prisma) and
 * `pool` (plain pg, the same connections). Statements on every request's path use `pool`:
 * even a raw statement through Prisma costs about 0.5 ms more CPU (bench/api.bench.ts).
 */
@Injectable()
export class Database implements OnModuleDestroy {
  readonly pool: PgPool;
  readonly client: PrismaClient;

  constructor(@Inject(API_CONFIG) config: ApiConfig) {
    this.pool = createPgPool(config.DATABASE_URL, { max: 10 });
    // Prisma ends the pool on $disconnect.
    this.client = createPrismaClient(config.DATABASE_URL, { pool: this.pool });
  }

  async ping(): Promise<void> {
    await this.client.$queryRaw`SELECT 1`;
  }

  async onModuleDestroy(): Promise<void> {
    await this.client.$disconnect();
  }
}
