// Appends a request's events to its Redis stream (libs/contracts jobs/events.ts) in order: one
// connection, commands pipelined without waiting per token, awaited at the end of the attempt.
import {
  EVENT_FIELD,
  encodeEvent,
  REQUEST_KEYS_TTL_S,
  type RequestEvent,
} from '@pipedec/contracts';
import type { Redis } from 'ioredis';

export class JobEventStream {
  private pending: Promise<unknown>[] = [];

  constructor(
    private readonly redis: Redis,
    private readonly key: string,
  ) {}

  append(event: RequestEvent): void {
    this.pending.push(this.redis.xadd(this.key, '*', EVENT_FIELD, encodeEvent(event)));
    if (event.type === 'started')
      this.pending.push(this.redis.expire(this.key, REQUEST_KEYS_TTL_S));
  }

  /** Waits until every appended event is in Redis (throws if one failed). */
  async flush(): Promise<void> {
    const p = this.pending;
    this.pending = [];
    await Promise.all(p);
  }
}
