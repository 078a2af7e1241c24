import type { Metadata } from 'next';
import Link from 'next/link';
import { load, tryLoad } from '@/lib/api-client';
import { apiKeySchema, listOf, tenantSchema } from '@/lib/schemas';
import { PlaygroundClient, type KeyChoice } from './page-client';

export const metadata: Metadata = { title: 'Playground' };

export default async function PlaygroundPage() {
  const tenants = (await load('/admin/tenants', listOf(tenantSchema))).data;
  const keyLists = await Promise.all(
    tenants.map((t) => tryLoad(`/admin/tenants/${t.id}/keys`, listOf(apiKeySchema))),
  );
  const choices: KeyChoice[] = tenants.flatMap((t, i) => {
    const keys = keyLists[i];
    if (!keys.ok) return [];
    return keys.data.data
      .filter((k) => k.status === 'active' && k.scopes.includes('generate'))
      .map((k) => ({
        tenantId: t.id,
        tenantName: t.name,
        keyId: k.id,
        prefix: k.prefix,
        name: k.name,
      }));
  });
  return (
    <>
      <h1>Playground</h1>
      {choices.length === 0 ? (
        <div className="empty">
          <p>No active key with the “generate” scope.</p>
          <p>
            <Link href="/keys">Create a key</Link> for a tenant, then come back.
          </p>
        </div>
      ) : (
        <PlaygroundClient choices={choices} />
      )}
    </>
  );
}
