// Redis key naming shared by the API and the stage nodes. Every key starts with the
// deployment's prefix (REDIS_PREFIX, default "pipedec:"), so tests and tenants of one Redis
// can use their own.

/** BullMQ's own prefix option for the generation queue: `<prefix>bull`. */
export function queuePrefix(prefix: string): string {
  return `${prefix}bull`;
}

/** The per-request event stream: `<prefix>req:<id>:events`. */
export function eventsKey(prefix: string, requestId: string): string {
  return `${prefix}req:${requestId}:events`;
}

/** The per-request cancel flag: `<prefix>req:<id>:cancel`. */
export function cancelKey(prefix: string, requestId: string): string {
  return `${prefix}req:${requestId}:cancel`;
}

/** Pub/sub channel on which cancelled request ids are also published (lower latency). */
export function cancelChannel(prefix: string): string {
  return `${prefix}cancel`;
}

/** How long an events stream or a cancel flag outlives its request, in seconds. */
export const REQUEST_KEYS_TTL_S = 3600;
