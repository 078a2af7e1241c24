// Pure arithmetic behind the usage charts: aligning the API's metrics points to the buckets
// of a time range.
import type { MetricsPoint } from './schemas';
import { bucketStarts, type TimeRange } from './time-range';

export interface Metrics {
  /** Epoch ms bucket starts covering the whole range (empty buckets included). */
  x: number[];
  points: MetricsPoint[];
}

/** One point per bucket of the range, in order; buckets without data are zero. */
export function align(range: TimeRange, points: MetricsPoint[]): Metrics {
  const x = bucketStarts(range);
  const byStart = new Map(points.map((p) => [new Date(p.bucketStart).getTime(), p]));
  return {
    x,
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
