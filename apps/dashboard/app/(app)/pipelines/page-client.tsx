'use client';
// The live view: the API pushes a snapshot about every second over socket.io (namespace
// ADMIN_LIVE.namespace); the last minutes of history are kept here (stage utilisation, hit
// rate, tokens per timestep, queue depth). Each connection attempt presents a fresh single-use
// ticket from /pipelines/live-ticket, so the admin session never reaches this script.
import {
  ADMIN_LIVE,
  HIT_RATE_DEFINITION,
  TIME_SPLIT_DEFINITION,
  type LiveTicket,
  type TimeSplit,
} from '@pipedec/contracts/http';
import { useEffect, useState } from 'react';
import { io } from 'socket.io-client';
import { formatMs, formatPercent } from '@/lib/format';
import { pipelinesSnapshotSchema, type PipelinesSnapshot, type PipelineView } from '@/lib/schemas';
import { LineChart } from '../_components/line-chart';
import { BatchSection } from './batch-section';

const WINDOW_MS = 5 * 60_000;
/** Wait before trying again after the API refused a connection (socket.io does not retry those). */
const REFUSED_RETRY_MS = 3_000;

interface History {
  snapshots: PipelinesSnapshot[];
}

type Connection =
  { state: 'connecting' } | { state: 'live' } | { state: 'reconnecting'; reason: string };

function keep(h: History, snap: PipelinesSnapshot): History {
  const cutoff = snap.at - WINDOW_MS;
  return { snapshots: [...h.snapshots.filter((s) => s.at >= cutoff && s.at < snap.at), snap] };
}

function clockTime(at: number): string {
  return `${new Date(at).toISOString().slice(11, 19)} UTC`;
}

function sessionEnded(): void {
  window.location.assign('/login?expired=1');
}

/** A ticket for one connection attempt; throws with the reason shown to the admin. */
async function fetchTicket(): Promise<string> {
  const res = await fetch('/pipelines/live-ticket', { method: 'POST', cache: 'no-store' });
  if (res.status === 401) {
    sessionEnded();
    throw new Error('your admin session has ended');
  }
  const body = (await res.json().catch(() => null)) as
    (LiveTicket & { error?: undefined }) | { error?: { message?: string } } | null;
  if (!res.ok || !body || !('ticket' in body)) {
    throw new Error(body?.error?.message ?? `no ticket (status ${res.status})`);
  }
  return body.ticket;
}

export function PipelinesClient({
  initial,
  unavailable,
  liveUrl,
}: {
  initial: PipelinesSnapshot | null;
  /** The first load failed (its error is shown above): no empty-state text then. */
  unavailable: boolean;
  /** The API's live namespace as this browser reaches it. */
  liveUrl: string;
}) {
  const [history, setHistory] = useState<History>({ snapshots: initial ? [initial] : [] });
  const [connection, setConnection] = useState<Connection>({ state: 'connecting' });
  /** Connected, but the API could not read (or send readable) pipeline state. */
  const [problem, setProblem] = useState<string | null>(null);

  useEffect(() => {
    let ticketError: string | null = null;
    let retry: ReturnType<typeof setTimeout> | null = null;
    const socket = io(liveUrl, {
      transports: ['websocket'],
      reconnectionDelay: 1_000,
      reconnectionDelayMax: 10_000,
      auth: (cb) => {
        ticketError = null;
        fetchTicket().then(
          (ticket) => cb({ ticket }),
          (error: unknown) => {
            ticketError = error instanceof Error ? error.message : String(error);
            cb({}); // refused as missing_ticket: retried below with a fresh attempt
          },
        );
      },
    });
    socket.on('connect', () => {
      setConnection({ state: 'live' });
      socket.emit(
        ADMIN_LIVE.subscribe,
        { topic: 'pipelines' },
        (ack: { ok: boolean; error?: { message: string } }) => {
          if (!ack.ok) setProblem(`Subscribing failed: ${ack.error?.message ?? 'unknown error'}`);
        },
      );
    });
    socket.on('connect_error', (error: Error & { data?: { code?: string } }) => {
      if (error.data?.code === 'session_ended') return sessionEnded();
      setConnection({ state: 'reconnecting', reason: ticketError ?? error.message });
      // A refusal by the API (not a network failure) is not retried by socket.io itself.
      if (!socket.active) retry = setTimeout(() => socket.connect(), REFUSED_RETRY_MS);
    });
    socket.on('disconnect', (reason) => {
      setConnection({ state: 'reconnecting', reason: `disconnected (${reason})` });
      if (reason === 'io server disconnect') {
        retry = setTimeout(() => socket.connect(), REFUSED_RETRY_MS);
      }
    });
    socket.on(ADMIN_LIVE.expired, () => {
      socket.disconnect();
      sessionEnded();
    });
    socket.on(ADMIN_LIVE.pipelines, (raw: unknown) => {
      const parsed = pipelinesSnapshotSchema.safeParse(raw);
      if (!parsed.success) {
        setProblem(`The API sent a snapshot this page cannot read: ${parsed.error.message}`);
        return;
      }
      setProblem(null);
      setHistory((h) => keep(h, parsed.data));
    });
    socket.on(ADMIN_LIVE.failure, (m: { message?: string }) => {
      setProblem(`The API could not read the pipeline state: ${m.message ?? 'unknown error'}`);
    });
    return () => {
      if (retry) clearTimeout(retry);
      socket.disconnect();
    };
  }, [liveUrl]);

  const latest = history.snapshots[history.snapshots.length - 1];
  const x = history.snapshots.map((s) => s.at);
  return (
    <>
      <p
        className={`live ${connection.state === 'live' ? 'on' : ''}`}
        role="status"
        aria-live="polite"
        data-testid="live-status"
        data-state={connection.state}
      >
        {connection.state === 'connecting'
          ? 'Connecting to the live feed…'
          : connection.state === 'live'
            ? 'Live: the API pushes a snapshot every second'
            : `Reconnecting… (${connection.reason})`}
        {latest && (
          <span className="muted" data-testid="snapshot-at" data-at={latest.at}>
            {' '}
            · last update {clockTime(latest.at)}
          </span>
        )}
      </p>
      {problem && (
        <p className="error" role="alert">
          {problem}
        </p>
      )}
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
            Over its last {p.recentRequests} requests: hit rate{' '}
            <strong data-testid={`hit-rate-${p.pipelineId}`}>{formatPercent(p.hitRate)}</strong> ·
            tokens per timestep{' '}
            <strong data-testid={`per-step-${p.pipelineId}`}>
              {p.tokensPerTimestep === null ? '–' : p.tokensPerTimestep.toFixed(2)}
            </strong>{' '}
            · timesteps{' '}
            <strong data-testid={`timesteps-${p.pipelineId}`}>{p.timesteps ?? '–'}</strong> ·{' '}
            {p.activeRequests} running
          </p>
          <TimeSplitLine pipelineId={p.pipelineId} time={p.time} />
          <p className="small muted">{HIT_RATE_DEFINITION}</p>
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
                <div
                  className="small"
                  data-testid={`utilisation-${p.pipelineId}-${s.stageIndex}`}
                  data-value={s.utilisation ?? ''}
                >
                  utilisation {formatPercent(s.utilisation)}
                </div>
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
          <BatchSection pipeline={p} past={past} x={x} />
        </>
      )}
    </section>
  );
}

/** The pooled time split: each part's total and its share of the requests' wall time. */
function TimeSplitLine({ pipelineId, time }: { pipelineId: string; time: TimeSplit | null }) {
  const part = (label: string, ms: number | undefined, id: string) => (
    <>
      {label}{' '}
      <strong data-testid={`${id}-${pipelineId}`} data-value={ms ?? ''}>
        {formatMs(ms)}
      </strong>{' '}
      ({time && time.wallMs > 0 && ms !== undefined ? formatPercent(ms / time.wallMs) : '–'})
    </>
  );
  return (
    <>
      <p className="small">
        Time split: {part('draft', time?.draftMs, 'draft-ms')} ·{' '}
        {part('stage compute', time?.stageComputeMs, 'compute-ms')} ·{' '}
        {part('transfer', time?.transferMs, 'transfer-ms')} of{' '}
        <strong data-testid={`wall-ms-${pipelineId}`}>{formatMs(time?.wallMs)}</strong> wall
      </p>
      <p className="small muted">{TIME_SPLIT_DEFINITION}</p>
    </>
  );
}
