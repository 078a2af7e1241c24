import { load } from '@/lib/api-client';
import { auditCsv, auditFilters, loadAuditAll } from '@/lib/audit';
import { ApiError } from '@/lib/errors';
import { listOf, tenantSchema } from '@/lib/schemas';

/** GET /audit/export?<the page's filters>: the matching entries as CSV (at most 10,000). */
export async function GET(request: Request): Promise<Response> {
  const params = Object.fromEntries(new URL(request.url).searchParams);
  const { query, problems } = auditFilters(params);
  if (problems.length > 0) return new Response(`${problems.join(' ')}\n`, { status: 400 });
  try {
    const [tenants, { entries, truncated }] = await Promise.all([
      load('/admin/tenants', listOf(tenantSchema)),
      loadAuditAll({ ...query, before: undefined }),
    ]);
    const names = new Map(tenants.data.map((t) => [t.id, t.name]));
    return new Response(auditCsv(entries, names), {
      headers: {
        'content-type': 'text/csv; charset=utf-8',
        'content-disposition': 'attachment; filename="pipedec-audit.csv"',
        'cache-control': 'no-store',
        ...(truncated ? { 'x-pipedec-truncated': 'first 10000 entries' } : {}),
      },
    });
  } catch (error) {
    if (error instanceof ApiError) {
      const status = error.code === 'unauthenticated' ? 401 : error.status === 400 ? 400 : 502;
      return new Response(`${error.message}\n`, { status });
    }
    throw error;
  }
}
