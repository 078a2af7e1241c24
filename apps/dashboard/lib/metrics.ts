// Usage and latency over time for the overview and tenant pages. Prefers the API's metrics
// endpoint (latency percentiles over all requests); until it exists, sums the per-tenant
// usage rollups, which carry averages only, and says so.
import { load, tryLoad } from './api-client';
import {
  listOf,
  metricsReportSchema,
  tenantSchema,
  usageReportSchema,
  type MetricsPoint,
  type UsageReport,
} from './schemas';
import { bucketStarts, type TimeRange } from './time-range';

export interface Metrics {
  /** Epoch ms bucket starts covering the whole range (empty buckets included). */
  x: number[];
  points: MetricsPoint[];
  /** False when latencies are per-bucket averages (p50 and p95 unavailable). */
  percentiles: boolean;
}

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

/** Per-bucket sums over tenants; latency is the request-weighted mean of the averages. */
export function mergeUsage(reports: UsageReport[]): MetricsPoint[] {
  const byBucket = new Map<string, MetricsPoint & { ttftWeight: number }>();
  for (const r of reports) {
    for (const s of r.series) {
      const p = byBucket.get(s.bucketStart) ?? {
        bucketStart: s.bucketStart,
        requests: 0,
        failedRequests: 0,
        promptTokens: 0,
        completionTokens: 0,
        costMicros: 0,
        ttftP50Ms: null,
        ttftP95Ms: null,
        tpotP50Ms: null,
        tpotP95Ms: null,
        ttftWeight: 0,
      };
      p.requests += s.requests;
      p.failedRequests += s.failedRequests;
      p.promptTokens += s.promptTokens;
      p.completionTokens += s.completionTokens;
      p.costMicros += s.costMicros;
      if (s.avgTimeToFirstTokenMs !== null && s.requests > 0) {
        const w = p.ttftWeight + s.requests;
        p.ttftP50Ms =
          ((p.ttftP50Ms ?? 0) * p.ttftWeight + s.avgTimeToFirstTokenMs * s.requests) / w;
        p.ttftWeight = w;
      }
      byBucket.set(s.bucketStart, p);
    }
  }
  return [...byBucket.values()].map(({ ttftWeight: _w, ...p }) => p);
}

/** One point per bucket of the range, in order; buckets without data are zero. */
export function align(range: TimeRange, points: MetricsPoint[], percentiles: boolean): Metrics {
  const x = bucketStarts(range);
  const byStart = new Map(points.map((p) => [new Date(p.bucketStart).getTime(), p]));
  return {
    x,
    percentiles,
    points: x.map(
      (t) =>
        byStart.get(t) ?? {
          bucketStart: new Date(t).toISOString(),
          requests: 0,
          failedRequests: 0,
          promptTokens: 0,
          completionTokens: 0,
          costMicros: 0,
          ttftP50Ms: null,
          ttftP95Ms: null,
          tpotP50Ms: null,
          tpotP95Ms: null,
        },
    ),
  };
}
