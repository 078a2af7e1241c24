'use server';
import { createTenantSchema, updateTenantSchema } from '@pipedec/contracts/http';
import { revalidatePath } from 'next/cache';
import { redirect } from 'next/navigation';
import { z } from 'zod';
import { failure, type ActionState } from '@/lib/action-state';
import { apiCall } from '@/lib/api-client';
import { dollarsToMicros, FormError, optionalInt, text } from '@/lib/form-data';
import { LIMIT_FIELDS, planSchema, tenantSchema } from '@/lib/schemas';

function invalid(error: unknown): ActionState | null {
  if (error instanceof FormError) return { error: error.message, ok: null };
  if (error instanceof z.ZodError) {
    return {
      error: error.issues.map((i) => `${i.path.join('.') || 'form'}: ${i.message}`).join('; '),
      ok: null,
    };
  }
  return null;
}

export async function createTenant(_prev: ActionState, form: FormData): Promise<ActionState> {
  let id: string;
  try {
    const overrides = Object.fromEntries(
      LIMIT_FIELDS.map((f) => [f, optionalInt(form, f, undefined)]),
    );
    const body = createTenantSchema.parse({
      name: text(form, 'name'),
      plan: text(form, 'plan'),
      ...overrides,
    });
    id = (await apiCall('POST', '/admin/tenants', tenantSchema, { body })).id;
  } catch (error) {
    return invalid(error) ?? failure(error);
  }
  revalidatePath('/tenants');
  redirect(`/tenants/${id}?created=1`);
}

export async function updateTenant(
  tenantId: string,
  _prev: ActionState,
  form: FormData,
): Promise<ActionState> {
  try {
    const overrides = Object.fromEntries(LIMIT_FIELDS.map((f) => [f, optionalInt(form, f, null)]));
    const body = updateTenantSchema.parse({
      plan: text(form, 'plan') || undefined,
      status: text(form, 'status') || undefined,
      ...overrides,
      expectedUpdatedAt: text(form, 'expectedUpdatedAt') || undefined,
    });
    await apiCall('PATCH', `/admin/tenants/${tenantId}`, tenantSchema, { body });
  } catch (error) {
    return invalid(error) ?? failure(error);
  }
  revalidatePath(`/tenants/${tenantId}`);
  return { error: null, ok: 'Saved.' };
}

/**
 * Creates a plan, or updates the one named when `existing` is set. Prices are entered in
 * dollars per 1000 tokens and sent as integer micro-dollars, as the API stores them.
 */
export async function savePlan(
  existing: string | null,
  _prev: ActionState,
  form: FormData,
): Promise<ActionState> {
  try {
    const limits = Object.fromEntries(
      LIMIT_FIELDS.map((f) => {
        const v = optionalInt(form, f, null);
        if (v === null || v < 1) throw new FormError(`${f} must be at least 1`);
        return [f, v];
      }),
    );
    const body = {
      ...(existing ? {} : { name: text(form, 'name') }),
      priority: optionalInt(form, 'priority', null) ?? 0,
      ...limits,
      priceInputPer1kMicros: dollarsToMicros(form, 'priceInput'),
      priceOutputPer1kMicros: dollarsToMicros(form, 'priceOutput'),
    };
    if (!existing && !body.name) throw new FormError('name is required');
    if (existing) {
      await apiCall('PATCH', `/admin/plans/${encodeURIComponent(existing)}`, planSchema, { body });
    } else {
      await apiCall('POST', '/admin/plans', planSchema, { body });
    }
  } catch (error) {
    return invalid(error) ?? failure(error);
  }
  revalidatePath('/tenants');
  return { error: null, ok: existing ? 'Plan saved.' : 'Plan created.' };
}
