'use client';
// A form bound to a server action, announcing its outcome to screen readers.
import { useActionState, type ReactNode } from 'react';
import type { ActionState } from '@/lib/action-state';

export function ActionForm({
  action,
  submitLabel,
  pendingLabel = 'Saving…',
  children,
  className,
  danger = false,
  confirm,
  label,
}: {
  action: (prev: ActionState, form: FormData) => Promise<ActionState>;
  submitLabel: string;
  pendingLabel?: string;
  children?: ReactNode;
  className?: string;
  danger?: boolean;
  /** A question the admin must accept first (destructive actions). */
  confirm?: string;
  label?: string;
}) {
  const [state, run, pending] = useActionState(action, { error: null, ok: null });
  return (
    <form
      action={run}
      className={className}
      aria-label={label}
      onSubmit={(e) => {
        if (confirm && !window.confirm(confirm)) e.preventDefault();
      }}
    >
      {children}
      <div className="row">
        <button type="submit" className={danger ? 'danger' : 'primary'} disabled={pending}>
          {pending ? pendingLabel : submitLabel}
        </button>
        <span role="status" aria-live="polite">
          {state.ok && <span className="muted">{state.ok}</span>}
        </span>
      </div>
      {state.error && (
        <p className="error" role="alert">
          {state.error}
        </p>
      )}
    </form>
  );
}
