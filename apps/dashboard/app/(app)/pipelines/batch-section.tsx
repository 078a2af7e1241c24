'use client';
// One pipeline's batch in the live view: the requests its head runs now, how many requests
// and rows each stage compute call took (one call computes one timestep's rows of every
// request it takes), and the tokens per second it streams, with their last minutes as charts.
// The API pools these from the stages' heartbeats over about the last 5 s (contracts
// pipeline-batch.ts); a dash means no stage computed lately or no head reported.
import type { PipelineView } from '@/lib/schemas';
import { LineChart } from '../_components/line-chart';

function ratio(v: number | null): string {
  return v === null ? '–' : v.toFixed(2);
}

export function BatchSection({
  pipeline: p,
  past,
  x,
}: {
  pipeline: PipelineView;
  /** This pipeline in each snapshot of the history (undefined where it was absent). */
  past: (PipelineView | undefined)[];
  x: number[];
}) {
  const b = p.batch;
  const id = `batch-${p.pipelineId}`;
  return (
    <section aria-labelledby={id} data-testid={id}>
      <h3 id={id}>Batch</h3>
      <dl className="tiles">
        <div>
          <dt>Requests in flight</dt>
          <dd data-testid={`${id}-in-flight`} data-value={b.inFlight ?? ''}>
            {b.inFlight ?? '–'}
          </dd>
        </div>
        <div>
          <dt>Requests per stage call</dt>
          <dd data-testid={`${id}-requests`} data-value={b.requestsPerCall ?? ''}>
            {ratio(b.requestsPerCall)}
          </dd>
        </div>
        <div>
          <dt>Rows per stage call</dt>
          <dd data-testid={`${id}-rows`} data-value={b.rowsPerCall ?? ''}>
            {ratio(b.rowsPerCall)}
          </dd>
        </div>
        <div>
          <dt>Tokens per second</dt>
          <dd data-testid={`${id}-tokens-per-second`} data-value={b.tokensPerSecond ?? ''}>
            {b.tokensPerSecond === null ? '–' : b.tokensPerSecond.toFixed(1)}
          </dd>
        </div>
      </dl>
      <div className="charts">
        <LineChart
          title="Throughput (tokens/s)"
          x={x}
          xLabel="clock"
          unit="count"
          series={[{ name: 'tokens/s', values: past.map((q) => q?.batch.tokensPerSecond ?? null) }]}
        />
        <LineChart
          title="Requests and rows per stage call"
          x={x}
          xLabel="clock"
          unit="ratio"
          series={[
            { name: 'requests / call', values: past.map((q) => q?.batch.requestsPerCall ?? null) },
            { name: 'rows / call', values: past.map((q) => q?.batch.rowsPerCall ?? null) },
          ]}
        />
      </div>
    </section>
  );
}
