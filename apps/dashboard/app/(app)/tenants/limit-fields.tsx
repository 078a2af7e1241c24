// Inputs for a tenant's or plan's limits, labelled in words with the unit.
import type { Limits } from '@/lib/schemas';

export const LIMIT_LABELS: Record<keyof Limits, string> = {
  requestsPerMinute: 'Requests / minute',
  tokensPerMinute: 'Tokens / minute',
  tokensPerMonth: 'Tokens / month (quota)',
  concurrentRequests: 'Concurrent requests',
  maxPromptTokens: 'Max prompt tokens',
  maxOutputTokens: 'Max output tokens',
};

export function LimitFields({
  values,
  placeholders,
  required = false,
  idPrefix,
}: {
  values?: Partial<Record<keyof Limits, number | null>>;
  /** Shown in empty inputs: the plan's value a blank override falls back to. */
  placeholders?: Limits;
  required?: boolean;
  idPrefix: string;
}) {
  return (
    <div className="form-grid">
      {(Object.keys(LIMIT_LABELS) as (keyof Limits)[]).map((f) => (
        <label key={f} htmlFor={`${idPrefix}-${f}`}>
          {LIMIT_LABELS[f]}
          <input
            id={`${idPrefix}-${f}`}
            name={f}
            inputMode="numeric"
            pattern="[0-9_, ]*"
            required={required}
            defaultValue={values?.[f] ?? ''}
            placeholder={placeholders ? `plan: ${placeholders[f]}` : undefined}
          />
        </label>
      ))}
    </div>
  );
}
