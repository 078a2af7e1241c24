import type { Metadata } from 'next';
import Link from 'next/link';
import { load, tryLoad } from '@/lib/api-client';
import { apiKeySchema, listOf, tenantSchema } from '@/lib/schemas';
import { ErrorState } from '../_components/error-state';
import { KeysClient } from './page-client';

export const metadata: Metadata = { title: 'API keys' };

export default async function KeysPage({
  searchParams,
}: {
  searchParams: Promise<Record<string, string | string[] | undefined>>;
}) {
  const params = await searchParams;
  const tenants = (await load('/admin/tenants', listOf(tenantSchema))).data;
  const tenant = tenants.find((t) => t.id === params.tenant) ?? tenants[0];
  const prefix = typeof params.prefix === 'string' ? params.prefix.trim() : '';
  const keys = tenant
    ? await tryLoad(`/admin/tenants/${tenant.id}/keys`, listOf(apiKeySchema))
    : null;
  return (
    <>
      <div className="page-head">
        <h1>API keys</h1>
        {tenant && (
          <form method="get" className="filters" aria-label="Choose keys">
            <label>
              Tenant
              <select name="tenant" defaultValue={tenant.id}>
                {tenants.map((t) => (
                  <option key={t.id} value={t.id}>
                    {t.name}
                  </option>
                ))}
              </select>
            </label>
            <label>
              Prefix starts with
              <input name="prefix" defaultValue={prefix} placeholder="pd_…" autoComplete="off" />
            </label>
            <button type="submit">Show</button>
          </form>
        )}
      </div>
      {!tenant ? (
        <div className="empty">
          <p>No tenants yet: keys belong to a tenant.</p>
          <p>
            <Link href="/tenants#create">Create a tenant</Link> first.
          </p>
        </div>
      ) : keys && !keys.ok ? (
        <ErrorState error={keys.error} what={`${tenant.name}'s keys`} />
      ) : (
        <KeysClient
          tenantId={tenant.id}
          tenantName={tenant.name}
          prefix={prefix}
          keys={(keys?.ok ? keys.data.data : []).filter((k) => k.prefix.startsWith(prefix))}
          total={keys?.ok ? keys.data.data.length : 0}
        />
      )}
    </>
  );
}
