// Filters as a plain GET form: they work by keyboard and without JavaScript, and the URL
// holds the view.
import { RANGES, type RangeKey } from '@/lib/time-range';

export function RangeFilter({
  range,
  tenants,
  tenantId,
  refresh,
}: {
  range: RangeKey;
  /** When given, a tenant filter is offered too. */
  tenants?: { id: string; name: string }[];
  tenantId?: string | null;
  /** The overview's auto-refresh interval, kept when the filters are applied. */
  refresh?: number;
}) {
  return (
    <form method="get" className="filters" aria-label="Filters">
      {refresh !== undefined && <input type="hidden" name="refresh" value={refresh} />}
      {tenants && (
        <label>
          Tenant
          <select name="tenant" defaultValue={tenantId ?? ''}>
            <option value="">All tenants</option>
            {tenants.map((t) => (
              <option key={t.id} value={t.id}>
                {t.name}
              </option>
            ))}
          </select>
        </label>
      )}
      <label>
        Time range
        <select name="range" defaultValue={range}>
          {Object.entries(RANGES).map(([k, r]) => (
            <option key={k} value={k}>
              {r.label}
            </option>
          ))}
        </select>
      </label>
      <button type="submit">Apply</button>
    </form>
  );
}
