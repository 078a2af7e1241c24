// The usage and latency charts shared by the overview and a tenant's page.
import { formatInt, formatMicros, formatMs, formatPercent } from '@/lib/format';
import type { Metrics } from '@/lib/metrics-merge';
import { LineChart } from './line-chart';

export function MetricsCharts({ metrics }: { metrics: Metrics }) {
  const { x, points } = metrics;
  const totals = points.reduce(
    (a, p) => ({
      requests: a.requests + p.requests,
      failed: a.failed + p.failedRequests,
      prompt: a.prompt + p.promptTokens,
      completion: a.completion + p.completionTokens,
      cost: a.cost + p.costMicros,
    }),
    { requests: 0, failed: 0, prompt: 0, completion: 0, cost: 0 },
  );
  const weighted = (f: (p: Metrics['points'][number]) => number | null) => {
    let sum = 0;
    let n = 0;
    for (const p of points) {
      const v = f(p);
      if (v !== null && p.requests > 0) {
        sum += v * p.requests;
        n += p.requests;
      }
    }
    return n ? sum / n : null;
  };
  if (totals.requests === 0) {
    return (
      <div className="empty" data-testid="no-traffic">
        <p>No requests in this time range.</p>
        <p>Requests appear here once a tenant calls the API with one of its keys.</p>
      </div>
    );
  }
  return (
    <>
      <dl className="tiles">
        <div>
          <dt>Requests</dt>
          <dd data-testid="range-requests">{formatInt(totals.requests)}</dd>
        </div>
        <div>
          <dt>Tokens (in / out)</dt>
          <dd>
            {formatInt(totals.prompt)} / {formatInt(totals.completion)}
          </dd>
        </div>
        <div>
          <dt>Cost</dt>
          <dd>{formatMicros(totals.cost)}</dd>
        </div>
        <div>
          <dt>Error rate</dt>
          <dd>{totals.requests ? formatPercent(totals.failed / totals.requests) : '–'}</dd>
        </div>
        <div>
          <dt>Time to first token (p50, mean over buckets)</dt>
          <dd>{formatMs(weighted((p) => p.ttftP50Ms))}</dd>
        </div>
      </dl>
      <div className="charts">
        <LineChart
          title="Requests"
          x={x}
          unit="count"
          series={[
            { name: 'requests', values: points.map((p) => p.requests) },
            { name: 'failed', values: points.map((p) => p.failedRequests) },
          ]}
        />
        <LineChart
          title="Tokens"
          x={x}
          unit="count"
          series={[
            { name: 'input', values: points.map((p) => p.promptTokens) },
            { name: 'output', values: points.map((p) => p.completionTokens) },
          ]}
        />
        <LineChart
          title="Cost"
          x={x}
          unit="usd-micros"
          series={[{ name: 'cost', values: points.map((p) => p.costMicros) }]}
        />
        <LineChart
          title="Error rate"
          x={x}
          unit="fraction"
          series={[
            {
              name: 'failed / requests',
              values: points.map((p) => (p.requests ? p.failedRequests / p.requests : null)),
            },
          ]}
        />
        <LineChart
          title="Time to first token (p50, p95)"
          x={x}
          unit="ms"
          series={[
            { name: 'p50', values: points.map((p) => p.ttftP50Ms) },
            { name: 'p95', values: points.map((p) => p.ttftP95Ms) },
          ]}
        />
        <LineChart
          title="Time per output token (p50, p95)"
          x={x}
          unit="ms"
          series={[
            { name: 'p50', values: points.map((p) => p.tpotP50Ms) },
            { name: 'p95', values: points.map((p) => p.tpotP95Ms) },
          ]}
        />
      </div>
    </>
  );
}
