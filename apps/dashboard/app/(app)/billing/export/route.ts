import { ApiError } from '@/lib/errors';
import { monthBounds, monthKey } from '@/lib/time-range';
import { billCsv } from '../bill';
import { loadBill } from '../billing';

/** GET /billing/export?month=YYYY-MM: the month's bill as CSV (a download). */
export async function GET(request: Request): Promise<Response> {
  const month = new URL(request.url).searchParams.get('month') ?? monthKey(new Date());
  if (!monthBounds(month)) return new Response('month must be YYYY-MM\n', { status: 400 });
  try {
    const csv = billCsv(month, await loadBill(month));
    return new Response(csv, {
      headers: {
        'content-type': 'text/csv; charset=utf-8',
        'content-disposition': `attachment; filename="pipedec-billing-${month}.csv"`,
        'cache-control': 'no-store',
      },
    });
  } catch (error) {
    if (error instanceof ApiError) {
      const status = error.code === 'unauthenticated' ? 401 : 502;
      return new Response(`${error.message}\n`, { status });
    }
    throw error;
  }
}
