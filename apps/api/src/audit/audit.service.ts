import { Injectable } from '@nestjs/common';
import type { Prisma } from '@pipedec/db';
import { Database } from '../infra/prisma.provider.js';

export interface AuditEntry {
  /** "admin:<id>", "system:<what>" */
  actor: string;
  action: string;
  targetType: string;
  targetId?: string;
  tenantId?: string;
  /** Never secrets: name keys by id and visible prefix. */
  details?: Prisma.InputJsonObject;
}

type Tx = Pick<Database['client'], 'auditLog'>;

/** Writes the audit log; pass the transaction of the change so both commit together. */
@Injectable()
export class AuditService {
  constructor(private readonly db: Database) {}

  async record(entry: AuditEntry, tx: Tx = this.db.client): Promise<void> {
    await tx.auditLog.create({
      data: {
        actor: entry.actor,
        action: entry.action,
        targetType: entry.targetType,
        targetId: entry.targetId ?? null,
        tenantId: entry.tenantId ?? null,
        details: entry.details ?? {},
      },
    });
  }

  async list(options: { tenantId?: string; limit: number }) {
    const rows = await this.db.client.auditLog.findMany({
      where: options.tenantId ? { tenantId: options.tenantId } : {},
      orderBy: { id: 'desc' },
      take: options.limit,
    });
    return rows.map((r) => ({ ...r, id: r.id.toString() }));
  }
}
