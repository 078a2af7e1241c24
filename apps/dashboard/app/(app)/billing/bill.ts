// A month's bill per tenant: input and output tokens times the plan's prices, next to the
// cost the API recorded (rounded up per request, so it can exceed the product by < 1 micro-
// dollar per request). Pure, so the page and the CSV export compute it the same way.

export interface BillLine {
  tenantId: string;
  tenant: string;
  plan: string;
  requests: number;
  inputTokens: number;
  outputTokens: number;
  inputPricePer1kMicros: number;
  outputPricePer1kMicros: number;
  inputCostMicros: number;
  outputCostMicros: number;
  /** What the API recorded for the month's requests. */
  billedMicros: number;
}

export function billLine(
  t: {
    id: string;
    name: string;
    plan: string;
    prices: { inputPer1kMicros: number; outputPer1kMicros: number };
  },
  totals: { requests: number; promptTokens: number; completionTokens: number; costMicros: number },
): BillLine {
  return {
    tenantId: t.id,
    tenant: t.name,
    plan: t.plan,
    requests: totals.requests,
    inputTokens: totals.promptTokens,
    outputTokens: totals.completionTokens,
    inputPricePer1kMicros: t.prices.inputPer1kMicros,
    outputPricePer1kMicros: t.prices.outputPer1kMicros,
    inputCostMicros: (totals.promptTokens * t.prices.inputPer1kMicros) / 1000,
    outputCostMicros: (totals.completionTokens * t.prices.outputPer1kMicros) / 1000,
    billedMicros: totals.costMicros,
  };
}

const CSV_COLUMNS: [string, (l: BillLine) => string | number][] = [
  ['tenant_id', (l) => l.tenantId],
  ['tenant', (l) => l.tenant],
  ['plan', (l) => l.plan],
  ['requests', (l) => l.requests],
  ['input_tokens', (l) => l.inputTokens],
  ['input_price_per_1k_usd', (l) => usd(l.inputPricePer1kMicros)],
  ['input_cost_usd', (l) => usd(l.inputCostMicros)],
  ['output_tokens', (l) => l.outputTokens],
  ['output_price_per_1k_usd', (l) => usd(l.outputPricePer1kMicros)],
  ['output_cost_usd', (l) => usd(l.outputCostMicros)],
  ['billed_usd', (l) => usd(l.billedMicros)],
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

export function billCsv(month: string, lines: BillLine[]): string {
  const rows = [
    ['month', ...CSV_COLUMNS.map(([h]) => h)].join(','),
    ...lines.map((l) => [month, ...CSV_COLUMNS.map(([, f]) => f(l))].map(field).join(',')),
  ];
  return rows.join('\r\n') + '\r\n';
}
