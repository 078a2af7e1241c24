import type { DoneEvent, ErrorEvent } from '@pipedec/contracts';
import type { EventReader } from './event-reader.js';

export interface RelayResult {
  terminal: DoneEvent | ErrorEvent | undefined;
  text: string;
}

/**
 * Follows a request's events, calling `onText` once per output index in order (a retried
 * attempt's repeated indices are skipped), until the terminal record or the abort; `onRetry`
 * hears each retryable failure.
 */
export async function relayTokens(
  events: EventReader,
  requestId: string,
  signal: AbortSignal,
  onText: (text: string) => void,
  /** An attempt failed and the job waits for its retry. */
  onRetry: (error: ErrorEvent) => void = () => undefined,
): Promise<RelayResult> {
  let next = 0;
  let text = '';
  for await (const { event } of events.follow(requestId, '0', signal)) {
    if (event.type === 'token') {
      if (event.index !== next) continue;
      next++;
      text += event.text;
      if (event.text) onText(event.text);
    } else if (event.type === 'done' || (event.type === 'error' && !event.retryable)) {
      return { terminal: event, text };
    } else if (event.type === 'error') {
      onRetry(event);
    }
  }
  return { terminal: undefined, text };
}
