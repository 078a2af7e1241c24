import { quotaPeriod } from '@pipedec/contracts/quota';
import type { Metadata } from 'next';
import Link from 'next/link';
import { notFound } from 'next/navigation';
import { load, tryLoad } from '@/lib/api-client';
import { ApiError } from '@/lib/errors';
import { formatInt, formatMicros, formatMs } from '@/lib/format';
import { loadMetrics } from '@/lib/metrics';
import { loadRefusals, refusalsByReason } from '@/lib/refusals';
import { apiKeySchema, listOf, planSchema, tenantSchema, usageReportSchema } from '@/lib/schemas';
import { timeRange } from '@/lib/time-range';
import { ErrorState } from '../../_components/error-state';
import { MetricsCharts } from '../../_components/metrics-charts';
import { QuotaBar } from '../../_components/quota-bar';
import { RangeFilter } from '../../_components/range-filter';
import { EditTenantForm } from './edit-tenant-form';

export const metadata: Metadata = { title: 'Tenant' };

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export default async function TenantPage({
  params,
  searchParams,
}: {
  params: Promise<{ tenantId: string }>;
  searchParams: Promise<Record<string, string | string[] | undefined>>;
}) {
  const { tenantId } = await params;
  const query = await searchParams;
  if (!UUID.test(tenantId)) notFound();
  const tenant = await tryLoad(`/admin/tenants/${tenantId}`, tenantSchema);
  if (!tenant.ok) {
    if (tenant.error.code === 'not_found') notFound();
    return <ErrorState error={tenant.error} what="this tenant" />;
  }
  const t = tenant.data;
  const period = quotaPeriod(new Date());
  const range = timeRange(query.range, new Date());
  const [month, plans, keys, metrics, refused] = await Promise.all([
    tryLoad(`/admin/tenants/${tenantId}/usage`, usageReportSchema, {
      granularity: 'day',
      from: period.from.toISOString(),
      to: period.to.toISOString(),
    }),
    load('/admin/plans', listOf(planSchema)),
    tryLoad(`/admin/tenants/${tenantId}/keys`, listOf(apiKeySchema)),
    loadMetrics(range, tenantId).then(
      (data) => ({ ok: true as const, data }),
      (error: unknown) => {
        if (error instanceof ApiError) return { ok: false as const, error };
        throw error;
      },
    ),
    loadRefusals(period.from, period.to, [t], tenantId).then(
      (rows) => ({ ok: true as const, byReason: refusalsByReason(rows) }),
      (error: unknown) => {
        if (error instanceof ApiError) return { ok: false as const, error };
        throw error;
      },
    ),
  ]);
  const plan = plans.data.find((p) => p.name === t.plan);
  const activeKeys = keys.ok ? keys.data.data.filter((k) => k.status === 'active').length : null;
  return (
    <>
      <p className="small">
        <Link href="/tenants">← Tenants</Link>
      </p>
      <div className="page-head">
        <h1>
          {t.name} <span className={`badge ${t.status}`}>{t.status}</span>
        </h1>
        <Link className="button" href={`/keys?tenant=${t.id}`}>
          API keys{activeKeys === null ? '' : ` (${activeKeys} active)`}
        </Link>
      </div>
      {query.created === '1' && (
        <p className="success" role="status">
          Tenant created. Next: <Link href={`/keys?tenant=${t.id}`}>create an API key</Link>.
        </p>
      )}
      <section aria-labelledby="month-h" className="card">
        <h2 id="month-h" style={{ marginTop: 0 }}>
          This month
        </h2>
        {month.ok ? (
          <>
            <QuotaBar
              label="Tokens this month against quota"
              used={month.data.totals.promptTokens + month.data.totals.completionTokens}
              limit={t.limits.tokensPerMonth}
            />
            <dl className="tiles" style={{ marginTop: '0.75rem' }} data-testid="month-usage">
              <div>
                <dt>Requests</dt>
                <dd data-testid="month-requests">{formatInt(month.data.totals.requests)}</dd>
              </div>
              <div>
                <dt>Input tokens</dt>
                <dd data-testid="month-prompt-tokens">
                  {formatInt(month.data.totals.promptTokens)}
                </dd>
              </div>
              <div>
                <dt>Output tokens</dt>
                <dd data-testid="month-completion-tokens">
                  {formatInt(month.data.totals.completionTokens)}
                </dd>
              </div>
              <div>
                <dt>Cost</dt>
                <dd data-testid="month-cost">{formatMicros(month.data.totals.costMicros)}</dd>
              </div>
              <div>
                <dt>Mean time to first token</dt>
                <dd>{formatMs(month.data.totals.avgTimeToFirstTokenMs)}</dd>
              </div>
            </dl>
          </>
        ) : (
          <ErrorState error={month.error} what="this month's usage" />
        )}
        <h3 id="refused-h">Refused this month</h3>
        {refused.ok ? (
          <>
            <dl className="tiles" aria-labelledby="refused-h" data-testid="month-refusals">
              {refused.byReason.map((r) => (
                <div key={r.reason}>
                  <dt>{r.label}</dt>
                  <dd data-testid={`refused-${r.reason}`}>{formatInt(r.count)}</dd>
                </div>
              ))}
            </dl>
            <p className="small muted">
              Requests refused with 429 because a limit was reached (counted per hour).{' '}
              <a href={`/refusals/export?range=30d&tenant=${t.id}`} download>
                Export refusals (CSV)
              </a>
            </p>
          </>
        ) : (
          <ErrorState error={refused.error} what="this month's refusals" />
        )}
        <p className="small muted">
          Plan <strong>{t.plan}</strong>: input {formatMicros(t.prices.inputPer1kMicros)}, output{' '}
          {formatMicros(t.prices.outputPer1kMicros)} per 1000 tokens.
        </p>
      </section>
      <div className="page-head" style={{ marginTop: '1.5rem' }}>
        <h2 style={{ margin: 0 }}>Usage over time</h2>
        <RangeFilter range={range.key} />
      </div>
      {metrics.ok ? (
        <MetricsCharts metrics={metrics.data} />
      ) : (
        <ErrorState error={metrics.error} what="usage over time" />
      )}
      <section aria-labelledby="edit-h" className="card" style={{ marginTop: '1.5rem' }}>
        <h2 id="edit-h" style={{ marginTop: 0 }}>
          Plan, status and limits
        </h2>
        <EditTenantForm tenant={t} plans={plans.data} planLimits={plan} />
      </section>
    </>
  );
}
