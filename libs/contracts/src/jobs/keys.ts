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

/**
 * The relay's heartbeat: `<prefix>req:<id>:relay`, set (with a short TTL) by every API replica
 * that is relaying the request's stream to a client right now, again each
 * RELAY_HEARTBEAT_MS. A head cancels a job that asked to be cancelled with its client (no
 * keep_running) once this key has been gone for its RELAY_LOST_CANCEL_MS: the API that would
 * have cancelled it on the client's disconnect crashed, and no other relays it.
 */
export function relayKey(prefix: string, requestId: string): string {
  return `${prefix}req:${requestId}:relay`;
}

export const RELAY_HEARTBEAT_MS = 1000;
/** The heartbeat key outlives a refresh by this long: a late beat or two is no disconnect. */
export const RELAY_HEARTBEAT_TTL_MS = 2500;

/** Pub/sub channel on which cancelled request ids are also published (lower latency). */
export function cancelChannel(prefix: string): string {
  return `${prefix}cancel`;
}

/** How long an events stream or a cancel flag outlives its request, in seconds. */
export const REQUEST_KEYS_TTL_S = 3600;
