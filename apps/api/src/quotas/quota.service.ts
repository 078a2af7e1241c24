import { Injectable } from '@nestjs/common';
import { ApiError, Errors } from '../common/errors.js';
import { Clock } from '../infra/clock.js';
import { RedisConnections } from '../infra/redis.provider.js';
import type { TenantLimits } from '../tenants/limits.js';
import { ADMIT_LUA, RECONCILE_LUA, SETTLE_LUA } from './quota-scripts.js';
import {
  MINUTE_WINDOW_MS,
  quotaKeys,
  reservationKey,
  secondsFromMs,
  windowsAt,
} from './quota-windows.js';

export type RateHeaders = Record<string, string>;

const MONTH_TTL_S = 40 * 24 * 3600;
/** A reservation outlives any request; reconciliation repairs what a crash leaves behind. */
const RESERVATION_TTL_S = 24 * 3600;
/** Refusal counts are kept per hour for this long (a little over two months). */
const REFUSALS_TTL_S = 70 * 24 * 3600;
const HOUR_MS = 3_600_000;
/** The longest range GET /admin/refusals reads (hours, one hash each). */
export const REFUSALS_MAX_HOURS = 62 * 24;

/**
 * Per-tenant limits enforced in Redis: requests and tokens in any 60 s (sliding windows),
 * tokens per month, concurrent requests. A request reserves its maximum (prompt + max output) at admission and
 * settles to its actual use when it ends.
 */
@Injectable()
export class QuotaService {
  constructor(
    private readonly redis: RedisConnections,
    private readonly clock: Clock,
  ) {}

  async admit(
    tenantId: string,
    requestId: string,
    limits: TenantLimits,
    reserve: number,
  ): Promise<RateHeaders> {
    if (reserve > limits.tokensPerMinute) {
      throw Errors.invalid(
        'request_too_large',
        `this request needs up to ${reserve} tokens (prompt + max_tokens), more than the limit of ${limits.tokensPerMinute} tokens per minute; lower max_tokens`,
        'max_tokens',
      );
    }
    const now = this.clock.nowMs();
    const w = windowsAt(now);
    const k = quotaKeys(this.redis.prefix, tenantId, w);
    const [refused, rpm, tpm, month, , retryMs, requestsResetMs, tokensResetMs] =
      (await this.redis.command.eval(
        ADMIT_LUA,
        6,
        k.rpm,
        k.tpm,
        k.tpmAmounts,
        k.month,
        k.concurrency,
        reservationKey(this.redis.prefix, requestId),
        limits.requestsPerMinute,
        limits.tokensPerMinute,
        limits.tokensPerMonth,
        limits.concurrentRequests,
        reserve,
        MONTH_TTL_S,
        RESERVATION_TTL_S,
        requestId,
        now,
        MINUTE_WINDOW_MS,
      )) as [string, number, number, number, number, number, number, number];
    // reset-*: until the oldest request in the last 60 s leaves the window, so the remaining
    // count goes up (0 when nothing is in it).
    const headers: RateHeaders = {
      'x-ratelimit-limit-requests': String(limits.requestsPerMinute),
      'x-ratelimit-remaining-requests': String(Math.max(0, limits.requestsPerMinute - rpm)),
      'x-ratelimit-reset-requests': `${secondsFromMs(requestsResetMs)}s`,
      'x-ratelimit-limit-tokens': String(limits.tokensPerMinute),
      'x-ratelimit-remaining-tokens': String(Math.max(0, limits.tokensPerMinute - tpm)),
      'x-ratelimit-reset-tokens': `${secondsFromMs(tokensResetMs)}s`,
      'x-ratelimit-limit-tokens-month': String(limits.tokensPerMonth),
      'x-ratelimit-remaining-tokens-month': String(Math.max(0, limits.tokensPerMonth - month)),
    };
    if (refused) {
      const retryAfter =
        refused === 'monthly_tokens'
          ? w.secondsToMonthReset
          : refused === 'concurrency'
            ? 1
            : Math.max(1, secondsFromMs(retryMs));
      throw new ApiError(
        'rate_limit_error',
        refusedCode(refused),
        refusedMessage(refused, limits),
        null,
        { ...headers, 'retry-after': String(retryAfter) },
      );
    }
    return headers;
  }

  /** Settles a reservation to the tokens actually used; returns false if already settled. */
  async settle(requestId: string, actualTokens: number): Promise<boolean> {
    const done = (await this.redis.command.eval(
      SETTLE_LUA,
      1,
      reservationKey(this.redis.prefix, requestId),
      actualTokens,
    )) as number;
    return done === 1;
  }

  /**
   * Brings the month's counter and the concurrency count back to PostgreSQL (the record of
   * truth): `usedThisMonth` = tokens of finished requests + reservations of unfinished ones.
   * Safe against concurrent admissions (see RECONCILE_LUA); returns whether the month was set.
   */
  async reconcile(
    tenantId: string,
    usedThisMonth: number,
    inFlight: number,
    repairConcurrency: boolean,
  ): Promise<{ monthSet: boolean; concurrency: number }> {
    const k = quotaKeys(this.redis.prefix, tenantId, windowsAt(this.clock.nowMs()));
    const before = Number((await this.redis.command.get(k.concurrency)) ?? 0);
    const set = (await this.redis.command.eval(
      RECONCILE_LUA,
      2,
      k.month,
      k.concurrency,
      usedThisMonth,
      inFlight,
      MONTH_TTL_S,
      repairConcurrency ? '1' : '0',
    )) as number;
    return { monthSet: set === 1, concurrency: before };
  }

  /**
   * Counts a refused admission in its hour: one hash per hour, field "tenantId|code", so an
   * operator sees who is refused and why (the Prometheus counter resets with the process).
   */
  async countRefusal(tenantId: string, code: string): Promise<void> {
    const key = refusalsKey(this.redis.prefix, this.clock.nowMs());
    await this.redis.command
      .multi()
      .hincrby(key, `${tenantId}|${code}`, 1)
      .expire(key, REFUSALS_TTL_S)
      .exec();
  }

  /** Refusals per tenant and code over the hours that overlap [from, to), most first. */
  async refusals(
    from: Date,
    to: Date,
    tenantId?: string,
  ): Promise<{ tenantId: string; reason: string; count: number }[]> {
    const first = Math.floor(from.getTime() / HOUR_MS) * HOUR_MS;
    const keys: string[] = [];
    for (let h = first; h < to.getTime() && keys.length < REFUSALS_MAX_HOURS; h += HOUR_MS) {
      keys.push(refusalsKey(this.redis.prefix, h));
    }
    const pipeline = this.redis.command.pipeline();
    for (const k of keys) pipeline.hgetall(k);
    const counts = new Map<string, number>();
    for (const [error, hash] of (await pipeline.exec()) ?? []) {
      if (error) throw error;
      for (const [field, n] of Object.entries(hash as Record<string, string>)) {
        if (tenantId && !field.startsWith(`${tenantId}|`)) continue;
        counts.set(field, (counts.get(field) ?? 0) + Number(n));
      }
    }
    return [...counts]
      .map(([field, count]) => {
        const [t, reason] = field.split('|');
        return { tenantId: t, reason, count };
      })
      .sort((a, b) => b.count - a.count || a.tenantId.localeCompare(b.tenantId));
  }

  async usage(tenantId: string): Promise<{ month: number; concurrency: number }> {
    const k = quotaKeys(this.redis.prefix, tenantId, windowsAt(this.clock.nowMs()));
    const [month, conc] = await this.redis.command.mget(k.month, k.concurrency);
    return { month: Number(month ?? 0), concurrency: Number(conc ?? 0) };
  }
}

function refusalsKey(prefix: string, atMs: number): string {
  return `${prefix}refusals:${Math.floor(atMs / HOUR_MS) * HOUR_MS}`;
}

function refusedCode(limit: string): string {
  switch (limit) {
    case 'concurrency':
      return 'concurrency_limit_exceeded';
    case 'requests':
      return 'rate_limit_exceeded';
    case 'tokens':
      return 'tokens_per_minute_exceeded';
    default:
      return 'monthly_quota_exceeded';
  }
}

function refusedMessage(limit: string, l: TenantLimits): string {
  switch (limit) {
    case 'concurrency':
      return `Too many concurrent requests (limit ${l.concurrentRequests})`;
    case 'requests':
      return `Rate limit reached: ${l.requestsPerMinute} requests per minute`;
    case 'tokens':
      return `Rate limit reached: ${l.tokensPerMinute} tokens per minute (reserved at admission: prompt + max_tokens)`;
    default:
      return `Monthly token quota of ${l.tokensPerMonth} reached`;
  }
}
