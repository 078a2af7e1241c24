// What a finished request cost and how it went, computed from its event stream. Pure, so the
// rules (retries, cancellation, failure) are unit-tested without Redis.
import type { DecodingChoice, RequestEvent, SpeculativeStats } from '@pipedec/contracts';
import type { RequestStatus } from '@pipedec/db';
import { costMicros, type TenantPricing } from '../tenants/limits.js';
import type { Outcome } from './requests.repository.js';

/**
 * What a request that ends without its head's own count is billed: the prompt once a head
 * started it (it was processed), and each output index delivered once (a retried attempt
 * re-emits indices from 0). Used for failures, and for a job cancelled while it waited for a
 * retry after its first attempt had streamed tokens.
 */
export function deliveredUsage(
  request: { promptTokens: number },
  events: readonly RequestEvent[],
): { promptTokens: number; completionTokens: number } {
  const indices = new Set<number>();
  let started = false;
  for (const e of events) {
    if (e.type === 'started') started = true;
    else if (e.type === 'token') indices.add(e.index);
  }
  return { promptTokens: started ? request.promptTokens : 0, completionTokens: indices.size };
}

export function outcomeOf(
  request: { queuedAt: Date; promptTokens: number },
  events: readonly RequestEvent[],
  pricing: TenantPricing,
): Outcome | undefined {
  const terminal = [...events]
    .reverse()
    .find((e) => e.type === 'done' || (e.type === 'error' && !e.retryable));
  if (!terminal || (terminal.type !== 'done' && terminal.type !== 'error')) return undefined;

  const started = events.find((e) => e.type === 'started');
  const lastStarted = [...events].reverse().find((e) => e.type === 'started');
  // A retried attempt re-emits indices from 0: count each index once, at its first commit.
  const firstAt = new Map<number, number>();
  let stats: SpeculativeStats | undefined;
  for (const e of events) {
    if (e.type === 'token' && !firstAt.has(e.index)) firstAt.set(e.index, e.at);
    if (e.type === 'stats' || e.type === 'done') stats = e.stats;
  }
  const times = [...firstAt.values()].sort((a, b) => a - b);

  let status: RequestStatus;
  let promptTokens: number;
  let completionTokens: number;
  let finishReason: string | null = null;
  let errorCode: string | null = null;
  if (terminal.type === 'done') {
    status = terminal.finishReason === 'cancelled' ? 'cancelled' : 'succeeded';
    finishReason = terminal.finishReason;
    promptTokens = terminal.usage.promptTokens;
    completionTokens = terminal.usage.completionTokens;
  } else {
    status = 'failed';
    errorCode = terminal.code;
    ({ promptTokens, completionTokens } = deliveredUsage(request, events));
  }
  const queued = request.queuedAt.getTime();
  const firstToken = times.length > 0 ? times[0] : null;
  const lastToken = times.length > 0 ? times[times.length - 1] : null;
  return {
    status,
    finishReason,
    errorCode,
    promptTokens,
    completionTokens,
    startedAt: started ? new Date(started.at) : null,
    firstTokenAt: firstToken === null ? null : new Date(firstToken),
    finishedAt: new Date(terminal.at),
    timeToFirstTokenMs: firstToken === null ? null : Math.max(0, firstToken - queued),
    timePerOutputTokenMs:
      firstToken !== null && lastToken !== null && times.length > 1
        ? (lastToken - firstToken) / (times.length - 1)
        : null,
    totalLatencyMs: Math.max(0, terminal.at - queued),
    timesteps: stats?.timesteps ?? null,
    hitRate: stats?.hitRate ?? null,
    stageSeconds: stats?.stageSeconds ?? null,
    stats: stats ?? null,
    costMicros: costMicros(pricing, promptTokens, completionTokens),
    billedInputPer1kMicros: pricing.priceInputPer1kMicros,
    billedOutputPer1kMicros: pricing.priceOutputPer1kMicros,
    pipelineId: lastStarted?.type === 'started' ? lastStarted.pipelineId : null,
    decoding: decodingOf(events),
  };
}

/** What the last attempt that started decoded with (auto's choice), null before any started. */
export function decodingOf(events: readonly RequestEvent[]): DecodingChoice | null {
  for (let i = events.length - 1; i >= 0; i--) {
    const e = events[i];
    if (e.type === 'started') return e.decoding ?? null;
  }
  return null;
}
