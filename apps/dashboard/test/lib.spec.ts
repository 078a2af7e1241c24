// Unit tests of the dashboard's pure modules: time ranges, bill and CSV, the
// metrics alignment, form parsing and the completion-stream reader.
import type { PriceSegment } from '@pipedec/contracts/http';
import { billCsv, billLines, billTotals } from '../app/(app)/billing/bill.js';
import { readCompletionStream, type CompletionChunk } from '../app/(app)/playground/sse.js';
import { dollarsToMicros, FormError, optionalInt } from '../lib/form-data.js';
import { formatMicros } from '../lib/format.js';
import { align } from '../lib/metrics-merge.js';
import {
  browserAddress,
  crossOrigin,
  loginPath,
  sameOriginPath,
  servedOverHttps,
} from '../lib/request-origin.js';
import type { MetricsPoint } from '../lib/schemas.js';
import { securityHeaders } from '../lib/security-headers.js';
import { bucketStarts, monthBounds, recentMonths, timeRange } from '../lib/time-range.js';

const NOW = new Date('2026-11-27T10:30:00Z');

describe('time ranges', () => {
  it('starts on a bucket boundary and covers now, hourly for 24h', () => {
    const r = timeRange('24h', NOW);
    expect(r.granularity).toBe('hour');
    expect(r.from.toISOString()).toBe('2026-11-26T10:00:00.000Z');
    const b = bucketStarts(r);
    expect(b).toHaveLength(25);
    expect(new Date(b[b.length - 1]).toISOString()).toBe('2026-11-27T10:00:00.000Z');
  });

  it('has 15 min and 1 h views, per minute', () => {
    const q = timeRange('15m', new Date('2026-11-27T10:30:20Z'));
    expect(q.granularity).toBe('minute');
    expect(q.from.toISOString()).toBe('2026-11-27T10:15:00.000Z');
    expect(bucketStarts(q)).toHaveLength(16);
    expect(bucketStarts(timeRange('1h', NOW))).toHaveLength(61);
  });

  it('falls back to the default for an unknown key and uses days for 30d', () => {
    expect(timeRange('bogus', NOW).key).toBe('7d');
    expect(timeRange(['30d'], NOW).key).toBe('7d');
    const r = timeRange('30d', NOW);
    expect(r.granularity).toBe('day');
    expect(bucketStarts(r)).toHaveLength(31);
  });

  it('parses month keys and lists recent months across a year end', () => {
    expect(monthBounds('2026-12')).toEqual({
      from: new Date('2026-12-01T00:00:00Z'),
      to: new Date('2027-01-01T00:00:00Z'),
    });
    expect(monthBounds('2026-13')).toBeNull();
    expect(monthBounds('2026-1')).toBeNull();
    expect(recentMonths(new Date('2027-01-15T00:00:00Z'), 3)).toEqual([
      '2027-01',
      '2026-12',
      '2026-11',
    ]);
  });
});

describe('bill', () => {
  const tenant = {
    id: 't1',
    name: 'acme',
    plan: 'pro',
    prices: { inputPer1kMicros: 500, outputPer1kMicros: 1500 },
  };
  const segment = (over: Partial<PriceSegment>): PriceSegment => ({
    inputPer1kMicros: 500,
    outputPer1kMicros: 1500,
    firstRequestAt: '2026-11-02T10:00:00.000Z',
    lastRequestAt: '2026-11-09T10:00:00.000Z',
    requests: 3,
    promptTokens: 2000,
    completionTokens: 300,
    costMicros: 1451,
    ...over,
  });

  it('multiplies tokens by the price per 1000', () => {
    const [l] = billLines(tenant, [segment({})]);
    expect(l.inputCostMicros).toBe(1000);
    expect(l.outputCostMicros).toBe(450);
    expect(l.billedMicros).toBe(1451);
  });

  it('after a mid-month price change, bills each part at the price it was billed at', () => {
    // The plan now costs 2000/6000; the first half of the month was billed at 500/1500.
    const now = { ...tenant, prices: { inputPer1kMicros: 2000, outputPer1kMicros: 6000 } };
    const lines = billLines(now, [
      segment({}),
      segment({
        inputPer1kMicros: 2000,
        outputPer1kMicros: 6000,
        firstRequestAt: '2026-11-15T10:00:00.000Z',
        lastRequestAt: '2026-11-20T10:00:00.000Z',
        requests: 1,
        promptTokens: 1000,
        completionTokens: 100,
        costMicros: 2600,
      }),
    ]);
    expect(lines.map((l) => [l.inputPricePer1kMicros, l.outputPricePer1kMicros])).toEqual([
      [500, 1500],
      [2000, 6000],
    ]);
    // Each line multiplies out: billed is the product, rounded up per request.
    for (const l of lines) {
      const rounding = l.billedMicros - (l.inputCostMicros + l.outputCostMicros);
      expect(rounding).toBeGreaterThanOrEqual(0);
      expect(rounding).toBeLessThan(l.requests);
    }
    expect(billTotals(lines)).toEqual({
      requests: 4,
      inputTokens: 3000,
      outputTokens: 400,
      inputCostMicros: 3000,
      outputCostMicros: 1050,
      billedMicros: 4051,
    });
  });

  it('lists a tenant without requests once, at its current prices', () => {
    expect(billLines(tenant, [])).toMatchObject([
      { requests: 0, inputPricePer1kMicros: 500, billedMicros: 0, firstRequestAt: null },
    ]);
  });

  it('writes RFC 4180 CSV with quoted fields, neutralised formulas and a totals row', () => {
    const lines = [
      ...billLines({ ...tenant, name: '=cmd,"x"' }, [
        segment({ requests: 1, promptTokens: 10, completionTokens: 2, costMicros: 9 }),
      ]),
      ...billLines({ ...tenant, id: 't2', name: 'b' }, [
        segment({ requests: 2, promptTokens: 20, completionTokens: 4, costMicros: 17 }),
      ]),
    ];
    const csv = billCsv('2026-11', lines);
    const [header, row, , total, end] = csv.split('\r\n');
    expect(header.split(',')).toEqual([
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
    ]);
    expect(row).toBe(
      `2026-11,t1,"'=cmd,""x""",pro,2026-11-02T10:00:00.000Z,2026-11-09T10:00:00.000Z,1,10,0.000500,0.000005,2,0.001500,0.000003,0.000009`,
    );
    expect(total).toBe('2026-11,,TOTAL,,,,3,30,,0.000015,6,,0.000009,0.000026');
    expect(end).toBe('');
  });
});

describe('metrics alignment', () => {
  const point = (bucketStart: string, requests: number): MetricsPoint => ({
    bucketStart,
    requests,
    failedRequests: 0,
    promptTokens: 10 * requests,
    completionTokens: 5,
    costMicros: 100,
    ttftP50Ms: 12,
    ttftP95Ms: 30,
    tpotP50Ms: 4,
    tpotP95Ms: 9,
  });

  it('fills every bucket of the range, zero where there was no traffic', () => {
    const range = timeRange('24h', NOW);
    const m = align(range, [point('2026-11-27T09:00:00.000Z', 2)]);
    expect(m.points).toHaveLength(m.x.length);
    expect(m.points.filter((p) => p.requests > 0)).toHaveLength(1);
    const at9 = m.points[m.x.indexOf(Date.parse('2026-11-27T09:00:00Z'))];
    expect(at9).toMatchObject({ requests: 2, ttftP95Ms: 30 });
    expect(m.points.find((p) => p.requests === 0)?.ttftP50Ms).toBeNull();
  });
});

describe('form parsing', () => {
  const form = (entries: Record<string, string>) => {
    const f = new FormData();
    for (const [k, v] of Object.entries(entries)) f.set(k, v);
    return f;
  };

  it('turns dollars per 1k into integer micro-dollars without float error', () => {
    expect(dollarsToMicros(form({ p: '0.29' }), 'p')).toBe(290_000);
    expect(dollarsToMicros(form({ p: '12.000001' }), 'p')).toBe(12_000_001);
    expect(() => dollarsToMicros(form({ p: '1e3' }), 'p')).toThrow(FormError);
    expect(() => dollarsToMicros(form({ p: '0.0000001' }), 'p')).toThrow(FormError);
  });

  it('reads optional whole numbers, blank as the given empty value', () => {
    expect(optionalInt(form({ n: '1_000_000' }), 'n', null)).toBe(1_000_000);
    expect(optionalInt(form({ n: '' }), 'n', null)).toBeNull();
    expect(optionalInt(form({}), 'n', undefined)).toBeUndefined();
    expect(() => optionalInt(form({ n: '-3' }), 'n', null)).toThrow(FormError);
    expect(() => optionalInt(form({ n: '2.5' }), 'n', null)).toThrow(FormError);
  });

  it('formats micro-dollars with enough digits for tiny amounts', () => {
    expect(formatMicros(1_234_560_000)).toBe('$1,234.56');
    expect(formatMicros(9)).toBe('$0.000009');
    expect(formatMicros(0)).toBe('$0.00');
  });
});

describe('completion stream reader', () => {
  function streamOf(parts: string[]): ReadableStream<Uint8Array> {
    const enc = new TextEncoder();
    return new ReadableStream({
      start(c) {
        for (const p of parts) c.enqueue(enc.encode(p));
        c.close();
      },
    });
  }
  const chunk = (text: string, extra: object = {}) =>
    `data: ${JSON.stringify({ choices: [{ index: 0, text, finish_reason: null }], ...extra })}\n\n`;

  it('yields each delta even when records are split across reads, and stops at [DONE]', async () => {
    const all =
      chunk('Hel') +
      chunk('lo, é') +
      chunk('', { usage: { prompt_tokens: 3, completion_tokens: 2 } });
    const bytes = new TextEncoder().encode(all + 'data: [DONE]\n\n' + chunk('after'));
    // Split inside a record and inside the two-byte "é".
    const cut1 = 20;
    const cut2 = all.indexOf('é') + 1; // ASCII before it: char index = byte index
    const parts = [bytes.slice(0, cut1), bytes.slice(cut1, cut2), bytes.slice(cut2)];
    const got: CompletionChunk[] = [];
    await readCompletionStream(
      new ReadableStream({
        start(c) {
          for (const p of parts) c.enqueue(p);
          c.close();
        },
      }),
      (c) => got.push(c),
    );
    expect(got.map((c) => c.text).join('')).toBe('Hello, é');
    expect(got[got.length - 1].usage).toEqual({ promptTokens: 3, completionTokens: 2 });
  });

  it('throws the error a stream reports', async () => {
    await expect(
      readCompletionStream(
        streamOf([
          chunk('a'),
          `data: ${JSON.stringify({ error: { message: 'pipeline lost' } })}\n\n`,
        ]),
        () => undefined,
      ),
    ).rejects.toThrow('pipeline lost');
  });
});

describe('sign-in request rules', () => {
  it('sends a signed-out browser to the login with the page it asked for', () => {
    expect(loginPath(false, '/audit?action=tenant.')).toBe(
      '/login?next=%2Faudit%3Faction%3Dtenant.',
    );
    expect(loginPath(true, '/billing?month=2026-11')).toBe(
      '/login?expired=1&next=%2Fbilling%3Fmonth%3D2026-11',
    );
    expect(loginPath(false, '/')).toBe('/login');
    expect(loginPath(true, null)).toBe('/login?expired=1');
    expect(loginPath(false, '//evil.example')).toBe('/login');
    expect(loginPath(false, '/login?next=/x')).toBe('/login');
  });

  it('sends the browser after sign-in only to a path of the dashboard', () => {
    expect(sameOriginPath('/tenants/abc?tab=keys#k')).toBe('/tenants/abc?tab=keys#k');
    for (const evil of [
      '/\\evil.example',
      '/\\/evil.example',
      '//evil.example',
      '///evil.example',
      'https://evil.example',
      'javascript:alert(1)',
      '/\tevil',
      ' /x',
      '',
    ]) {
      expect([evil, sameOriginPath(evil)]).toEqual([evil, '/']);
    }
  });

  it("forwards the nearest hop's address and sees HTTPS from the proxy's header", () => {
    expect(browserAddress('203.0.113.5, 10.0.0.2')).toBe('10.0.0.2');
    expect(browserAddress('::1')).toBe('::1');
    expect(browserAddress(null)).toBeNull();
    expect(servedOverHttps('https')).toBe(true);
    expect(servedOverHttps('HTTPS, http')).toBe(true);
    expect(servedOverHttps('http')).toBe(false);
    expect(servedOverHttps(null)).toBe(false);
  });

  it('tells cross-origin posts from same-origin ones', () => {
    expect(crossOrigin('http://127.0.0.1:3001', '127.0.0.1:3001')).toBe(false);
    expect(crossOrigin(null, '127.0.0.1:3001')).toBe(false);
    expect(crossOrigin('https://evil.example', '127.0.0.1:3001')).toBe(true);
    expect(crossOrigin('null', '127.0.0.1:3001')).toBe(true);
    expect(crossOrigin('http://127.0.0.1:3001', null)).toBe(true);
  });

  it('sends CSP frame-ancestors and nosniff on every page', () => {
    const byKey = Object.fromEntries(securityHeaders.map((h) => [h.key, h.value]));
    expect(byKey['Content-Security-Policy']).toContain("frame-ancestors 'none'");
    expect(byKey['X-Content-Type-Options']).toBe('nosniff');
  });
});
