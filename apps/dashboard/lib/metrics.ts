// Usage and latency over time for the overview and tenant pages, from the API's metrics
// endpoint (volume and cost per bucket, latency percentiles over the bucket's requests).
import { load } from './api-client';
import { align, type Metrics } from './metrics-merge';
import { metricsReportSchema } from './schemas';
import type { TimeRange } from './time-range';

export type { Metrics } from './metrics-merge';

export async function loadMetrics(range: TimeRange, tenantId: string | null): Promise<Metrics> {
  const report = await load('/admin/metrics', metricsReportSchema, {
    granularity: range.granularity,
    from: range.from.toISOString(),
    to: range.to.toISOString(),
    tenantId,
  });
  return align(range, report.series);
}
