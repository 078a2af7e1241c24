import { Injectable } from '@nestjs/common';
import {
  fieldLabel,
  type CreatePlan,
  type CreateTenant,
  type UpdatePlan,
  type UpdateTenant,
} from '@pipedec/contracts';
import { Prisma, type Plan, type Tenant } from '@pipedec/db';
import { AuditService } from '../audit/audit.service.js';
import { Errors } from '../common/errors.js';
import { CacheInvalidation, ReadThroughCache } from '../infra/cache-invalidation.js';
import { effectiveLimits, pricingOf, type TenantLimits, type TenantPricing } from './limits.js';
import { TenantsRepository } from './tenants.repository.js';

export interface TenantContext {
  tenant: Tenant;
  plan: Plan;
  limits: TenantLimits;
  pricing: TenantPricing;
}

/**
 * How long a replica trusts a tenant's context without reading it again. Changes through the
 * API apply at once on every replica (CacheInvalidation); this bounds changes behind its back.
 */
const CONTEXT_TTL_MS = 10_000;

@Injectable()
export class TenantsService {
  private readonly cache: ReadThroughCache<TenantContext>;

  constructor(
    private readonly repo: TenantsRepository,
    private readonly audit: AuditService,
    private readonly invalidation: CacheInvalidation,
  ) {
    this.cache = new ReadThroughCache(invalidation, CONTEXT_TTL_MS);
  }

  async context(tenantId: string): Promise<TenantContext> {
    const ctx = await this.cache.get(tenantId, async () => {
      const row = await this.repo.withPlan(tenantId);
      if (!row) return null;
      return {
        tenant: row,
        plan: row.plan,
        limits: effectiveLimits(row, row.plan),
        pricing: pricingOf(row.plan),
      };
    });
    if (!ctx) throw Errors.notFound('Tenant', tenantId);
    return ctx;
  }

  async list() {
    return (await this.repo.listWithPlans()).map((t) => view(t, t.plan));
  }

  async get(tenantId: string) {
    const ctx = await this.context(tenantId);
    return view(ctx.tenant, ctx.plan);
  }

  async plans() {
    return (await this.repo.listPlans()).map(planView);
  }

  async createPlan(input: CreatePlan, actor: string) {
    try {
      return await this.repo.transaction(async (tx) => {
        await uniqueName(tx, 'plan', input.name);
        const plan = await tx.plan.create({ data: planData(input) });
        await this.audit.record(
          {
            actor,
            action: 'plan.create',
            targetType: 'plan',
            targetId: plan.id,
            details: { ...input },
          },
          tx,
        );
        return planView(plan);
      });
    } catch (e) {
      if (e instanceof Prisma.PrismaClientKnownRequestError && e.code === 'P2002') {
        throw Errors.conflict('plan_exists', `a plan named "${input.name}" already exists`);
      }
      throw e;
    }
  }

  /** Changes a plan's limits or prices; every tenant on it follows (unless overridden). */
  async updatePlan(name: string, input: UpdatePlan, actor: string) {
    const result = await this.repo.transaction(async (tx) => {
      const existing = await tx.plan.findUnique({ where: { name } });
      if (!existing) throw Errors.notFound('Plan', name);
      const plan = await tx.plan.update({ where: { name }, data: planData(input) });
      await this.audit.record(
        {
          actor,
          action: 'plan.update',
          targetType: 'plan',
          targetId: plan.id,
          details: { name, ...input },
        },
        tx,
      );
      return planView(plan);
    });
    await this.invalidation.changed();
    return result;
  }

  async create(input: CreateTenant, actor: string) {
    const plan = await this.repo.planByName(input.plan);
    if (!plan) throw Errors.invalid('unknown_plan', `plan "${input.plan}" does not exist`, 'plan');
    const { plan: _plan, name, ...overrides } = input;
    try {
      return await this.repo.transaction(async (tx) => {
        await uniqueName(tx, 'tenant', name);
        const tenant = await tx.tenant.create({
          data: { name, planId: plan.id, ...bigintOverrides(overrides) },
        });
        await this.audit.record(
          {
            actor,
            action: 'tenant.create',
            targetType: 'tenant',
            targetId: tenant.id,
            tenantId: tenant.id,
            details: { ...input },
          },
          tx,
        );
        return view(tenant, plan);
      });
    } catch (e) {
      if (e instanceof Prisma.PrismaClientKnownRequestError && e.code === 'P2002') {
        throw Errors.conflict('tenant_exists', `a tenant named "${name}" already exists`);
      }
      throw e;
    }
  }

  async update(tenantId: string, input: UpdateTenant, actor: string) {
    const { plan: planName, expectedUpdatedAt, ...rest } = input;
    const plan = planName ? await this.repo.planByName(planName) : undefined;
    if (planName && !plan)
      throw Errors.invalid('unknown_plan', `plan "${planName}" does not exist`, 'plan');
    const result = await this.repo.transaction(async (tx) => {
      // FOR UPDATE: a concurrent save waits here, then sees this one's updatedAt and is refused.
      const locked = await tx.$queryRaw<{ updatedAt: Date }[]>`
        SELECT "updatedAt" FROM "Tenant" WHERE id = ${tenantId}::uuid FOR UPDATE`;
      if (locked.length === 0) throw Errors.notFound('Tenant', tenantId);
      if (
        expectedUpdatedAt !== undefined &&
        locked[0].updatedAt.getTime() !== Date.parse(expectedUpdatedAt)
      ) {
        throw await staleEdit(tx, tenantId, new Date(expectedUpdatedAt));
      }
      const tenant = await tx.tenant.update({
        where: { id: tenantId },
        data: { ...bigintOverrides(rest), ...(plan ? { planId: plan.id } : {}) },
        include: { plan: true },
      });
      await this.audit.record(
        {
          actor,
          action: 'tenant.update',
          targetType: 'tenant',
          targetId: tenantId,
          tenantId,
          details: { ...rest, ...(planName ? { plan: planName } : {}) },
        },
        tx,
      );
      return view(tenant, tenant.plan);
    });
    await this.invalidation.changed();
    return result;
  }
}

type Tx = Parameters<Parameters<TenantsRepository['transaction']>[0]>[0];

/**
 * Names are unique ignoring case ("Pro" and "pro" would be two plans an operator cannot tell
 * apart in a picker). The advisory lock serialises concurrent creates of either kind, so two
 * requests cannot both pass the check.
 */
async function uniqueName(tx: Tx, kind: 'plan' | 'tenant', name: string): Promise<void> {
  await tx.$queryRaw`SELECT 1 AS locked FROM pg_advisory_xact_lock(hashtext(${`pipedec:${kind}-names`}))`;
  const where = { name: { equals: name, mode: 'insensitive' as const } };
  const clash =
    kind === 'plan' ? await tx.plan.findFirst({ where }) : await tx.tenant.findFirst({ where });
  if (clash) {
    throw Errors.conflict(
      `${kind}_exists`,
      `a ${kind} named "${clash.name}" already exists (${kind} names are unique ignoring case)`,
    );
  }
}

/**
 * The 409 for a save from a form loaded before someone else's change: says who changed what,
 * from the audit log, so the operator knows what reloading will show.
 */
async function staleEdit(tx: Tx, tenantId: string, since: Date) {
  const changes = await tx.auditLog.findMany({
    where: { tenantId, action: 'tenant.update', at: { gt: since } },
    orderBy: { id: 'asc' },
    take: 20,
  });
  const fields = new Set<string>();
  for (const c of changes) {
    for (const [k, v] of Object.entries(c.details as Record<string, unknown>)) {
      if (v !== undefined) fields.add(fieldLabel(k));
    }
  }
  const who = [...new Set(changes.map((c) => c.actor))].join(', ');
  const what = fields.size > 0 ? ` (${[...fields].join(', ')})` : '';
  return Errors.conflict(
    'tenant_changed',
    `this tenant was changed${what}${who ? ` by ${who}` : ''} after you opened the form; ` +
      'reload the page to see the current values, then make your change again',
  );
}

function planData<T extends Partial<CreatePlan>>(p: T) {
  const { tokensPerMonth, priceInputPer1kMicros, priceOutputPer1kMicros, ...rest } = p;
  return {
    ...rest,
    ...(tokensPerMonth === undefined ? {} : { tokensPerMonth: BigInt(tokensPerMonth) }),
    ...(priceInputPer1kMicros === undefined
      ? {}
      : { priceInputPer1kMicros: BigInt(priceInputPer1kMicros) }),
    ...(priceOutputPer1kMicros === undefined
      ? {}
      : { priceOutputPer1kMicros: BigInt(priceOutputPer1kMicros) }),
  } as Omit<T, 'tokensPerMonth' | 'priceInputPer1kMicros' | 'priceOutputPer1kMicros'> & {
    tokensPerMonth: bigint;
    priceInputPer1kMicros: bigint;
    priceOutputPer1kMicros: bigint;
  };
}

function planView(p: Plan) {
  return {
    ...p,
    tokensPerMonth: Number(p.tokensPerMonth),
    priceInputPer1kMicros: Number(p.priceInputPer1kMicros),
    priceOutputPer1kMicros: Number(p.priceOutputPer1kMicros),
  };
}

function bigintOverrides<T extends { tokensPerMonth?: number | null }>(o: T) {
  const { tokensPerMonth, ...rest } = o;
  return {
    ...rest,
    ...(tokensPerMonth === undefined
      ? {}
      : { tokensPerMonth: tokensPerMonth === null ? null : BigInt(tokensPerMonth) }),
  };
}

function view(tenant: Tenant, plan: Plan) {
  return {
    id: tenant.id,
    name: tenant.name,
    status: tenant.status,
    plan: plan.name,
    limits: effectiveLimits(tenant, plan),
    overrides: {
      requestsPerMinute: tenant.requestsPerMinute,
      tokensPerMinute: tenant.tokensPerMinute,
      tokensPerMonth: tenant.tokensPerMonth === null ? null : Number(tenant.tokensPerMonth),
      concurrentRequests: tenant.concurrentRequests,
      maxPromptTokens: tenant.maxPromptTokens,
      maxOutputTokens: tenant.maxOutputTokens,
    },
    prices: {
      inputPer1kMicros: Number(plan.priceInputPer1kMicros),
      outputPer1kMicros: Number(plan.priceOutputPer1kMicros),
    },
    createdAt: tenant.createdAt,
    /** Sent back as expectedUpdatedAt by an editor, so a stale save is refused. */
    updatedAt: tenant.updatedAt,
  };
}
