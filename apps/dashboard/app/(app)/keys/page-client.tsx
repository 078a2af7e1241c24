'use client';
import { API_KEY_SCOPES } from '@pipedec/contracts/http';
import { useActionState, useState } from 'react';
import { formatDateTime } from '@/lib/format';
import type { ApiKey } from '@/lib/schemas';
import { createKey, revokeKey, rotateKey, type KeyActionState } from './actions';

const IDLE: KeyActionState = { error: null, ok: null, reveal: null };

export function KeysClient({
  tenantId,
  tenantName,
  keys,
  prefix,
  total,
}: {
  tenantId: string;
  tenantName: string;
  keys: ApiKey[];
  prefix: string;
  total: number;
}) {
  const [created, create, creating] = useActionState(createKey.bind(null, tenantId), IDLE);
  return (
    <>
      <section className="card" aria-labelledby="new-key-h">
        <h2 id="new-key-h" style={{ marginTop: 0 }}>
          New key for {tenantName}
        </h2>
        <form action={create} className="row">
          <label>
            Name
            <input name="name" required maxLength={100} autoComplete="off" />
          </label>
          <fieldset className="row" style={{ padding: '0.3rem 0.6rem' }}>
            <legend>Scopes</legend>
            {API_KEY_SCOPES.map((s) => (
              <label
                key={s}
                style={{ flexDirection: 'row', alignItems: 'center', fontWeight: 400 }}
              >
                <input type="checkbox" name="scopes" value={s} defaultChecked={s === 'generate'} />{' '}
                {s}
              </label>
            ))}
          </fieldset>
          <label>
            Expires
            <select name="expiry" defaultValue="never">
              <option value="never">never</option>
              <option value="days">after the days below</option>
            </select>
          </label>
          <label>
            Days <span className="hint">1 to 3,650</span>
            <input name="expiresInDays" inputMode="numeric" size={6} />
          </label>
          <button type="submit" className="primary" disabled={creating}>
            {creating ? 'Creating…' : 'Create key'}
          </button>
        </form>
        <Outcome state={created} />
      </section>
      <h2>
        Keys{prefix ? ` with prefix ${prefix}…` : ''}{' '}
        <span className="muted small">
          ({keys.length} of {total})
        </span>
      </h2>
      {keys.length === 0 ? (
        <p className="empty">
          {total === 0
            ? `${tenantName} has no keys yet. Create one above.`
            : 'No key has that prefix.'}
        </p>
      ) : (
        <div className="table-wrap">
          <table>
            <thead>
              <tr>
                <th scope="col">Prefix</th>
                <th scope="col">Name</th>
                <th scope="col">Scopes</th>
                <th scope="col">Status</th>
                <th scope="col">Created</th>
                <th scope="col">Last used</th>
                <th scope="col">Expires</th>
                <th scope="col">Actions</th>
              </tr>
            </thead>
            <tbody>
              {keys.map((k) => (
                <KeyRow key={k.id} tenantId={tenantId} apiKey={k} />
              ))}
            </tbody>
          </table>
        </div>
      )}
    </>
  );
}

function KeyRow({ tenantId, apiKey: k }: { tenantId: string; apiKey: ApiKey }) {
  const [revoked, revoke, revoking] = useActionState(revokeKey.bind(null, tenantId, k.id), IDLE);
  const [rotated, rotate, rotating] = useActionState(rotateKey.bind(null, tenantId, k.id), IDLE);
  return (
    <>
      <tr data-key-prefix={k.prefix}>
        <th scope="row">
          <code>{k.prefix}…</code>
        </th>
        <td>{k.name}</td>
        <td>{k.scopes.join(', ')}</td>
        <td>
          <span className={`badge ${k.status}`}>{k.status}</span>
          {k.previousSecretExpiresAt && k.status === 'active' && (
            <span className="small muted">
              {' '}
              old secret until {formatDateTime(k.previousSecretExpiresAt)}
            </span>
          )}
        </td>
        <td className="small">{formatDateTime(k.createdAt)}</td>
        <td className="small">{formatDateTime(k.lastUsedAt)}</td>
        <td className="small">{formatDateTime(k.expiresAt)}</td>
        <td>
          {k.status === 'active' ? (
            <div className="row">
              <form
                action={rotate}
                className="row"
                onSubmit={(e) => {
                  if (
                    !window.confirm(`Rotate ${k.prefix}…? A new secret replaces the current one.`)
                  )
                    e.preventDefault();
                }}
              >
                <label className="small" style={{ fontWeight: 400 }}>
                  grace h
                  <input
                    name="graceHours"
                    inputMode="numeric"
                    size={3}
                    defaultValue="0"
                    aria-label={`Hours the old secret of ${k.prefix} keeps working`}
                  />
                </label>
                <button type="submit" disabled={rotating} aria-label={`Rotate key ${k.prefix}`}>
                  {rotating ? 'Rotating…' : 'Rotate'}
                </button>
              </form>
              <form
                action={revoke}
                onSubmit={(e) => {
                  if (!window.confirm(`Revoke ${k.prefix}…? Requests with it fail at once.`))
                    e.preventDefault();
                }}
              >
                <button
                  type="submit"
                  className="danger"
                  disabled={revoking}
                  aria-label={`Revoke key ${k.prefix}`}
                >
                  {revoking ? 'Revoking…' : 'Revoke'}
                </button>
              </form>
            </div>
          ) : (
            <span className="muted small">revoked {formatDateTime(k.revokedAt)}</span>
          )}
        </td>
      </tr>
      {(revoked.error || rotated.error || rotated.reveal) && (
        <tr>
          <td colSpan={8}>
            <Outcome state={rotated.reveal || rotated.error ? rotated : revoked} />
          </td>
        </tr>
      )}
    </>
  );
}

/** The action's message, and a new secret with a copy button, shown this once. */
function Outcome({ state }: { state: KeyActionState }) {
  const [copied, setCopied] = useState(false);
  if (state.error) {
    return (
      <p className="error" role="alert">
        {state.error}
      </p>
    );
  }
  if (!state.reveal) return null;
  const { secret, name } = state.reveal;
  return (
    <div className="success stack" role="status" data-testid="new-secret">
      <strong>Copy the secret of {name} now: it is shown only this once.</strong>
      <div className="secret">
        <code data-testid="secret-value">{secret}</code>
        <button
          type="button"
          onClick={() => {
            void navigator.clipboard.writeText(secret).then(
              () => setCopied(true),
              () => setCopied(false),
            );
          }}
        >
          {copied ? 'Copied' : 'Copy'}
        </button>
      </div>
    </div>
  );
}
