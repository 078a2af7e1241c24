import type { ApiError } from '@/lib/errors';

/** What a page shows in place of data it could not load, with what to do about it. */
export function ErrorState({ error, what }: { error: ApiError; what: string }) {
  const hint =
    error.code === 'not_available'
      ? 'The API does not offer this yet; this view fills in once it does.'
      : error.code === 'unreachable'
        ? 'The API did not answer. Check that the service is running, then reload.'
        : error.code === 'forbidden'
          ? 'Your role does not allow this.'
          : 'Reload the page to try again.';
  return (
    <div className="error-state" role="alert">
      <p>
        <strong>Could not load {what}.</strong> {hint}
      </p>
      <p className="muted small">{error.message}</p>
    </div>
  );
}
