import type { Metadata } from 'next';
import { load } from '@/lib/api-client';
import { formatInt } from '@/lib/format';
import { loadMetrics } from '@/lib/metrics';
import { loadRefusals } from '@/lib/refusals';
import { listOf, tenantSchema } from '@/lib/schemas';
import { timeRange } from '@/lib/time-range';
import { refreshSeconds } from '@/lib/refresh';
import { AutoRefresh } from './_components/auto-refresh';
import { ErrorState } from './_components/error-state';
import { MetricsCharts } from './_components/metrics-charts';
import { RangeFilter } from './_components/range-filter';
import { ApiError } from '@/lib/errors';

export const metadata: Metadata = { title: 'Overview' };

export default async function OverviewPage({
  searchParams,
}: {
  searchParams: Promise<Record<string, string | string[] | undefined>>;
}) {
  const params = await searchParams;
  const range = timeRange(params.range, new Date());
  const tenants = (await load('/admin/tenants', listOf(tenantSchema))).data;
  const tenantId =
    typeof params.tenant === 'string' && tenants.some((t) => t.id === params.tenant)
      ? params.tenant
      : null;
  const metrics = await loadMetrics(range, tenantId).then(
    (data) => ({ ok: true as const, data }),
    (error: unknown) => {
      if (error instanceof ApiError) return { ok: false as const, error };
      throw error;
    },
  );
  const refused = await loadRefusals(range.from, range.to, tenants, tenantId).then(
    (rows) => ({ ok: true as const, rows }),
    (error: unknown) => {
      if (error instanceof ApiError) return { ok: false as const, error };
      throw error;
    },
  );
  const exportHref = `/refusals/export?range=${range.key}${tenantId ? `&tenant=${tenantId}` : ''}`;
  return (
    <>
      <div className="page-head">
        <h1>Overview</h1>
        <div className="row">
          <RangeFilter
            range={range.key}
            tenants={tenants}
            tenantId={tenantId}
            refresh={refreshSeconds(params.refresh)}
          />
          <AutoRefresh
            seconds={refreshSeconds(params.refresh)}
            renderedAt={new Date().toISOString()}
          />
        </div>
      </div>
      {tenants.length === 0 ? (
        <div className="empty">
          <p>No tenants yet, so no traffic to show.</p>
          <p>
            <a href="/tenants#create">Create the first tenant</a>, give it an API key, and its
            requests appear here.
          </p>
        </div>
      ) : metrics.ok ? (
        <MetricsCharts metrics={metrics.data} />
      ) : (
        <ErrorState error={metrics.error} what="usage and latency" />
      )}
      {tenants.length > 0 && (
        <section aria-labelledby="refused-h" className="card" style={{ marginTop: '1.5rem' }}>
          <div className="page-head">
            <h2 id="refused-h" style={{ margin: 0 }}>
              Refused requests
            </h2>
            <a className="button" href={exportHref} download>
              Export refusals (CSV)
            </a>
          </div>
          {!refused.ok ? (
            <ErrorState error={refused.error} what="refused requests" />
          ) : refused.rows.length === 0 ? (
            <p className="muted" data-testid="no-refusals">
              No request was refused by a limit in this range.
            </p>
          ) : (
            <div className="table-wrap">
              <table data-testid="refusals">
                <caption
                  className="muted small"
                  style={{ textAlign: 'left', padding: '0.5rem 0.7rem' }}
                >
                  Requests refused with 429 because a limit was reached, per tenant and limit
                  (counted per hour, so the range is rounded out to whole hours).
                </caption>
                <thead>
                  <tr>
                    <th scope="col">Tenant</th>
                    <th scope="col">Limit reached</th>
                    <th scope="col" className="num">
                      Refused
                    </th>
                  </tr>
                </thead>
                <tbody>
                  {refused.rows.map((r) => (
                    <tr key={`${r.tenantId}:${r.reason}`}>
                      <th scope="row">{r.tenant}</th>
                      <td>{r.label}</td>
                      <td className="num">{formatInt(r.count)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
        </section>
      )}
    </>
  );
}
