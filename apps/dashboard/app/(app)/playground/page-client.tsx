'use client';
// Send a prompt as a tenant's key and watch the tokens arrive; run it with each decoding
// method in turn (one after another, so they do not queue behind each other) and compare.
import { decodingLabel, HIT_RATE_DEFINITION, TIME_SPLIT_DEFINITION } from '@pipedec/contracts/http';
import { useState } from 'react';
import { formatMs, formatPercent } from '@/lib/format';
import {
  PLAYGROUND_METHODS,
  type PlaygroundMethod,
  type PlaygroundRequest,
} from './playground-request';
import type { RunStats } from './request/route';
import { readCompletionStream } from './sse';

export interface KeyChoice {
  tenantId: string;
  tenantName: string;
  keyId: string;
  prefix: string;
  name: string;
}

interface Run {
  method: PlaygroundMethod;
  state: 'waiting' | 'streaming' | 'done' | 'refused' | 'failed';
  text: string;
  chunks: number;
  completionTokens: number | null;
  startedAt: number;
  firstAt: number | null;
  endAt: number | null;
  error: string | null;
  requestId: string | null;
  /** From the API once the run is accounted: method used, timesteps, hit rate, time split. */
  stats: RunStats | null;
}

const METHOD_LABEL: Record<PlaygroundMethod, string> = {
  pipedec: 'PipeDec (dynamic tree)',
  stpp: 'STPP (static tree)',
  pp: 'PP (plain pipeline)',
  auto: 'auto (the fastest measured here)',
};

export function PlaygroundClient({ choices }: { choices: KeyChoice[] }) {
  const [keyId, setKeyId] = useState(choices[0].keyId);
  const [model, setModel] = useState('pipedec-demo');
  const [prompt, setPrompt] = useState('Once upon a time');
  const [maxTokens, setMaxTokens] = useState(32);
  const [methods, setMethods] = useState<PlaygroundMethod[]>(['pipedec']);
  const [runs, setRuns] = useState<Run[]>([]);
  const [busy, setBusy] = useState(false);
  const choice = choices.find((c) => c.keyId === keyId) ?? choices[0];
  const pp = runs.find((r) => r.method === 'pp');

  const update = (method: PlaygroundMethod, f: (r: Run) => Run) =>
    setRuns((rs) => rs.map((r) => (r.method === method ? f(r) : r)));

  async function runOne(method: PlaygroundMethod, seed: number) {
    const startedAt = performance.now();
    update(method, (r) => ({ ...r, state: 'streaming', startedAt }));
    const body: PlaygroundRequest = {
      tenantId: choice.tenantId,
      keyId: choice.keyId,
      model,
      prompt,
      method,
      maxTokens,
      seed,
    };
    try {
      const res = await fetch('/playground/stream', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      if (!res.ok || !res.body) {
        const j = (await res.json().catch(() => null)) as { error?: { message?: string } } | null;
        const message = j?.error?.message ?? `status ${res.status}`;
        // 409: the API will not act as a revoked or expired key (key_not_usable).
        const refused = [401, 403, 409, 429].includes(res.status);
        update(method, (r) => ({
          ...r,
          state: refused ? 'refused' : 'failed',
          error: message,
          endAt: performance.now(),
        }));
        return;
      }
      let requestId: string | null = null;
      await readCompletionStream(res.body, (c) => {
        const now = performance.now();
        requestId ??= c.id ? c.id.replace(/^cmpl-/, '') : null;
        update(method, (r) => ({
          ...r,
          requestId,
          text: r.text + c.text,
          chunks: r.chunks + (c.text ? 1 : 0),
          firstAt: r.firstAt ?? (c.text ? now : null),
          completionTokens: c.usage?.completionTokens ?? r.completionTokens,
        }));
      });
      update(method, (r) => ({ ...r, state: 'done', endAt: performance.now() }));
      if (requestId) {
        const stats = await runStats(choice.tenantId, requestId);
        update(method, (r) => ({ ...r, stats }));
      }
    } catch (error) {
      update(method, (r) => ({
        ...r,
        state: 'failed',
        error: String(error),
        endAt: performance.now(),
      }));
    }
  }

  async function run() {
    if (methods.length === 0) return;
    setBusy(true);
    const seed = Math.floor(Math.random() * 2 ** 31);
    setRuns(
      methods.map((method) => ({
        method,
        state: 'waiting',
        text: '',
        chunks: 0,
        completionTokens: null,
        startedAt: 0,
        firstAt: null,
        endAt: null,
        error: null,
        requestId: null,
        stats: null,
      })),
    );
    for (const m of methods) await runOne(m, seed);
    setBusy(false);
  }

  return (
    <>
      <form
        className="card stack"
        onSubmit={(e) => {
          e.preventDefault();
          void run();
        }}
      >
        <div className="row">
          <label>
            Key
            <select value={keyId} onChange={(e) => setKeyId(e.target.value)} name="key">
              {choices.map((c) => (
                <option key={c.keyId} value={c.keyId}>
                  {c.tenantName} · {c.prefix}… ({c.name})
                </option>
              ))}
            </select>
          </label>
          <label>
            Model
            <input value={model} onChange={(e) => setModel(e.target.value)} name="model" required />
          </label>
          <label>
            Max tokens
            <input
              type="number"
              min={1}
              max={4096}
              value={maxTokens}
              onChange={(e) => setMaxTokens(Number(e.target.value))}
              name="maxTokens"
            />
          </label>
          <fieldset className="row" style={{ padding: '0.3rem 0.6rem' }}>
            <legend>Methods</legend>
            {PLAYGROUND_METHODS.map((m) => (
              <label
                key={m}
                style={{ flexDirection: 'row', alignItems: 'center', fontWeight: 400 }}
              >
                <input
                  type="checkbox"
                  name="method"
                  value={m}
                  checked={methods.includes(m)}
                  onChange={(e) =>
                    setMethods((ms) =>
                      e.target.checked
                        ? PLAYGROUND_METHODS.filter((x) => x === m || ms.includes(x))
                        : ms.filter((x) => x !== m),
                    )
                  }
                />{' '}
                {m}
              </label>
            ))}
          </fieldset>
        </div>
        <label>
          Prompt
          <textarea
            name="prompt"
            rows={4}
            value={prompt}
            onChange={(e) => setPrompt(e.target.value)}
            required
          />
        </label>
        <div className="row">
          <button type="submit" className="primary" disabled={busy || methods.length === 0}>
            {busy
              ? 'Generating…'
              : methods.length > 1
                ? `Send with ${methods.length} methods`
                : 'Send'}
          </button>
          {methods.length === 0 && <span className="error small">Pick at least one method.</span>}
        </div>
      </form>
      {runs.length > 0 && (
        <>
          <h2>Speeds</h2>
          <p className="small muted">
            A timestep is one step of the pipeline; PipeDec and STPP commit several tokens in a step
            when the draft guesses right, PP decodes without a draft. Tokens per timestep counts the
            tokens after the first over the timesteps after the first token. Tick pp to compare: the
            speedup is PP&apos;s timesteps over each method&apos;s, and the tokens must be identical
            (the methods are lossless).
          </p>
          <p className="small muted" data-testid="hit-rate-definition">
            {HIT_RATE_DEFINITION}
          </p>
          <p className="small muted" data-testid="time-split-definition">
            {TIME_SPLIT_DEFINITION}
          </p>
          <div className="table-wrap">
            <table aria-label="Speed per method">
              <thead>
                <tr>
                  <th scope="col">Method</th>
                  <th scope="col">State</th>
                  <th scope="col" className="num">
                    Time to first token
                  </th>
                  <th scope="col" className="num">
                    Tokens
                  </th>
                  <th scope="col" className="num">
                    Tokens / s (after first)
                  </th>
                  <th scope="col" className="num">
                    Total
                  </th>
                  <th scope="col">Decoded with</th>
                  <th scope="col" className="num">
                    Timesteps
                  </th>
                  <th scope="col" className="num">
                    Tokens / timestep
                  </th>
                  <th scope="col" className="num">
                    Hit rate
                  </th>
                  <th scope="col" className="num">
                    Draft
                  </th>
                  <th scope="col" className="num">
                    Stage compute
                  </th>
                  <th scope="col" className="num">
                    Transfer
                  </th>
                  {pp && (
                    <>
                      <th scope="col" className="num">
                        Speedup over PP
                      </th>
                      <th scope="col">Same tokens as PP</th>
                    </>
                  )}
                </tr>
              </thead>
              <tbody>
                {runs.map((r) => {
                  const tokens = r.completionTokens ?? r.chunks;
                  const decodeS =
                    r.firstAt !== null && r.endAt !== null ? (r.endAt - r.firstAt) / 1000 : null;
                  return (
                    <tr key={r.method} data-method={r.method}>
                      <th scope="row">{METHOD_LABEL[r.method]}</th>
                      <td>
                        <span
                          className={`badge ${r.state === 'done' ? 'ok' : r.state === 'refused' || r.state === 'failed' ? 'bad' : ''}`}
                        >
                          {r.state}
                        </span>
                      </td>
                      <td className="num">
                        {r.firstAt === null ? '–' : formatMs(r.firstAt - r.startedAt)}
                      </td>
                      <td className="num">{tokens}</td>
                      <td className="num">
                        {decodeS && tokens > 1 ? ((tokens - 1) / decodeS).toFixed(1) : '–'}
                      </td>
                      <td className="num">
                        {r.endAt === null ? '–' : formatMs(r.endAt - r.startedAt)}
                      </td>
                      <td data-testid={`decoded-${r.method}`}>{r.stats?.method ?? '–'}</td>
                      <td className="num" data-testid={`timesteps-${r.method}`}>
                        {r.stats?.timesteps ?? '–'}
                      </td>
                      <td className="num" data-testid={`per-step-${r.method}`}>
                        {r.stats?.tokensPerTimestep == null
                          ? '–'
                          : r.stats.tokensPerTimestep.toFixed(2)}
                      </td>
                      <td className="num" data-testid={`hit-rate-${r.method}`}>
                        {r.stats ? formatPercent(r.stats.hitRate) : '–'}
                      </td>
                      <td className="num" data-testid={`draft-ms-${r.method}`}>
                        {formatMs(r.stats?.time?.draftMs)}
                      </td>
                      <td className="num" data-testid={`compute-ms-${r.method}`}>
                        {formatMs(r.stats?.time?.stageComputeMs)}
                      </td>
                      <td className="num" data-testid={`transfer-ms-${r.method}`}>
                        {formatMs(r.stats?.time?.transferMs)}
                      </td>
                      {pp && (
                        <>
                          <td className="num" data-testid={`speedup-${r.method}`}>
                            {pp.stats?.timesteps && r.stats?.timesteps
                              ? `${(pp.stats.timesteps / r.stats.timesteps).toFixed(2)}×`
                              : '–'}
                          </td>
                          <td data-testid={`same-${r.method}`}>
                            {pp.state === 'done' && r.state === 'done'
                              ? pp.text === r.text
                                ? 'yes'
                                : 'no'
                              : '–'}
                          </td>
                        </>
                      )}
                    </tr>
                  );
                })}
              </tbody>
            </table>
          </div>
          {runs.map((r) =>
            r.stats?.estimates ? <AutoWeighed key={`weighed-${r.method}`} stats={r.stats} /> : null,
          )}
          <div className="outputs" style={{ marginTop: '1rem' }}>
            {runs.map((r) => (
              <section key={r.method} aria-labelledby={`out-${r.method}`}>
                <h3 id={`out-${r.method}`} style={{ margin: '0 0 0.3rem' }}>
                  {METHOD_LABEL[r.method]}
                </h3>
                {r.error ? (
                  <p className="error-state" role="alert" data-testid={`error-${r.method}`}>
                    {r.state === 'refused' ? 'Refused: ' : 'Failed: '}
                    {r.error}
                  </p>
                ) : (
                  <div
                    className="output"
                    data-testid={`output-${r.method}`}
                    aria-live="polite"
                    aria-busy={r.state === 'streaming'}
                  >
                    {r.text || (r.state === 'waiting' ? 'waiting…' : '')}
                  </div>
                )}
              </section>
            ))}
          </div>
        </>
      )}
    </>
  );
}

/**
 * What auto weighed for its run: each candidate's decode time per token as the pipeline's head
 * estimated it when choosing (libs/engine auto.ts), as bars, shortest first; the one it ran is
 * marked. An explored or untried candidate is run to measure it, not because it was fastest.
 */
function AutoWeighed({ stats }: { stats: RunStats }) {
  const entries = Object.entries(stats.estimates ?? {}).sort((a, b) => a[1] - b[1]);
  const longest = Math.max(...entries.map(([, ms]) => ms));
  const ran = decodingLabel({ method: stats.method, width: stats.width ?? 1 });
  return (
    <section aria-labelledby="auto-weighed" style={{ marginTop: '1rem' }}>
      <h3 id="auto-weighed" style={{ margin: '0 0 0.3rem' }}>
        What auto weighed
      </h3>
      <p className="small muted">
        Decode time per token each method is estimated to take on this pipeline, measured on the
        requests it served (speculative ones compared over the same draft agreement). auto ran{' '}
        <strong data-testid="auto-ran">{ran}</strong>
        {stats.reason === 'fastest' ? ', the fastest.' : ` (${stats.reason}: to measure it).`}
      </p>
      <table aria-label="What auto weighed" className="weighed">
        <tbody>
          {entries.map(([candidate, ms]) => (
            <tr key={candidate} data-candidate={candidate}>
              <th scope="row">{candidate === ran ? <strong>{candidate}</strong> : candidate}</th>
              <td style={{ width: '60%' }}>
                <div className="quota-track" aria-hidden="true">
                  <div
                    className="quota-fill"
                    style={{ width: `${((ms / longest) * 100).toFixed(1)}%` }}
                  />
                </div>
              </td>
              <td className="num" data-testid={`weighed-${candidate}`}>
                {ms.toFixed(2)} ms/token
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

/**
 * The run's statistics once the API has accounted it (it does so as the stream ends; a few
 * tries cover the moment between the last token and the record).
 */
async function runStats(tenantId: string, requestId: string): Promise<RunStats | null> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const res = await fetch(
      `/playground/request?tenant=${encodeURIComponent(tenantId)}&id=${encodeURIComponent(requestId)}`,
    );
    if (!res.ok) return null;
    const stats = (await res.json()) as RunStats;
    if (stats.accounted) return stats;
    await new Promise((r) => setTimeout(r, 250));
  }
  return null;
}
