import { csvDownload } from '@/lib/csv-download';
import { monthBounds, monthKey } from '@/lib/time-range';
import { billCsv } from '../bill';
import { loadBill } from '../billing';

/** GET /billing/export?month=YYYY-MM: the month's bill as CSV (a download). */
export async function GET(request: Request): Promise<Response> {
  const month = new URL(request.url).searchParams.get('month') ?? monthKey(new Date());
  if (!monthBounds(month)) return new Response('month must be YYYY-MM\n', { status: 400 });
  return csvDownload(`pipedec-billing-${month}.csv`, async () => ({
    csv: billCsv(month, await loadBill(month)),
  }));
}
