import { Inject, Injectable, type OnModuleDestroy } from '@nestjs/common';
import { createPrismaClient, type PrismaClient } from '@pipedec/db';
import { API_CONFIG, type ApiConfig } from '../config/api-config.js';

/** Owns the API's Prisma client; repositories receive it through `client`. */
@Injectable()
export class Database implements OnModuleDestroy {
  readonly client: PrismaClient;

  constructor(@Inject(API_CONFIG) config: ApiConfig) {
    this.client = createPrismaClient(config.DATABASE_URL, { poolSize: 10 });
  }

  async ping(): Promise<void> {
    await this.client.$queryRaw`SELECT 1`;
  }

  async onModuleDestroy(): Promise<void> {
    await this.client.$disconnect();
  }
}
