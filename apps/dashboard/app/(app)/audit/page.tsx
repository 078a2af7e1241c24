// The audit log: who changed what, newest first, filtered by tenant, actor, action and time
// (a plain GET form, so a filtered view is a link), a page at a time, and as CSV.
import type { Metadata } from 'next';
import { load } from '@/lib/api-client';
import { auditFilters, auditHref, loadAuditPage } from '@/lib/audit';
import { ApiError } from '@/lib/errors';
import { listOf, tenantSchema } from '@/lib/schemas';
import { ErrorState } from '../_components/error-state';

export const metadata: Metadata = { title: 'Audit log' };

export default async function AuditPage({
  searchParams,
}: {
  searchParams: Promise<Record<string, string | string[] | undefined>>;
}) {
  const params = await searchParams;
  const { filters, query, problems } = auditFilters(params);
  const tenants = (await load('/admin/tenants', listOf(tenantSchema))).data;
  const names = new Map(tenants.map((t) => [t.id, t.name]));
  const page = await loadAuditPage(query).then(
    (data) => ({ ok: true as const, data }),
    (error: unknown) => {
      if (error instanceof ApiError) return { ok: false as const, error };
      throw error;
    },
  );
  return (
    <>
      <div className="page-head">
        <h1>Audit log</h1>
        <a className="button" href={auditHref('/audit/export', filters)} download>
          Export CSV
        </a>
      </div>
      <form method="get" className="filters" aria-label="Filters">
        <label>
          Tenant
          <select name="tenant" defaultValue={filters.tenant}>
            <option value="">All tenants</option>
            {tenants.map((t) => (
              <option key={t.id} value={t.id}>
                {t.name}
              </option>
            ))}
          </select>
        </label>
        <label>
          Actor
          <input name="actor" defaultValue={filters.actor} placeholder="email or admin:id" />
        </label>
        <label>
          Action
          <input
            name="action"
            defaultValue={filters.action}
            placeholder="tenant.update or tenant."
          />
        </label>
        <label>
          From (UTC)
          <input type="datetime-local" name="from" defaultValue={filters.from} />
        </label>
        <label>
          To (UTC)
          <input type="datetime-local" name="to" defaultValue={filters.to} />
        </label>
        <button type="submit">Apply</button>
      </form>
      {problems.length > 0 && (
        <p className="error" role="alert">
          {problems.join(' ')} That filter was left out.
        </p>
      )}
      {!page.ok ? (
        <ErrorState error={page.error} what="the audit log" />
      ) : page.data.data.length === 0 ? (
        <p className="empty" data-testid="no-audit">
          No entry matches these filters.
        </p>
      ) : (
        <>
          <div className="table-wrap">
            <table data-testid="audit">
              <thead>
                <tr>
                  <th scope="col">Time (UTC)</th>
                  <th scope="col">Actor</th>
                  <th scope="col">Action</th>
                  <th scope="col">Target</th>
                  <th scope="col">Tenant</th>
                  <th scope="col">Details</th>
                </tr>
              </thead>
              <tbody>
                {page.data.data.map((e) => (
                  <tr key={e.id} data-audit-id={e.id}>
                    <td className="small">{e.at.slice(0, 19).replace('T', ' ')}</td>
                    <td>{e.actorEmail ?? e.actor}</td>
                    <td>
                      <code>{e.action}</code>
                    </td>
                    <td className="small">
                      {e.targetType}
                      {e.targetId ? ` ${e.targetId.slice(0, 8)}` : ''}
                    </td>
                    <td>{e.tenantId ? (names.get(e.tenantId) ?? e.tenantId.slice(0, 8)) : '—'}</td>
                    <td className="small">
                      <code style={{ wordBreak: 'break-all' }}>{JSON.stringify(e.details)}</code>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          <nav aria-label="Pages" className="row" style={{ marginTop: '0.75rem' }}>
            {query.before && <a href={auditHref('/audit', filters)}>Newest entries</a>}
            {page.data.nextBefore && (
              <a href={auditHref('/audit', filters, page.data.nextBefore)}>Older entries →</a>
            )}
          </nav>
        </>
      )}
    </>
  );
}
