import { Injectable } from '@nestjs/common';
import { Prisma, type ApiKey, type ApiKeyStatus, type TenantStatus } from '@pipedec/db';
import { Database } from '../infra/prisma.provider.js';

export type Tx = Prisma.TransactionClient;

/** What authentication reads of a key and its tenant. */
export interface KeyForAuth {
  id: string;
  tenantId: string;
  secretHash: string;
  previousSecretHash: string | null;
  previousExpiresAt: Date | null;
  scopes: string[];
  status: ApiKeyStatus;
  expiresAt: Date | null;
  tenantStatus: TenantStatus;
}

/** Data access for API keys. Every method except the hash lookup takes the tenant id. */
@Injectable()
export class ApiKeysRepository {
  constructor(private readonly db: Database) {}

  /**
   * Authentication: the key whose current or (unexpired) previous secret has this hash. Runs
   * on every request, so it is one plain SQL statement: Prisma's query compiler costs about a
   * millisecond of CPU per call, which capped admission throughput (bench/api.bench.ts).
   */
  async findByHash(hash: string): Promise<KeyForAuth | null> {
    const rows = await this.db.client.$queryRaw<KeyForAuth[]>(Prisma.sql`
      SELECT k."id", k."tenantId", k."secretHash", k."previousSecretHash", k."previousExpiresAt",
             k."scopes", k."status"::text AS "status", k."expiresAt",
             t."status"::text AS "tenantStatus"
      FROM "ApiKey" k JOIN "Tenant" t ON t."id" = k."tenantId"
      WHERE k."secretHash" = ${hash} OR k."previousSecretHash" = ${hash}
      LIMIT 1`);
    return rows[0] ?? null;
  }

  list(tenantId: string) {
    return this.db.client.apiKey.findMany({ where: { tenantId }, orderBy: { createdAt: 'asc' } });
  }

  find(tenantId: string, keyId: string, tx: Tx = this.db.client) {
    return tx.apiKey.findFirst({ where: { id: keyId, tenantId } });
  }

  create(tenantId: string, data: Omit<Prisma.ApiKeyUncheckedCreateInput, 'tenantId'>, tx: Tx) {
    return tx.apiKey.create({ data: { ...data, tenantId } });
  }

  update(tenantId: string, keyId: string, data: Prisma.ApiKeyUpdateManyMutationInput, tx: Tx) {
    return tx.apiKey.updateManyAndReturn({ where: { id: keyId, tenantId }, data });
  }

  /** Records use at most once a minute per key, so authentication stays a read. */
  async touch(tenantId: string, keyId: string, now: Date): Promise<void> {
    await this.db.client.apiKey.updateMany({
      where: {
        id: keyId,
        tenantId,
        OR: [{ lastUsedAt: null }, { lastUsedAt: { lt: new Date(now.getTime() - 60_000) } }],
      },
      data: { lastUsedAt: now },
    });
  }

  transaction<T>(fn: (tx: Tx) => Promise<T>): Promise<T> {
    return this.db.client.$transaction(fn);
  }
}

/** What admin endpoints show of a key: never the hash. */
export function publicKey(k: ApiKey) {
  return {
    id: k.id,
    tenantId: k.tenantId,
    name: k.name,
    prefix: k.prefix,
    scopes: k.scopes,
    status: k.status,
    expiresAt: k.expiresAt,
    lastUsedAt: k.lastUsedAt,
    revokedAt: k.revokedAt,
    previousSecretExpiresAt: k.previousExpiresAt,
    createdAt: k.createdAt,
  };
}
