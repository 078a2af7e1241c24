// The time ranges the charts offer, as URL search parameters (?range=7d), so a filtered view
// is a link that can be shared and reloaded.

export const RANGES = {
  '15m': { label: 'Last 15 minutes', ms: 15 * 60_000, granularity: 'minute' },
  '1h': { label: 'Last hour', ms: 3600_000, granularity: 'minute' },
  '24h': { label: 'Last 24 hours', ms: 24 * 3600_000, granularity: 'hour' },
  '7d': { label: 'Last 7 days', ms: 7 * 24 * 3600_000, granularity: 'hour' },
  '30d': { label: 'Last 30 days', ms: 30 * 24 * 3600_000, granularity: 'day' },
  '90d': { label: 'Last 90 days', ms: 90 * 24 * 3600_000, granularity: 'day' },
} as const;

export type RangeKey = keyof typeof RANGES;

const BUCKET_MS = { minute: 60_000, hour: 3600_000, day: 24 * 3600_000 } as const;
export const DEFAULT_RANGE: RangeKey = '7d';

export interface TimeRange {
  key: RangeKey;
  from: Date;
  to: Date;
  granularity: 'minute' | 'hour' | 'day';
  bucketMs: number;
}

export function isRangeKey(v: unknown): v is RangeKey {
  return typeof v === 'string' && Object.hasOwn(RANGES, v);
}

/** The range named by `key` (unknown values fall back to the default), ending at `now`. */
export function timeRange(key: unknown, now: Date): TimeRange {
  const k = isRangeKey(key) ? key : DEFAULT_RANGE;
  const r = RANGES[k];
  const bucketMs = BUCKET_MS[r.granularity];
  // Start on a bucket boundary so the first bucket is whole.
  const from = new Date(Math.floor((now.getTime() - r.ms) / bucketMs) * bucketMs);
  return { key: k, from, to: new Date(now.getTime() + 1), granularity: r.granularity, bucketMs };
}

/** Bucket starts (epoch ms) covering the range, so charts show empty buckets as zero. */
export function bucketStarts(range: TimeRange): number[] {
  const out: number[] = [];
  for (let t = range.from.getTime(); t < range.to.getTime(); t += range.bucketMs) out.push(t);
  return out;
}

/** "2026-11" for the UTC month holding `d`. */
export function monthKey(d: Date): string {
  return `${d.getUTCFullYear()}-${String(d.getUTCMonth() + 1).padStart(2, '0')}`;
}

/** [first instant, first instant of next month) of a "YYYY-MM" key, or null when malformed. */
export function monthBounds(key: string): { from: Date; to: Date } | null {
  const m = /^(\d{4})-(0[1-9]|1[0-2])$/.exec(key);
  if (!m) return null;
  const y = Number(m[1]);
  const mo = Number(m[2]) - 1;
  return { from: new Date(Date.UTC(y, mo, 1)), to: new Date(Date.UTC(y, mo + 1, 1)) };
}

/** The last `n` month keys ending with the month of `now`, newest first. */
export function recentMonths(now: Date, n: number): string[] {
  return Array.from({ length: n }, (_, i) =>
    monthKey(new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - i, 1))),
  );
}
