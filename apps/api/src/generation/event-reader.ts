import { Injectable } from '@nestjs/common';
import {
  decodeEvent,
  EVENT_FIELD,
  eventsKey,
  isTerminal,
  type RequestEvent,
} from '@pipedec/contracts';
import { RedisConnections } from '../infra/redis.provider.js';
import { RelayHeartbeat } from './relay-heartbeat.js';
import { StreamMux } from './stream-mux.js';

export interface StreamEntry {
  /** Redis stream id: the resume point. */
  id: string;
  event: RequestEvent;
}

/** Reads a request's event stream (libs/contracts jobs/events.ts). */
@Injectable()
export class EventReader {
  constructor(
    private readonly redis: RedisConnections,
    private readonly mux: StreamMux,
    private readonly heartbeat: RelayHeartbeat,
  ) {}

  key(requestId: string): string {
    return eventsKey(this.redis.prefix, requestId);
  }

  /** Everything recorded so far. */
  async all(requestId: string): Promise<StreamEntry[]> {
    const rows = await this.redis.command.xrange(this.key(requestId), '-', '+');
    return rows.map(([id, fields]) => ({ id, event: decodeEvent(fieldValue(fields)) }));
  }

  /** The latest record, or undefined while there is none. */
  async last(requestId: string): Promise<RequestEvent | undefined> {
    const rows = await this.redis.command.xrevrange(this.key(requestId), '+', '-', 'COUNT', 1);
    return rows.length > 0 ? decodeEvent(fieldValue(rows[0][1])) : undefined;
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
   * Follows the stream after `afterId` ("0": from the start) until the terminal record; stops
   * early when `signal` aborts. Every follow of this replica shares one blocking read. While it
   * follows, the request counts as relayed (RelayHeartbeat): its head keeps it running.
   */
  async *follow(
    requestId: string,
    afterId: string,
    signal: AbortSignal,
  ): AsyncGenerator<StreamEntry> {
    const release = this.heartbeat.hold(requestId);
    try {
      for await (const [id, fields] of this.mux.read(this.key(requestId), afterId, signal)) {
        const event = decodeEvent(fieldValue(fields));
        yield { id, event };
        if (isTerminal(event)) return;
      }
    } finally {
      release();
    }
  }
}

function fieldValue(fields: string[]): string {
  for (let i = 0; i + 1 < fields.length; i += 2)
    if (fields[i] === EVENT_FIELD) return fields[i + 1];
  throw new Error(`stream entry without field "${EVENT_FIELD}"`);
}
