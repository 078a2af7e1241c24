// Loads a month's bill from the API (usage per tenant and price over the month, UTC).
import { load } from '@/lib/api-client';
import { listOf, tenantSchema, usageReportSchema } from '@/lib/schemas';
import { monthBounds } from '@/lib/time-range';
import { billLines, type BillLine } from './bill';

export async function loadBill(month: string): Promise<BillLine[]> {
  const bounds = monthBounds(month);
  if (!bounds) throw new RangeError(`month must be YYYY-MM, got ${month}`);
  const tenants = (await load('/admin/tenants', listOf(tenantSchema))).data;
  const reports = await Promise.all(
    tenants.map((t) =>
      load(`/admin/tenants/${t.id}/usage`, usageReportSchema, {
        granularity: 'day',
        from: bounds.from.toISOString(),
        to: bounds.to.toISOString(),
      }),
    ),
  );
  return tenants.flatMap((t, i) => billLines(t, reports[i].totals.priceSegments));
}
