import type { Metadata } from 'next';
import { ApiError } from '@/lib/errors';
import { formatInt, formatMicros } from '@/lib/format';
import { monthBounds, monthKey, recentMonths } from '@/lib/time-range';
import { ErrorState } from '../_components/error-state';
import { billTotals } from './bill';
import { loadBill } from './billing';

export const metadata: Metadata = { title: 'Billing' };

export default async function BillingPage({
  searchParams,
}: {
  searchParams: Promise<Record<string, string | string[] | undefined>>;
}) {
  const params = await searchParams;
  const now = new Date();
  const month =
    typeof params.month === 'string' && monthBounds(params.month) ? params.month : monthKey(now);
  const bill = await loadBill(month).then(
    (lines) => ({ ok: true as const, lines }),
    (error: unknown) => {
      if (error instanceof ApiError) return { ok: false as const, error };
      throw error;
    },
  );
  const months = recentMonths(now, 12);
  const totals = billTotals(bill.ok ? bill.lines : []);
  return (
    <>
      <div className="page-head">
        <h1>Billing</h1>
        <div className="row">
          <form method="get" className="filters" aria-label="Month">
            <label>
              Month (UTC)
              <select name="month" defaultValue={month}>
                {(months.includes(month) ? months : [month, ...months]).map((m) => (
                  <option key={m} value={m}>
                    {m}
                  </option>
                ))}
              </select>
            </label>
            <button type="submit">Show</button>
          </form>
          <a className="button" href={`/billing/export?month=${month}`} download>
            Export CSV
          </a>
        </div>
      </div>
      {!bill.ok ? (
        <ErrorState error={bill.error} what="the bill" />
      ) : bill.lines.length === 0 ? (
        <p className="empty">No tenants, so nothing to bill.</p>
      ) : (
        <div className="table-wrap">
          <table>
            <caption
              className="muted small"
              style={{ textAlign: 'left', padding: '0.5rem 0.7rem' }}
            >
              Cost per tenant in {month}: tokens × the price per 1000 tokens each request was billed
              at, one row per price (a plan change during the month gives a tenant a row for each).
              “Billed” is what the API recorded (each request rounded up to a micro-dollar).
            </caption>
            <thead>
              <tr>
                <th scope="col">Tenant</th>
                <th scope="col">Plan</th>
                <th scope="col">Requests made</th>
                <th scope="col" className="num">
                  Requests
                </th>
                <th scope="col" className="num">
                  Input tokens × price
                </th>
                <th scope="col" className="num">
                  Input cost
                </th>
                <th scope="col" className="num">
                  Output tokens × price
                </th>
                <th scope="col" className="num">
                  Output cost
                </th>
                <th scope="col" className="num">
                  Billed
                </th>
              </tr>
            </thead>
            <tbody>
              {bill.lines.map((l) => (
                <tr
                  key={`${l.tenantId}:${l.inputPricePer1kMicros}:${l.outputPricePer1kMicros}`}
                  data-testid="bill-line"
                >
                  <th scope="row">{l.tenant}</th>
                  <td>{l.plan}</td>
                  <td className="small">
                    {l.firstRequestAt && l.lastRequestAt
                      ? `${l.firstRequestAt.slice(0, 10)} to ${l.lastRequestAt.slice(0, 10)}`
                      : '—'}
                  </td>
                  <td className="num">{formatInt(l.requests)}</td>
                  <td className="num">
                    {formatInt(l.inputTokens)} × {formatMicros(l.inputPricePer1kMicros)}/1k
                  </td>
                  <td className="num">{formatMicros(l.inputCostMicros)}</td>
                  <td className="num">
                    {formatInt(l.outputTokens)} × {formatMicros(l.outputPricePer1kMicros)}/1k
                  </td>
                  <td className="num">{formatMicros(l.outputCostMicros)}</td>
                  <td className="num">
                    <strong>{formatMicros(l.billedMicros)}</strong>
                  </td>
                </tr>
              ))}
            </tbody>
            <tfoot>
              <tr data-testid="bill-total">
                <th scope="row" colSpan={3}>
                  Total
                </th>
                <td className="num">{formatInt(totals.requests)}</td>
                <td className="num">{formatInt(totals.inputTokens)}</td>
                <td className="num">{formatMicros(totals.inputCostMicros)}</td>
                <td className="num">{formatInt(totals.outputTokens)}</td>
                <td className="num">{formatMicros(totals.outputCostMicros)}</td>
                <td className="num">
                  <strong>{formatMicros(totals.billedMicros)}</strong>
                </td>
              </tr>
            </tfoot>
          </table>
        </div>
      )}
    </>
  );
}
