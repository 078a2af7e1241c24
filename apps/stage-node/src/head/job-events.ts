// Appends a request's events to its Redis stream (libs/contracts jobs/events.ts) in order: one
// connection, commands pipelined without waiting per token, awaited at the end of the attempt.
// Only the last command's promise is kept: Redis answers one connection's commands in order.
import {
  EVENT_FIELD,
  encodeEvent,
  REQUEST_KEYS_TTL_S,
  type RequestEvent,
} from '@pipedec/contracts';
import type { Redis } from 'ioredis';

export class JobEventStream {
  /**
   * The last command sent: one connection answers in order, so once it settles every command
   * before it has too. Not a promise per event kept to the end (tokens of a long request
   * outlived the young generation).
   */
  private last: Promise<unknown> = Promise.resolve();
  private failed: Error | null = null;
  private readonly onError = (e: unknown) => {
    this.failed ??= e instanceof Error ? e : new Error(String(e));
  };

  constructor(
    private readonly redis: Redis,
    private readonly key: string,
  ) {}

  append(event: RequestEvent): void {
    this.track(this.redis.xadd(this.key, '*', EVENT_FIELD, encodeEvent(event)));
    if (event.type === 'started') this.track(this.redis.expire(this.key, REQUEST_KEYS_TTL_S));
  }

  private track(command: Promise<unknown>): void {
    this.last = command;
    command.catch(this.onError);
  }

  /** Waits until every appended event is in Redis (throws the first that failed). */
  async flush(): Promise<void> {
    await this.last.catch(() => undefined);
    const failed = this.failed;
    this.failed = null;
    if (failed !== null) throw failed;
  }
}
