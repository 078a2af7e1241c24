import { load } from '@/lib/api-client';
import { auditCsv, auditFilters, loadAuditAll } from '@/lib/audit';
import { csvDownload } from '@/lib/csv-download';
import { listOf, tenantSchema } from '@/lib/schemas';

/** GET /audit/export?<the page's filters>: the matching entries as CSV (at most 10,000). */
export async function GET(request: Request): Promise<Response> {
  const params = Object.fromEntries(new URL(request.url).searchParams);
  const { query, problems } = auditFilters(params);
  if (problems.length > 0) return new Response(`${problems.join(' ')}\n`, { status: 400 });
  return csvDownload('pipedec-audit.csv', async () => {
    const [tenants, { entries, truncated }] = await Promise.all([
      load('/admin/tenants', listOf(tenantSchema)),
      loadAuditAll({ ...query, before: undefined }),
    ]);
    const names = new Map(tenants.data.map((t) => [t.id, t.name]));
    return {
      csv: auditCsv(entries, names),
      headers: truncated ? { 'x-pipedec-truncated': 'first 10000 entries' } : undefined,
    };
  });
}
