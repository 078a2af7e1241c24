// The audit log page's filters as URL search parameters (a filtered view is a link), turned
// into the API's query (GET /admin/audit), and the log as CSV. Times in the form are UTC.
import { auditPageSchema, type AuditEntryView } from '@pipedec/contracts/http';
import { load } from './api-client';

export interface AuditFilters {
  tenant: string;
  actor: string;
  action: string;
  /** "YYYY-MM-DDTHH:MM" as a datetime-local field holds it (UTC), or "". */
  from: string;
  to: string;
}

type Params = Record<string, string | string[] | undefined>;

const one = (v: string | string[] | undefined) => (typeof v === 'string' ? v.trim() : '');

/** A datetime-local value read as UTC, as an ISO date; null when blank or not a time. */
function utcIso(v: string): string | null {
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?$/.test(v)) return null;
  const d = new Date(`${v.length === 16 ? `${v}:00` : v}.000Z`);
  return Number.isNaN(d.getTime()) ? null : d.toISOString();
}

/**
 * The filters from the URL, and the API query they make; `problems` names each filter that
 * could not be read (it is left out of the query rather than failing the page).
 */
export function auditFilters(params: Params): {
  filters: AuditFilters;
  query: Record<string, string | undefined>;
  problems: string[];
} {
  const filters: AuditFilters = {
    tenant: one(params.tenant),
    actor: one(params.actor),
    action: one(params.action),
    from: one(params.from),
    to: one(params.to),
  };
  const problems: string[] = [];
  const time = (name: 'from' | 'to') => {
    if (!filters[name]) return undefined;
    const iso = utcIso(filters[name]);
    if (!iso) problems.push(`“${name === 'from' ? 'From' : 'To'}” must be a date and time.`);
    return iso ?? undefined;
  };
  const before = one(params.before);
  return {
    filters,
    query: {
      tenantId: filters.tenant || undefined,
      actor: filters.actor || undefined,
      action: filters.action || undefined,
      from: time('from'),
      to: time('to'),
      before: /^\d{1,19}$/.test(before) ? before : undefined,
    },
    problems,
  };
}

/** The URL of the view with these filters (and optionally a page), for links. */
export function auditHref(base: string, filters: AuditFilters, before?: string | null): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(filters) as [string, string][]) if (v) q.set(k, v);
  if (before) q.set('before', before);
  const s = q.toString();
  return s ? `${base}?${s}` : base;
}

export function loadAuditPage(query: Record<string, string | undefined>, limit = 50) {
  return load('/admin/audit', auditPageSchema, { ...query, limit });
}

/** Every entry matching the query, newest first, up to `max` (pages of 500). */
export async function loadAuditAll(
  query: Record<string, string | undefined>,
  max = 10_000,
): Promise<{ entries: AuditEntryView[]; truncated: boolean }> {
  const entries: AuditEntryView[] = [];
  let before = query.before;
  for (;;) {
    const page = await loadAuditPage({ ...query, before }, 500);
    entries.push(...page.data);
    if (!page.nextBefore) return { entries, truncated: false };
    if (entries.length >= max) return { entries: entries.slice(0, max), truncated: true };
    before = page.nextBefore;
  }
}

function field(v: string | number): string {
  let s = String(v);
  if (/^[=+\-@]/.test(s) && typeof v === 'string') s = `'${s}`;
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** RFC 4180 CSV, one row per entry; details as JSON. */
export function auditCsv(
  entries: readonly AuditEntryView[],
  tenantNames: ReadonlyMap<string, string>,
): string {
  const rows: (string | number)[][] = [
    [
      'id',
      'at',
      'actor',
      'actor_email',
      'action',
      'target_type',
      'target_id',
      'tenant_id',
      'tenant',
      'details',
    ],
    ...entries.map((e) => [
      e.id,
      e.at,
      e.actor,
      e.actorEmail ?? '',
      e.action,
      e.targetType,
      e.targetId ?? '',
      e.tenantId ?? '',
      e.tenantId ? (tenantNames.get(e.tenantId) ?? '') : '',
      JSON.stringify(e.details),
    ]),
  ];
  return rows.map((r) => r.map(field).join(',')).join('\r\n') + '\r\n';
}
