import { randomUUID } from 'node:crypto';
import { Injectable, type OnModuleDestroy } from '@nestjs/common';
import type { Redis } from 'ioredis';
import { RedisConnections } from '../infra/redis.provider.js';

// One blocking XREAD, on one connection, for every Redis stream this replica follows, instead
// of a connection per followed stream (whose connect and handshake ran on each request's way
// to its first token, next to the engine, on the same cores). XREAD answers as soon as any of
// its streams has new entries; the loop hands them out and reads again at once. A follower
// added while an XREAD blocks must be in the next one: it appends to this replica's own wake
// stream, which every XREAD reads too. An append cannot be missed (unlike unblocking a client
// whose XREAD has not reached Redis yet): an XREAD that gets there later still finds it.

/** How long one XREAD blocks when nothing arrives; it is reissued right away. */
const BLOCK_MS = 1000;
/** The wake stream outlives a replica that dies without deleting it by this much. */
const WAKE_TTL_S = 3600;

export type RawEntry = [id: string, fields: string[]];

interface Follower {
  key: string;
  /** Id of the last entry handed to this follower (its resume point). */
  last: string;
  /** Entries handed out, not yet taken by the reader. */
  queue: RawEntry[];
  error?: Error;
  /** Resolves the reader's wait for entries. */
  wake?: () => void;
}

@Injectable()
export class StreamMux implements OnModuleDestroy {
  private conn?: Redis;
  private readonly followers = new Set<Follower>();
  private readonly wakeKey: string;
  /** Id of the last wake entry read. */
  private wakeSeen = '0';
  private reading = false;
  private closed = false;

  constructor(private readonly redis: RedisConnections) {
    this.wakeKey = `${redis.prefix}streams:wake:${randomUUID()}`;
  }

  /**
   * The entries of stream `key` after `afterId` ("0": from the start), in order, each once,
   * as they are appended; ends when `signal` aborts (or throws when Redis fails).
   */
  async *read(key: string, afterId: string, signal: AbortSignal): AsyncGenerator<RawEntry> {
    const f: Follower = { key, last: afterId, queue: [] };
    const onAbort = () => f.wake?.();
    signal.addEventListener('abort', onAbort, { once: true });
    this.add(f);
    try {
      while (!signal.aborted) {
        const next = f.queue.shift();
        if (next) {
          yield next;
          continue;
        }
        if (f.error !== undefined) throw f.error;
        await new Promise<void>((resolve) => (f.wake = resolve));
        f.wake = undefined;
      }
    } finally {
      signal.removeEventListener('abort', onAbort);
      this.followers.delete(f);
    }
  }

  private add(f: Follower): void {
    if (this.closed) {
      f.error = new Error('the stream reader is closed');
      return;
    }
    this.followers.add(f);
    if (!this.reading) {
      void this.loop();
      return;
    }
    // The pending XREAD does not include this follower: make it return.
    this.redis.command
      .multi()
      .xadd(this.wakeKey, 'MAXLEN', '1', '*', 'w', '1')
      .expire(this.wakeKey, WAKE_TTL_S)
      .exec()
      .catch(() => undefined); // the XREAD returns within BLOCK_MS anyway
  }

  private async loop(): Promise<void> {
    this.reading = true;
    this.conn ??= this.redis.duplicate();
    try {
      while (this.followers.size > 0 && !this.closed) {
        // Followers added from here on wake the XREAD below; these are the ones it serves.
        const served = [...this.followers];
        const from = new Map<string, string>();
        for (const f of served) {
          const cur = from.get(f.key);
          if (cur === undefined || idBefore(f.last, cur)) from.set(f.key, f.last);
        }
        let res: [string, RawEntry[]][] | null;
        try {
          res = await this.conn.xread(
            'BLOCK',
            BLOCK_MS,
            'STREAMS',
            this.wakeKey,
            ...from.keys(),
            this.wakeSeen,
            ...from.values(),
          );
        } catch (e) {
          for (const f of served) {
            f.error = e instanceof Error ? e : new Error(String(e));
            this.followers.delete(f);
            f.wake?.();
          }
          continue;
        }
        let handedOut = false;
        for (const [key, entries] of res ?? []) {
          if (key === this.wakeKey) {
            this.wakeSeen = entries[entries.length - 1][0];
            continue;
          }
          for (const f of served) {
            if (f.key !== key || !this.followers.has(f)) continue;
            for (const entry of entries) {
              if (!idBefore(f.last, entry[0])) continue; // another follower's older resume point
              f.queue.push(entry);
              f.last = entry[0];
              handedOut = true;
            }
            f.wake?.();
          }
        }
        // The readers pass their entries on to the clients first; sending the next XREAD (a
        // write that can hand the core to Redis) would delay that.
        if (handedOut) await new Promise((resolve) => setImmediate(resolve));
      }
    } finally {
      this.reading = false;
    }
  }

  async onModuleDestroy(): Promise<void> {
    this.closed = true;
    for (const f of this.followers) {
      f.error = new Error('the stream reader is closed');
      f.wake?.();
    }
    this.followers.clear();
    if (this.conn) this.redis.release(this.conn);
    await this.redis.command.del(this.wakeKey).catch(() => undefined);
  }
}

/** Whether stream id `a` ("ms-seq") comes before `b`. */
export function idBefore(a: string, b: string): boolean {
  const [am, as = '0'] = a.split('-');
  const [bm, bs = '0'] = b.split('-');
  const ms = BigInt(am) - BigInt(bm);
  return ms < 0n || (ms === 0n && BigInt(as) < BigInt(bs));
}
