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
  /** `StreamMux.round` when added: an XREAD of that round was sent without this follower. */
  round: number;
}

@Injectable()
export class StreamMux implements OnModuleDestroy {
  private conn?: Redis;
  /**
   * Followers by stream key, so that a stream XREAD returns reaches its own followers without
   * a pass over all of them. No empty sets: every key here is read.
   */
  private readonly followers = new Map<string, Set<Follower>>();
  /** Counts the XREADs sent. */
  private round = 0;
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
    const f: Follower = { key, last: afterId, queue: [], round: 0 };
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
      this.remove(f);
    }
  }

  private add(f: Follower): void {
    if (this.closed) {
      f.error = new Error('the stream reader is closed');
      return;
    }
    let same = this.followers.get(f.key);
    if (same === undefined) this.followers.set(f.key, (same = new Set()));
    same.add(f);
    f.round = this.round;
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

  private remove(f: Follower): void {
    const same = this.followers.get(f.key);
    if (same?.delete(f) && same.size === 0) this.followers.delete(f.key);
  }

  private async loop(): Promise<void> {
    this.reading = true;
    this.conn ??= this.redis.duplicate();
    try {
      while (this.followers.size > 0 && !this.closed) {
        // Followers added from here on get this round: the XREAD below is sent without them, so
        // they wake it and are left out of its answer (it may start after their resume point)
        // and out of its failure; the next XREAD has them.
        const round = ++this.round;
        const keys: string[] = [];
        const from: string[] = [];
        for (const [key, same] of this.followers) {
          let oldest: string | undefined;
          for (const f of same) {
            if (oldest === undefined || idBefore(f.last, oldest)) oldest = f.last;
          }
          keys.push(key);
          from.push(oldest!);
        }
        let res: [string, RawEntry[]][] | null;
        try {
          res = await this.conn.xread(
            'BLOCK',
            BLOCK_MS,
            'STREAMS',
            this.wakeKey,
            ...keys,
            this.wakeSeen,
            ...from,
          );
        } catch (e) {
          const error = e instanceof Error ? e : new Error(String(e));
          for (const same of this.followers.values()) {
            for (const f of same) {
              if (f.round === round) continue;
              f.error = error;
              this.remove(f);
              f.wake?.();
            }
          }
          continue;
        }
        let handedOut = false;
        for (const [key, entries] of res ?? []) {
          if (key === this.wakeKey) {
            this.wakeSeen = entries[entries.length - 1][0];
            continue;
          }
          for (const f of this.followers.get(key) ?? []) {
            if (f.round === round) continue;
            // The entries are in order: those up to the resume point (another follower's older
            // one asked for them) come first.
            let i = 0;
            while (i < entries.length && !idBefore(f.last, entries[i][0])) i++;
            if (i === entries.length) continue;
            while (i < entries.length) f.queue.push(entries[i++]);
            f.last = entries[entries.length - 1][0];
            handedOut = true;
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
    for (const same of this.followers.values()) {
      for (const f of same) {
        f.error = new Error('the stream reader is closed');
        f.wake?.();
      }
    }
    this.followers.clear();
    if (this.conn) this.redis.release(this.conn);
    await this.redis.command.del(this.wakeKey).catch(() => undefined);
  }
}

/**
 * Whether stream id `a` ("ms-seq", or "ms" for "ms-0") comes before `b`. It runs for every
 * entry handed to every follower, so on two Numbers: exact below 2^53, which holds for every
 * id Redis generates (ms is the clock, seq counts within one ms). A resume point a client
 * sent may be larger; those compare as BigInts.
 */
export function idBefore(a: string, b: string): boolean {
  const ad = a.indexOf('-');
  const bd = b.indexOf('-');
  const am = Number(ad < 0 ? a : a.slice(0, ad));
  const bm = Number(bd < 0 ? b : b.slice(0, bd));
  const as = ad < 0 ? 0 : Number(a.slice(ad + 1));
  const bs = bd < 0 ? 0 : Number(b.slice(bd + 1));
  const max = Number.MAX_SAFE_INTEGER;
  if (am > max || bm > max || as > max || bs > max) return bigIdBefore(a, b);
  return am < bm || (am === bm && as < bs);
}

function bigIdBefore(a: string, b: string): boolean {
  const [am, as = '0'] = a.split('-');
  const [bm, bs = '0'] = b.split('-');
  const ms = BigInt(am) - BigInt(bm);
  return ms < 0n || (ms === 0n && BigInt(as) < BigInt(bs));
}
