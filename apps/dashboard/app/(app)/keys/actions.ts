'use server';
import {
  API_KEY_SCOPES,
  createApiKeySchema,
  GRACE_MAX_SECONDS,
  KEY_EXPIRY_MAX_DAYS,
  rotateApiKeySchema,
} from '@pipedec/contracts/http';
import { revalidatePath } from 'next/cache';
import { z } from 'zod';
import { failure } from '@/lib/action-state';
import { apiCall } from '@/lib/api-client';
import { boundedFormInt, FormError, text } from '@/lib/form-data';
import { apiKeySchema, createdApiKeySchema } from '@/lib/schemas';

export interface KeyActionState {
  error: string | null;
  ok: string | null;
  /** The secret, in this one reply only: shown once, never stored by the dashboard. */
  reveal: { name: string; prefix: string; secret: string } | null;
}

const uuid = z.uuid();

function refused(error: unknown): KeyActionState {
  if (error instanceof FormError) return { error: error.message, ok: null, reveal: null };
  if (error instanceof z.ZodError) {
    return {
      error: error.issues.map((i) => `${i.path.join('.') || 'form'}: ${i.message}`).join('; '),
      ok: null,
      reveal: null,
    };
  }
  return { ...failure(error), reveal: null };
}

export async function createKey(
  tenantId: string,
  _prev: KeyActionState,
  form: FormData,
): Promise<KeyActionState> {
  try {
    // "Never" is a choice of its own; a number of days is 1..KEY_EXPIRY_MAX_DAYS.
    const never = text(form, 'expiry') !== 'days';
    const days = never
      ? null
      : boundedFormInt(form, 'expiresInDays', 'expiry in days', 1, KEY_EXPIRY_MAX_DAYS);
    const body = createApiKeySchema.parse({
      name: text(form, 'name'),
      scopes: form.getAll('scopes').filter((s) => API_KEY_SCOPES.includes(s as never)),
      expiresAt: days === null ? null : new Date(Date.now() + days * 86400_000).toISOString(),
    });
    const key = await apiCall(
      'POST',
      `/admin/tenants/${uuid.parse(tenantId)}/keys`,
      createdApiKeySchema,
      {
        body,
      },
    );
    revalidatePath('/keys');
    return {
      error: null,
      ok: `Key ${key.name} created.`,
      reveal: { name: key.name, prefix: key.prefix, secret: key.secret },
    };
  } catch (error) {
    return refused(error);
  }
}

export async function rotateKey(
  tenantId: string,
  keyId: string,
  _prev: KeyActionState,
  form: FormData,
): Promise<KeyActionState> {
  try {
    const hours =
      text(form, 'graceHours') === ''
        ? 0
        : boundedFormInt(form, 'graceHours', 'grace period in hours', 0, GRACE_MAX_SECONDS / 3600);
    const body = rotateApiKeySchema.parse({ gracePeriodSeconds: hours * 3600 });
    const key = await apiCall(
      'POST',
      `/admin/tenants/${uuid.parse(tenantId)}/keys/${uuid.parse(keyId)}/rotate`,
      createdApiKeySchema,
      { body },
    );
    revalidatePath('/keys');
    return {
      error: null,
      ok: `Key ${key.name} rotated${hours ? `; the old secret works for ${hours} h more` : ''}.`,
      reveal: { name: key.name, prefix: key.prefix, secret: key.secret },
    };
  } catch (error) {
    return refused(error);
  }
}

export async function revokeKey(
  tenantId: string,
  keyId: string,
  _prev: KeyActionState,
  _form: FormData,
): Promise<KeyActionState> {
  try {
    const key = await apiCall(
      'POST',
      `/admin/tenants/${uuid.parse(tenantId)}/keys/${uuid.parse(keyId)}/revoke`,
      apiKeySchema,
    );
    revalidatePath('/keys');
    return { error: null, ok: `Key ${key.prefix}… revoked.`, reveal: null };
  } catch (error) {
    return refused(error);
  }
}
