// A tenant's effective limits: its plan's values, each overridable per tenant. Pure, so the
// quota guard and the admin views compute them the same way.
import type { Plan, Tenant } from '@pipedec/db';

export interface TenantLimits {
  requestsPerMinute: number;
  tokensPerMinute: number;
  tokensPerMonth: number;
  concurrentRequests: number;
  maxPromptTokens: number;
  maxOutputTokens: number;
}

export interface TenantPricing {
  priority: number;
  priceInputPer1kMicros: bigint;
  priceOutputPer1kMicros: bigint;
}

export function effectiveLimits(tenant: Tenant, plan: Plan): TenantLimits {
  return {
    requestsPerMinute: tenant.requestsPerMinute ?? plan.requestsPerMinute,
    tokensPerMinute: tenant.tokensPerMinute ?? plan.tokensPerMinute,
    tokensPerMonth: Number(tenant.tokensPerMonth ?? plan.tokensPerMonth),
    concurrentRequests: tenant.concurrentRequests ?? plan.concurrentRequests,
    maxPromptTokens: tenant.maxPromptTokens ?? plan.maxPromptTokens,
    maxOutputTokens: tenant.maxOutputTokens ?? plan.maxOutputTokens,
  };
}

export function pricingOf(plan: Plan): TenantPricing {
  return {
    priority: plan.priority,
    priceInputPer1kMicros: plan.priceInputPer1kMicros,
    priceOutputPer1kMicros: plan.priceOutputPer1kMicros,
  };
}

/** Cost in micro-dollars, rounded up per request so nothing is given away by rounding. */
export function costMicros(
  pricing: TenantPricing,
  promptTokens: number,
  completionTokens: number,
): bigint {
  const total =
    BigInt(promptTokens) * pricing.priceInputPer1kMicros +
    BigInt(completionTokens) * pricing.priceOutputPer1kMicros;
  return (total + 999n) / 1000n;
}
