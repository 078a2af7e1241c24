'use client';
// The live view: a snapshot per second from /pipelines/stream, with the last minutes of
// history kept here (stage utilisation, hit rate, tokens per timestep, queue depth).
import { useEffect, useState } from 'react';
import { formatDateTime, formatPercent } from '@/lib/format';
import type { PipelinesSnapshot, PipelineView } from '@/lib/schemas';
import { LineChart } from '../_components/line-chart';
import type { StreamStatus } from './stream-status';

const WINDOW_MS = 5 * 60_000;

interface History {
  snapshots: PipelinesSnapshot[];
}

function keep(h: History, snap: PipelinesSnapshot): History {
  const cutoff = snap.at - WINDOW_MS;
  return { snapshots: [...h.snapshots.filter((s) => s.at >= cutoff && s.at < snap.at), snap] };
}

export function PipelinesClient({
  initial,
  unavailable,
}: {
  initial: PipelinesSnapshot | null;
  /** The first load failed (its error is shown above): no empty-state text then. */
  unavailable: boolean;
}) {
  const [history, setHistory] = useState<History>({ snapshots: initial ? [initial] : [] });
  const [status, setStatus] = useState<StreamStatus | null>(null);

  useEffect(() => {
    const source = new EventSource('/pipelines/stream');
    source.addEventListener('snapshot', (e) => {
      const snap = JSON.parse((e as MessageEvent<string>).data) as PipelinesSnapshot;
      setHistory((h) => keep(h, snap));
    });
    source.addEventListener('status', (e) => {
      setStatus(JSON.parse((e as MessageEvent<string>).data) as StreamStatus);
    });
    source.addEventListener('expired', () => {
      source.close();
      window.location.assign('/login?expired=1');
    });
    source.onerror = () =>
      setStatus({ mode: 'none', connected: false, reason: 'the live stream dropped; retrying' });
    return () => source.close();
  }, []);

  const latest = history.snapshots[history.snapshots.length - 1];
  const x = history.snapshots.map((s) => s.at);
  return (
    <>
      <p className={`live ${status?.connected ? 'on' : ''}`} role="status" aria-live="polite">
        {status === null
          ? 'Connecting to the live stream…'
          : status.mode === 'polling'
            ? 'Live (the API is polled every 2 s)'
            : `Not live: ${status.reason}`}
        {latest && (
          <span className="muted">
            {' '}
            · last update {formatDateTime(new Date(latest.at).toISOString())}
          </span>
        )}
      </p>
      {!latest ? (
        unavailable ? null : (
          <p className="empty">
            No pipeline state yet. Stage nodes appear here once they register.
          </p>
        )
      ) : (
        <>
          <dl className="tiles">
            <div>
              <dt>Pipelines</dt>
              <dd>
                {latest.pipelines.filter((p) => p.whole).length} whole / {latest.pipelines.length}
              </dd>
            </div>
            <div>
              <dt>Queue depth</dt>
              <dd data-testid="queue-depth">{latest.queueDepth ?? '–'}</dd>
            </div>
            <div>
              <dt>Requests running</dt>
              <dd>{latest.pipelines.reduce((a, p) => a + p.activeRequests, 0)}</dd>
            </div>
          </dl>
          <LineChart
            title="Queue depth (jobs waiting)"
            x={x}
            xLabel="clock"
            unit="count"
            series={[{ name: 'waiting', values: history.snapshots.map((s) => s.queueDepth) }]}
          />
          {latest.pipelines.length === 0 && (
            <p className="empty">No stage node has registered. Start a pipeline to see it here.</p>
          )}
          {latest.pipelines.map((p) => (
            <PipelineCard key={p.pipelineId} pipeline={p} history={history} x={x} />
          ))}
        </>
      )}
    </>
  );
}

function PipelineCard({
  pipeline: p,
  history,
  x,
}: {
  pipeline: PipelineView;
  history: History;
  x: number[];
}) {
  const past = history.snapshots.map((s) => s.pipelines.find((q) => q.pipelineId === p.pipelineId));
  return (
    <section className="card" style={{ marginTop: '1rem' }} aria-labelledby={`p-${p.pipelineId}`}>
      <h2 id={`p-${p.pipelineId}`} style={{ marginTop: 0 }}>
        Pipeline {p.pipelineId}{' '}
        <span className={`badge ${p.whole ? 'ok' : 'bad'}`}>
          {p.whole ? 'whole' : 'incomplete'}
        </span>
      </h2>
      {p.problems.length > 0 && (
        <ul className="error small">
          {p.problems.map((pr) => (
            <li key={pr}>{pr}</li>
          ))}
        </ul>
      )}
      {p.stages.length === 0 ? (
        <p className="muted small">No stage detail for this pipeline.</p>
      ) : (
        <>
          <p className="small">
            Hit rate <strong>{formatPercent(p.hitRate)}</strong> · tokens per timestep{' '}
            <strong>{p.tokensPerTimestep === null ? '–' : p.tokensPerTimestep.toFixed(2)}</strong> ·{' '}
            {p.activeRequests} running
          </p>
          <ol className="stages" aria-label={`Stages of ${p.pipelineId}`}>
            {p.stages.map((s) => (
              <li key={s.stageIndex}>
                <strong>Stage {s.stageIndex}</strong>
                {s.stageIndex === 0 && <span className="muted small"> (head)</span>}{' '}
                <span className={`badge ${s.health}`}>{s.health.replace('_', ' ')}</span>
                <div className="small">
                  layers {s.layerStart}–{s.layerEnd - 1} of {s.numLayers}
                </div>
                <div className="small muted mono">{s.address}</div>
                <div className="small">utilisation {formatPercent(s.utilisation, 0)}</div>
              </li>
            ))}
          </ol>
          <div className="charts">
            <LineChart
              title="Utilisation per stage"
              x={x}
              xLabel="clock"
              unit="fraction"
              series={p.stages.map((s) => ({
                name: `stage ${s.stageIndex}`,
                values: past.map(
                  (q) => q?.stages.find((t) => t.stageIndex === s.stageIndex)?.utilisation ?? null,
                ),
              }))}
            />
            <LineChart
              title="Hit rate"
              x={x}
              xLabel="clock"
              unit="fraction"
              series={[{ name: 'hit rate', values: past.map((q) => q?.hitRate ?? null) }]}
            />
            <LineChart
              title="Tokens per timestep"
              x={x}
              xLabel="clock"
              unit="ratio"
              series={[
                {
                  name: 'tokens / timestep',
                  values: past.map((q) => q?.tokensPerTimestep ?? null),
                },
              ]}
            />
          </div>
        </>
      )}
    </section>
  );
}
