// Pure quota arithmetic, shared by the API's admission guard and the dashboard's usage bar so
// the two can never disagree about how much of a tenant's monthly allowance is left.
// Quantities are token counts; the period is the UTC calendar month (see quotaPeriod).

/** Share of the quota at which the dashboard starts warning. */
export const QUOTA_WARNING_FRACTION = 0.8;

export type QuotaState = 'ok' | 'warning' | 'exceeded';

export interface QuotaUsage {
  used: number;
  limit: number;
  /** limit - used, never below 0. */
  remaining: number;
  /** used / limit clamped to [0, 1], for drawing a bar. */
  fraction: number;
  /** Tokens used beyond the limit (0 when within it). */
  overBy: number;
  state: QuotaState;
}

/**
 * Where `used` stands against `limit`. Example: used 850, limit 1000 gives remaining 150,
 * fraction 0.85, state 'warning'; used 1200 gives remaining 0, fraction 1, overBy 200,
 * state 'exceeded' (usage can pass the limit by the last request's overshoot).
 */
export function quotaUsage(used: number, limit: number): QuotaUsage {
  if (!Number.isFinite(used) || used < 0) throw new RangeError(`used must be >= 0, got ${used}`);
  if (!Number.isFinite(limit) || limit <= 0)
    throw new RangeError(`limit must be > 0, got ${limit}`);
  const fraction = Math.min(1, used / limit);
  const state: QuotaState =
    used >= limit ? 'exceeded' : fraction >= QUOTA_WARNING_FRACTION ? 'warning' : 'ok';
  return {
    used,
    limit,
    remaining: Math.max(0, limit - used),
    fraction,
    overBy: Math.max(0, used - limit),
    state,
  };
}

/** Whether a request reserving `reserve` more tokens fits: used + reserve <= limit. */
export function quotaAdmits(used: number, reserve: number, limit: number): boolean {
  if (reserve < 0) throw new RangeError(`reserve must be >= 0, got ${reserve}`);
  return used + reserve <= limit;
}

/** The quota period holding `now`: [first instant of its UTC month, first of the next). */
export function quotaPeriod(now: Date): { from: Date; to: Date } {
  const y = now.getUTCFullYear();
  const m = now.getUTCMonth();
  return { from: new Date(Date.UTC(y, m, 1)), to: new Date(Date.UTC(y, m + 1, 1)) };
}
