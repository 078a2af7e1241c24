// The state a form's server action returns, shown by ActionForm.
import { ApiError } from './errors';

export interface ActionState {
  error: string | null;
  ok: string | null;
}

export const IDLE: ActionState = { error: null, ok: null };

/** Turns what an action threw into a message for the admin, or rethrows what is not ours. */
export function failure(error: unknown): ActionState {
  if (error instanceof ApiError) {
    const prefix =
      error.code === 'not_available'
        ? 'The API does not support this yet. '
        : error.code === 'forbidden'
          ? 'Your role does not allow this. '
          : '';
    // The API's message names the field and the reason; drop our "Request failed..." preamble.
    const apiMessage = error.message.replace(/^Request failed with status \d+: \S+ \S+: /, '');
    return { error: prefix + apiMessage, ok: null };
  }
  throw error;
}
