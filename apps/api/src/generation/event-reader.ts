import { Injectable } from '@nestjs/common';
import {
  decodeEvent,
  EVENT_FIELD,
  eventsKey,
  isTerminal,
  type RequestEvent,
} from '@pipedec/contracts';
import { RedisConnections } from '../infra/redis.provider.js';

export interface StreamEntry {
  /** Redis stream id: the resume point. */
  id: string;
  event: RequestEvent;
}

/** Reads a request's event stream (libs/contracts jobs/events.ts). */
@Injectable()
export class EventReader {
  constructor(private readonly redis: RedisConnections) {}

  key(requestId: string): string {
    return eventsKey(this.redis.prefix, requestId);
  }

  /** Everything recorded so far. */
  async all(requestId: string): Promise<StreamEntry[]> {
    const rows = await this.redis.command.xrange(this.key(requestId), '-', '+');
    return rows.map(([id, fields]) => ({ id, event: decodeEvent(fieldValue(fields)) }));
  }

  async append(requestId: string, event: RequestEvent, ttlSeconds: number): Promise<string> {
    const key = this.key(requestId);
    const [[, id]] = (await this.redis.command
      .multi()
      .xadd(key, '*', EVENT_FIELD, JSON.stringify(event))
      .expire(key, ttlSeconds)
      .exec()) as [[Error | null, string], [Error | null, number]];
    return id;
  }

  /**
   * Follows the stream after `afterId` ("0": from the start) until the terminal record,
   * blocking on a connection of its own; stops early when `signal` aborts.
   */
  async *follow(
    requestId: string,
    afterId: string,
    signal: AbortSignal,
  ): AsyncGenerator<StreamEntry> {
    const conn = this.redis.duplicate();
    const onAbort = () => conn.disconnect();
    signal.addEventListener('abort', onAbort, { once: true });
    let last = afterId;
    try {
      while (!signal.aborted) {
        let res: [string, [string, string[]][]][] | null;
        try {
          res = await conn.xread('BLOCK', 1000, 'STREAMS', this.key(requestId), last);
        } catch (e) {
          if (signal.aborted) return;
          throw e;
        }
        if (!res) continue;
        for (const [id, fields] of res[0][1]) {
          last = id;
          const event = decodeEvent(fieldValue(fields));
          yield { id, event };
          if (isTerminal(event)) return;
        }
      }
    } finally {
      signal.removeEventListener('abort', onAbort);
      this.redis.release(conn);
    }
  }
}

function fieldValue(fields: string[]): string {
  for (let i = 0; i + 1 < fields.length; i += 2)
    if (fields[i] === EVENT_FIELD) return fields[i + 1];
  throw new Error(`stream entry without field "${EVENT_FIELD}"`);
}
