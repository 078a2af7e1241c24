import { load } from '@/lib/api-client';
import { csvDownload } from '@/lib/csv-download';
import { loadRefusals, refusalsCsv } from '@/lib/refusals';
import { listOf, tenantSchema } from '@/lib/schemas';
import { timeRange } from '@/lib/time-range';

/** GET /refusals/export?range=7d[&tenant=id]: refused requests per tenant and reason, as CSV. */
export async function GET(request: Request): Promise<Response> {
  const params = new URL(request.url).searchParams;
  const range = timeRange(params.get('range'), new Date());
  return csvDownload(`pipedec-refusals-${range.key}.csv`, async () => {
    const tenants = (await load('/admin/tenants', listOf(tenantSchema))).data;
    const tenant = params.get('tenant');
    const tenantId = tenant && tenants.some((t) => t.id === tenant) ? tenant : null;
    const rows = await loadRefusals(range.from, range.to, tenants, tenantId);
    return { csv: refusalsCsv(range.from, range.to, rows) };
  });
}
