// Pure arithmetic of the quota windows: which counters a request touches and when they reset.
// Shared by the admission script's caller and the usage views.

/** Per-minute limits count what was admitted in the last 60 s (a sliding window). */
export const MINUTE_WINDOW_MS = 60_000;

export interface Windows {
  /** UTC month, "YYYYMM". */
  month: string;
  secondsToMonthReset: number;
}

export function windowsAt(nowMs: number): Windows {
  const d = new Date(nowMs);
  const month = `${d.getUTCFullYear()}${String(d.getUTCMonth() + 1).padStart(2, '0')}`;
  const nextMonth = Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1);
  return { month, secondsToMonthReset: Math.max(1, Math.ceil((nextMonth - nowMs) / 1000)) };
}

/** Whole seconds for a Retry-After or reset header: never 0 while something waits. */
export function secondsFromMs(ms: number): number {
  return ms <= 0 ? 0 : Math.max(1, Math.ceil(ms / 1000));
}

export function monthStart(nowMs: number): Date {
  const d = new Date(nowMs);
  return new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1));
}

export interface QuotaKeys {
  /** Sorted set: request id -> admission time (ms), the last minute's requests. */
  rpm: string;
  /** Sorted set: request id -> admission time (ms), the last minute's token reservations. */
  tpm: string;
  /** Hash: request id -> tokens it holds in the minute, and "_total". */
  tpmAmounts: string;
  month: string;
  concurrency: string;
}

export function quotaKeys(prefix: string, tenantId: string, w: Windows): QuotaKeys {
  const base = `${prefix}quota:${tenantId}`;
  return {
    rpm: `${base}:rpm`,
    tpm: `${base}:tpm`,
    tpmAmounts: `${base}:tpm:amounts`,
    month: `${base}:month:${w.month}`,
    concurrency: `${base}:concurrency`,
  };
}

export function reservationKey(prefix: string, requestId: string): string {
  return `${prefix}quota:reservation:${requestId}`;
}
