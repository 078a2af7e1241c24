// Refused requests (the API's 429s: rate, tokens per minute, monthly quota, concurrency) per
// tenant and reason, for the overview, the tenant page and the CSV export. The API counts them
// per hour, so a range is rounded out to whole hours.
import { REFUSAL_REASONS, refusalsReportSchema } from '@pipedec/contracts/http';
import { load } from './api-client';

export interface RefusalRow {
  tenantId: string;
  tenant: string;
  reason: string;
  /** The reason in an operator's words. */
  label: string;
  count: number;
}

export function reasonLabel(reason: string): string {
  return Object.hasOwn(REFUSAL_REASONS, reason)
    ? REFUSAL_REASONS[reason as keyof typeof REFUSAL_REASONS]
    : reason;
}

export async function loadRefusals(
  from: Date,
  to: Date,
  tenants: readonly { id: string; name: string }[],
  tenantId: string | null = null,
): Promise<RefusalRow[]> {
  const report = await load('/admin/refusals', refusalsReportSchema, {
    from: from.toISOString(),
    to: to.toISOString(),
    tenantId,
  });
  const names = new Map(tenants.map((t) => [t.id, t.name]));
  return report.refusals.map((r) => ({
    ...r,
    tenant: names.get(r.tenantId) ?? r.tenantId,
    label: reasonLabel(r.reason),
  }));
}

/** Counts per reason, every reason present (0 when none), in REFUSAL_REASONS' order. */
export function refusalsByReason(
  rows: readonly RefusalRow[],
): { reason: string; label: string; count: number }[] {
  return Object.entries(REFUSAL_REASONS).map(([reason, label]) => ({
    reason,
    label,
    count: rows.filter((r) => r.reason === reason).reduce((a, r) => a + r.count, 0),
  }));
}

function field(v: string | number): string {
  let s = String(v);
  if (/^[=+\-@]/.test(s) && typeof v === 'string') s = `'${s}`;
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** RFC 4180 CSV: one row per tenant and reason, then a totals row. */
export function refusalsCsv(from: Date, to: Date, rows: readonly RefusalRow[]): string {
  const lines: (string | number)[][] = [
    ['from', 'to', 'tenant_id', 'tenant', 'reason', 'refused_requests'],
    ...rows.map((r) => [
      from.toISOString(),
      to.toISOString(),
      r.tenantId,
      r.tenant,
      r.reason,
      r.count,
    ]),
    [from.toISOString(), to.toISOString(), '', 'TOTAL', '', rows.reduce((a, r) => a + r.count, 0)],
  ];
  return lines.map((l) => l.map(field).join(',')).join('\r\n') + '\r\n';
}
