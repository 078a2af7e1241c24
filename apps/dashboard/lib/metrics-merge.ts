// Pure arithmetic behind the usage charts: merging tenants' rollups and aligning points to
// the buckets of a time range.
import type { MetricsPoint, UsageReport } from './schemas';
import { bucketStarts, type TimeRange } from './time-range';

export interface Metrics {
  /** Epoch ms bucket starts covering the whole range (empty buckets included). */
  x: number[];
  points: MetricsPoint[];
  /** False when latencies are per-bucket averages (p50 and p95 unavailable). */
  percentiles: boolean;
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
