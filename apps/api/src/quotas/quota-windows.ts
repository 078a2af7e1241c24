// Pure arithmetic of the quota windows: which counters a request touches and when they reset.
// Shared by the admission script's caller and the usage views.

export interface Windows {
  /** Fixed one-minute window index (epoch minutes). */
  minute: number;
  /** UTC month, "YYYYMM". */
  month: string;
  secondsToMinuteReset: number;
  secondsToMonthReset: number;
}

export function windowsAt(nowMs: number): Windows {
  const minute = Math.floor(nowMs / 60_000);
  const d = new Date(nowMs);
  const month = `${d.getUTCFullYear()}${String(d.getUTCMonth() + 1).padStart(2, '0')}`;
  const nextMonth = Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1);
  return {
    minute,
    month,
    secondsToMinuteReset: Math.max(1, Math.ceil(((minute + 1) * 60_000 - nowMs) / 1000)),
    secondsToMonthReset: Math.max(1, Math.ceil((nextMonth - nowMs) / 1000)),
  };
}

export function monthStart(nowMs: number): Date {
  const d = new Date(nowMs);
  return new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1));
}

export interface QuotaKeys {
  rpm: string;
  tpm: string;
  month: string;
  concurrency: string;
}

export function quotaKeys(prefix: string, tenantId: string, w: Windows): QuotaKeys {
  const base = `${prefix}quota:${tenantId}`;
  return {
    rpm: `${base}:rpm:${w.minute}`,
    tpm: `${base}:tpm:${w.minute}`,
    month: `${base}:month:${w.month}`,
    concurrency: `${base}:concurrency`,
  };
}

export function reservationKey(prefix: string, requestId: string): string {
  return `${prefix}quota:reservation:${requestId}`;
}
