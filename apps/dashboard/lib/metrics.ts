// Usage and latency over time for the overview and tenant pages. Prefers the API's metrics
// endpoint (latency percentiles over all requests); until it exists, sums the per-tenant
// usage rollups, which carry averages only, and says so.
import { load, tryLoad } from './api-client';
import { align, mergeUsage, type Metrics } from './metrics-merge';
import { listOf, metricsReportSchema, tenantSchema, usageReportSchema } from './schemas';
import type { TimeRange } from './time-range';

export type { Metrics } from './metrics-merge';

export async function loadMetrics(range: TimeRange, tenantId: string | null): Promise<Metrics> {
  const query = {
    granularity: range.granularity,
    from: range.from.toISOString(),
    to: range.to.toISOString(),
  };
  const direct = await tryLoad('/admin/metrics', metricsReportSchema, { ...query, tenantId });
  if (direct.ok) return align(range, direct.data.series, true);
  if (direct.error.code !== 'not_available') throw direct.error;
  const tenantIds = tenantId
    ? [tenantId]
    : (await load('/admin/tenants', listOf(tenantSchema))).data.map((t) => t.id);
  const reports = await Promise.all(
    tenantIds.map((id) => load(`/admin/tenants/${id}/usage`, usageReportSchema, query)),
  );
  return align(range, mergeUsage(reports), false);
}
