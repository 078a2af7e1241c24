import { Injectable } from '@nestjs/common';
import type { AuditPage, AuditQuery } from '@pipedec/contracts';
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

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

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

  /** A page of the log, newest first (see auditQuerySchema for the filters). */
  async list(q: AuditQuery): Promise<AuditPage> {
    const where: Prisma.AuditLogWhereInput = {};
    if (q.tenantId) where.tenantId = q.tenantId;
    if (q.action) where.action = q.action.endsWith('.') ? { startsWith: q.action } : q.action;
    if (q.from || q.to) {
      where.at = {
        ...(q.from ? { gte: new Date(q.from) } : {}),
        ...(q.to ? { lt: new Date(q.to) } : {}),
      };
    }
    if (q.before) where.id = { lt: BigInt(q.before) };
    if (q.actor) {
      const admins = await this.db.client.adminUser.findMany({
        where: { email: { contains: q.actor, mode: 'insensitive' } },
        select: { id: true },
      });
      where.OR = [
        { actor: { contains: q.actor, mode: 'insensitive' } },
        { actor: { in: admins.map((a) => `admin:${a.id}`) } },
      ];
    }
    const rows = await this.db.client.auditLog.findMany({
      where,
      orderBy: { id: 'desc' },
      take: q.limit,
    });
    const adminIds = [
      ...new Set(rows.flatMap((r) => (r.actor.startsWith('admin:') ? [r.actor.slice(6)] : []))),
    ].filter((id) => UUID.test(id));
    const emails = new Map(
      (
        await this.db.client.adminUser.findMany({
          where: { id: { in: adminIds } },
          select: { id: true, email: true },
        })
      ).map((a) => [`admin:${a.id}`, a.email]),
    );
    return {
      data: rows.map((r) => ({
        id: r.id.toString(),
        at: r.at.toISOString(),
        actor: r.actor,
        actorEmail: emails.get(r.actor) ?? null,
        action: r.action,
        targetType: r.targetType,
        targetId: r.targetId,
        tenantId: r.tenantId,
        details: (r.details ?? {}) as Record<string, unknown>,
      })),
      nextBefore: rows.length === q.limit ? rows[rows.length - 1].id.toString() : null,
    };
  }
}
