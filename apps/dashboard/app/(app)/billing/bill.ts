// A month's bill per tenant, one line per pair of prices its requests were billed at (the API
// records them with each request), so after a mid-month plan change every line still
// multiplies out: tokens x the price they were billed at. "Billed" is the cost the API
// recorded (rounded up per request, so it can exceed the product by < 1 micro-dollar per
// request). Pure, so the page and the CSV export compute it the same way.
import type { PriceSegment } from '@pipedec/contracts/http';

export interface BillLine {
  tenantId: string;
  tenant: string;
  /** The tenant's plan now (the prices below are the ones the requests were billed at). */
  plan: string;
  /** When the first and last request at these prices were made; null for a month without. */
  firstRequestAt: string | null;
  lastRequestAt: string | null;
  requests: number;
  inputTokens: number;
  outputTokens: number;
  inputPricePer1kMicros: number;
  outputPricePer1kMicros: number;
  inputCostMicros: number;
  outputCostMicros: number;
  /** What the API recorded for these requests. */
  billedMicros: number;
}

export interface BillTotals {
  requests: number;
  inputTokens: number;
  outputTokens: number;
  inputCostMicros: number;
  outputCostMicros: number;
  billedMicros: number;
}

/**
 * The tenant's lines: one per price segment, oldest first; a tenant without requests gets one
 * empty line at its plan's current prices so it still appears on the bill.
 */
export function billLines(
  t: {
    id: string;
    name: string;
    plan: string;
    prices: { inputPer1kMicros: number; outputPer1kMicros: number };
  },
  segments: readonly PriceSegment[],
): BillLine[] {
  const line = (s: PriceSegment | undefined): BillLine => {
    const input = s ? s.inputPer1kMicros : t.prices.inputPer1kMicros;
    const output = s ? s.outputPer1kMicros : t.prices.outputPer1kMicros;
    const inputTokens = s?.promptTokens ?? 0;
    const outputTokens = s?.completionTokens ?? 0;
    return {
      tenantId: t.id,
      tenant: t.name,
      plan: t.plan,
      firstRequestAt: s?.firstRequestAt ?? null,
      lastRequestAt: s?.lastRequestAt ?? null,
      requests: s?.requests ?? 0,
      inputTokens,
      outputTokens,
      inputPricePer1kMicros: input,
      outputPricePer1kMicros: output,
      inputCostMicros: (inputTokens * input) / 1000,
      outputCostMicros: (outputTokens * output) / 1000,
      billedMicros: s?.costMicros ?? 0,
    };
  };
  return segments.length === 0 ? [line(undefined)] : segments.map(line);
}

export function billTotals(lines: readonly BillLine[]): BillTotals {
  const sum = (f: (l: BillLine) => number) => lines.reduce((a, l) => a + f(l), 0);
  return {
    requests: sum((l) => l.requests),
    inputTokens: sum((l) => l.inputTokens),
    outputTokens: sum((l) => l.outputTokens),
    inputCostMicros: sum((l) => l.inputCostMicros),
    outputCostMicros: sum((l) => l.outputCostMicros),
    billedMicros: sum((l) => l.billedMicros),
  };
}

const HEADER = [
  'month',
  'tenant_id',
  'tenant',
  'plan',
  'first_request_at',
  'last_request_at',
  'requests',
  'input_tokens',
  'input_price_per_1k_usd',
  'input_cost_usd',
  'output_tokens',
  'output_price_per_1k_usd',
  'output_cost_usd',
  'billed_usd',
];

function usd(micros: number): string {
  return (micros / 1_000_000).toFixed(6);
}

/** RFC 4180: quote fields holding a comma, quote or line break; neutralise formula starts. */
function field(v: string | number): string {
  let s = String(v);
  if (/^[=+\-@]/.test(s) && typeof v === 'string') s = `'${s}`;
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** The bill as CSV: one row per line, then a totals row (tenant "TOTAL", no prices). */
export function billCsv(month: string, lines: readonly BillLine[]): string {
  const t = billTotals(lines);
  const rows: (string | number)[][] = [
    HEADER,
    ...lines.map((l) => [
      month,
      l.tenantId,
      l.tenant,
      l.plan,
      l.firstRequestAt ?? '',
      l.lastRequestAt ?? '',
      l.requests,
      l.inputTokens,
      usd(l.inputPricePer1kMicros),
      usd(l.inputCostMicros),
      l.outputTokens,
      usd(l.outputPricePer1kMicros),
      usd(l.outputCostMicros),
      usd(l.billedMicros),
    ]),
    [
      month,
      '',
      'TOTAL',
      '',
      '',
      '',
      t.requests,
      t.inputTokens,
      '',
      usd(t.inputCostMicros),
      t.outputTokens,
      '',
      usd(t.outputCostMicros),
      usd(t.billedMicros),
    ],
  ];
  return rows.map((r) => r.map(field).join(',')).join('\r\n') + '\r\n';
}
