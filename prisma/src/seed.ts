import type { PrismaClient } from '@prisma/client';
import { hashPassword, newApiKeySecret } from './secrets.js';

export interface SeedOptions {
  adminEmail: string;
  adminPassword: string;
}

export interface SeedResult {
  tenantId: string;
  /** The demo key's secret, only when this run created the key (it cannot be shown again). */
  createdApiKey?: { id: string; secret: string };
  adminCreated: boolean;
}

export const DEMO_PLAN = {
  name: 'demo',
  priority: 1,
  requestsPerMinute: 60,
  tokensPerMinute: 20_000,
  tokensPerMonth: 1_000_000n,
  concurrentRequests: 4,
  maxPromptTokens: 1024,
  maxOutputTokens: 256,
  priceInputPer1kMicros: 500n,
  priceOutputPer1kMicros: 1500n,
};

export const DEMO_SCOPES = ['generate', 'read-usage'];

/**
 * Idempotent demo data: a plan, a tenant with one API key, and an admin user. Existing rows
 * are kept as they are (a rerun neither rotates the key nor resets the admin's password).
 */
export async function seedDemo(prisma: PrismaClient, options: SeedOptions): Promise<SeedResult> {
  const plan = await prisma.plan.upsert({
    where: { name: DEMO_PLAN.name },
    create: DEMO_PLAN,
    update: {},
  });
  const tenant = await prisma.tenant.upsert({
    where: { name: 'demo' },
    create: { name: 'demo', planId: plan.id },
    update: {},
  });
  const result: SeedResult = { tenantId: tenant.id, adminCreated: false };

  const keys = await prisma.apiKey.count({ where: { tenantId: tenant.id } });
  if (keys === 0) {
    const { secret, prefix, hash } = newApiKeySecret();
    const key = await prisma.apiKey.create({
      data: { tenantId: tenant.id, name: 'demo', prefix, secretHash: hash, scopes: DEMO_SCOPES },
    });
    await prisma.auditLog.create({
      data: {
        actor: 'system:seed',
        action: 'api_key.create',
        targetType: 'api_key',
        targetId: key.id,
        tenantId: tenant.id,
        details: { prefix, scopes: DEMO_SCOPES },
      },
    });
    result.createdApiKey = { id: key.id, secret };
  }

  const admin = await prisma.adminUser.findUnique({ where: { email: options.adminEmail } });
  if (!admin) {
    const created = await prisma.adminUser.create({
      data: {
        email: options.adminEmail,
        passwordHash: await hashPassword(options.adminPassword),
        role: 'admin',
      },
    });
    await prisma.auditLog.create({
      data: {
        actor: 'system:seed',
        action: 'admin_user.create',
        targetType: 'admin_user',
        targetId: created.id,
        details: { email: options.adminEmail, role: 'admin' },
      },
    });
    result.adminCreated = true;
  }
  return result;
}
