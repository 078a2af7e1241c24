import { randomUUID } from 'node:crypto';
import { Injectable, Logger, type OnModuleDestroy } from '@nestjs/common';
import type { Redis } from 'ioredis';
import { RedisConnections } from './redis.provider.js';

// Rows that every request reads (an API key and its tenant's status, a tenant's limits) are
// cached by each replica, and any admin change to them must still apply on the very next
// request, on every replica. So a change bumps a generation: the replica that made it bumps
// its own at once, and publishes on a Redis channel that every replica listens to; an entry
// cached under an older generation is never served. Each replica acknowledges a change once it
// has moved its generation on, and the call that made the change resolves only when every
// replica that received it has (or after ACK_TIMEOUT_MS): Redis writing the message to a
// replica's socket does not mean the replica has read it, and a request sent to that replica
// once the admin call answered could otherwise overtake it. A replica that cannot hear the channel
// (still connecting, or Redis gone) serves nothing from its caches, and drops them all when it
// hears again, so a change made while it was deaf cannot outlive the outage.

/**
 * Tells every replica's caches that a cached row changed. `generation` is null while this
 * replica could miss a change (caches then read through).
 */
@Injectable()
export class CacheInvalidation implements OnModuleDestroy {
  private readonly logger = new Logger('CacheInvalidation');
  private readonly subscriber: Redis;
  private readonly channel: string;
  private readonly ackChannel: string;
  private gen = 0;
  private listening = false;
  /** Called after every change heard (and after hearing again): who must re-check state. */
  private readonly listeners: (() => void)[] = [];
  /** Changes made here that not every receiver has acknowledged yet, by change id. */
  private readonly awaiting = new Map<string, Acknowledgements>();

  constructor(private readonly redis: RedisConnections) {
    this.channel = `${redis.prefix}cache:invalidate`;
    this.ackChannel = `${redis.prefix}cache:invalidated`;
    this.subscriber = redis.duplicate({ subscriber: true });
    this.subscriber.on('message', (channel: string, id: string) => {
      if (channel === this.ackChannel) {
        this.awaiting.get(id)?.acknowledged();
        return;
      }
      this.gen++;
      this.notify();
      this.redis.command
        .publish(this.ackChannel, id)
        .catch((e: unknown) => this.logger.warn(`cannot acknowledge a change: ${String(e)}`));
    });
    this.subscriber.on('close', () => {
      this.listening = false;
      this.gen++;
    });
    // Subscribes on every (re)connection: what changed while it was down is unknown, so the
    // generation moves on once it hears again.
    this.subscriber.on('ready', () => {
      this.subscriber.subscribe(this.channel, this.ackChannel).then(
        () => {
          this.gen++;
          this.listening = true;
          this.notify();
        },
        (e: unknown) => this.logger.warn(`cannot subscribe to ${this.channel}: ${String(e)}`),
      );
    });
  }

  /**
   * Runs `listener` after each change this replica hears (any replica's, its own included),
   * once its caches serve nothing older: state held outside the caches (an open socket's
   * principal) is re-checked there.
   */
  onChange(listener: () => void): void {
    this.listeners.push(listener);
  }

  private notify(): void {
    for (const l of this.listeners) {
      try {
        l();
      } catch (e) {
        this.logger.warn(`a change listener failed: ${String(e)}`);
      }
    }
  }

  get generation(): number | null {
    return this.listening ? this.gen : null;
  }

  /**
   * Call after the change is committed (a replica that reads the row before the commit would
   * cache the old one again). Resolves once every replica that received it (this one too, when
   * listening) serves nothing it cached before, or after ACK_TIMEOUT_MS. Never throws: the
   * change is committed, so its caller must not report it as failed; when Redis cannot take
   * the message, the other replicas serve what they cached for their TTL at most (and they
   * cannot hear the channel either, so most likely they serve nothing from it).
   */
  async changed(): Promise<void> {
    this.gen++;
    const id = randomUUID();
    const acks = new Acknowledgements();
    // Waiting before publishing: an acknowledgement can come before PUBLISH's own reply.
    this.awaiting.set(id, acks);
    let timer: NodeJS.Timeout | undefined;
    try {
      let receivers: number;
      try {
        receivers = await this.redis.command.publish(this.channel, id);
      } catch (e) {
        this.logger.warn(`cannot tell the other replicas of a change: ${String(e)}`);
        return;
      }
      acks.expect(receivers);
      const late = new Promise<'late'>((resolve) => {
        timer = setTimeout(() => resolve('late'), ACK_TIMEOUT_MS);
      });
      if ((await Promise.race([acks.all, late])) === 'late')
        this.logger.warn(
          `${acks.missing} replica(s) did not acknowledge a change within ${ACK_TIMEOUT_MS} ms`,
        );
    } finally {
      clearTimeout(timer);
      this.awaiting.delete(id);
    }
  }

  onModuleDestroy(): void {
    this.listening = false;
    this.redis.release(this.subscriber);
  }
}

/** How long a change waits for a replica that received it to acknowledge it. */
export const ACK_TIMEOUT_MS = 2_000;

/** Counts the acknowledgements of one change against the receivers PUBLISH reported. */
class Acknowledgements {
  private received = 0;
  private receivers = Number.POSITIVE_INFINITY;
  private resolve!: () => void;
  readonly all = new Promise<'all'>((resolve) => (this.resolve = () => resolve('all')));

  get missing(): number {
    return this.receivers - this.received;
  }

  acknowledged(): void {
    this.received++;
    if (this.missing <= 0) this.resolve();
  }

  expect(receivers: number): void {
    this.receivers = receivers;
    if (this.missing <= 0) this.resolve();
  }
}

/**
 * A read-through cache of rows by key, per replica: an entry is served for `ttlMs` at most,
 * and never after a change anywhere (CacheInvalidation). Absent rows are not cached, so a
 * new row is seen at once.
 */
export class ReadThroughCache<V> {
  private readonly entries = new Map<string, { gen: number; at: number; value: V }>();
  /**
   * Reads in progress, by key: requests that miss under the same generation share one read
   * (after a change every replica's entries go at once, and each concurrent request for the
   * same key would otherwise read the database). A request under a newer generation never
   * shares an older read: it may have started before the change committed.
   */
  private readonly loading = new Map<string, { gen: number; value: Promise<V | null> }>();

  constructor(
    private readonly invalidation: CacheInvalidation,
    private readonly ttlMs: number,
    private readonly maxEntries = 10_000,
  ) {}

  get(key: string, load: () => Promise<V | null>): Promise<V | null> {
    const gen = this.invalidation.generation;
    const at = Date.now();
    const hit = this.entries.get(key);
    if (hit && gen !== null && hit.gen === gen && at - hit.at < this.ttlMs) {
      return Promise.resolve(hit.value);
    }
    if (gen === null) return load();
    const pending = this.loading.get(key);
    if (pending?.gen === gen) return pending.value;
    const value = this.readThrough(key, gen, at, load);
    this.loading.set(key, { gen, value });
    const done = () => {
      if (this.loading.get(key)?.value === value) this.loading.delete(key);
    };
    value.then(done, done);
    return value;
  }

  private async readThrough(
    key: string,
    gen: number,
    at: number,
    load: () => Promise<V | null>,
  ): Promise<V | null> {
    const value = await load();
    // A change heard while the row was read may have come after the read: do not keep it.
    if (value !== null && this.invalidation.generation === gen) {
      this.entries.delete(key);
      this.entries.set(key, { gen, at, value });
      if (this.entries.size > this.maxEntries)
        this.entries.delete(this.entries.keys().next().value!);
    } else {
      this.entries.delete(key);
    }
    return value;
  }
}
