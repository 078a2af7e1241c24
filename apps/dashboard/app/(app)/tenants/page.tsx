import { quotaPeriod } from '@pipedec/contracts/quota';
import type { Metadata } from 'next';
import Link from 'next/link';
import { load, tryLoad } from '@/lib/api-client';
import { formatMicros, formatMs } from '@/lib/format';
import { listOf, planSchema, tenantSchema, usageReportSchema } from '@/lib/schemas';
import { ErrorState } from '../_components/error-state';
import { QuotaBar } from '../_components/quota-bar';
import { CreateTenantForm } from './create-tenant-form';
import { PlansSection } from './plans-section';

export const metadata: Metadata = { title: 'Tenants' };

export default async function TenantsPage() {
  const [tenants, plans] = await Promise.all([
    load('/admin/tenants', listOf(tenantSchema)),
    load('/admin/plans', listOf(planSchema)),
  ]);
  const period = quotaPeriod(new Date());
  const usage = await Promise.all(
    tenants.data.map((t) =>
      tryLoad(`/admin/tenants/${t.id}/usage`, usageReportSchema, {
        granularity: 'day',
        from: period.from.toISOString(),
        to: period.to.toISOString(),
      }),
    ),
  );
  const monthName = period.from.toLocaleString('en-US', {
    month: 'long',
    year: 'numeric',
    timeZone: 'UTC',
  });
  return (
    <>
      <div className="page-head">
        <h1>Tenants</h1>
        <a className="button" href="#create">
          New tenant
        </a>
      </div>
      {tenants.data.length === 0 ? (
        <div className="empty">
          <p>No tenants yet.</p>
          <p>Create one below; it gets a plan&apos;s limits and prices, which you can override.</p>
        </div>
      ) : (
        <div className="table-wrap">
          <table>
            <caption
              className="muted small"
              style={{ textAlign: 'left', padding: '0.5rem 0.7rem' }}
            >
              Usage in {monthName} (UTC) against each tenant&apos;s monthly token quota
            </caption>
            <thead>
              <tr>
                <th scope="col">Tenant</th>
                <th scope="col">Plan</th>
                <th scope="col">Status</th>
                <th scope="col">Tokens this month</th>
                <th scope="col" className="num">
                  Requests
                </th>
                <th scope="col" className="num">
                  Cost
                </th>
                <th scope="col" className="num">
                  Mean latency
                </th>
              </tr>
            </thead>
            <tbody>
              {tenants.data.map((t, i) => {
                const u = usage[i];
                const totals = u.ok ? u.data.totals : null;
                return (
                  <tr key={t.id}>
                    <th scope="row">
                      <Link href={`/tenants/${t.id}`}>{t.name}</Link>
                    </th>
                    <td>{t.plan}</td>
                    <td>
                      <span className={`badge ${t.status}`}>{t.status}</span>
                    </td>
                    <td>
                      {totals ? (
                        <QuotaBar
                          label={`${t.name}: tokens this month against quota`}
                          used={totals.promptTokens + totals.completionTokens}
                          limit={t.limits.tokensPerMonth}
                        />
                      ) : (
                        <span className="error small">usage unavailable</span>
                      )}
                    </td>
                    <td className="num">{totals ? totals.requests : '–'}</td>
                    <td className="num">{totals ? formatMicros(totals.costMicros) : '–'}</td>
                    <td className="num">{formatMs(totals?.avgTotalLatencyMs)}</td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
      {usage.find((u) => !u.ok) && (
        <ErrorState
          error={usage.flatMap((u) => (u.ok ? [] : [u.error]))[0]}
          what="some tenants' usage"
        />
      )}
      <section
        id="create"
        aria-labelledby="create-h"
        className="card"
        style={{ marginTop: '1.5rem' }}
      >
        <h2 id="create-h" style={{ marginTop: 0 }}>
          New tenant
        </h2>
        {plans.data.length === 0 ? (
          <p className="empty">Create a plan first: every tenant needs one.</p>
        ) : (
          <CreateTenantForm plans={plans.data} />
        )}
      </section>
      <PlansSection plans={plans.data} />
    </>
  );
}
