import { Injectable } from '@nestjs/common';
import type { Prisma } from '@pipedec/db';
import { Database } from '../infra/prisma.provider.js';

@Injectable()
export class TenantsRepository {
  constructor(private readonly db: Database) {}

  withPlan(tenantId: string) {
    return this.db.client.tenant.findUnique({ where: { id: tenantId }, include: { plan: true } });
  }

  listWithPlans() {
    return this.db.client.tenant.findMany({
      include: { plan: true },
      orderBy: { createdAt: 'asc' },
    });
  }

  planByName(name: string) {
    return this.db.client.plan.findUnique({ where: { name } });
  }

  listPlans() {
    return this.db.client.plan.findMany({ orderBy: { priority: 'asc' } });
  }

  transaction<T>(fn: (tx: Prisma.TransactionClient) => Promise<T>): Promise<T> {
    return this.db.client.$transaction(fn);
  }
}
