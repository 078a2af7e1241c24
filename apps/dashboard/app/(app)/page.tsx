import type { Metadata } from 'next';
import { load } from '@/lib/api-client';
import { loadMetrics } from '@/lib/metrics';
import { listOf, tenantSchema } from '@/lib/schemas';
import { timeRange } from '@/lib/time-range';
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
  return (
    <>
      <div className="page-head">
        <h1>Overview</h1>
        <RangeFilter range={range.key} tenants={tenants} tenantId={tenantId} />
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
    </>
  );
}
