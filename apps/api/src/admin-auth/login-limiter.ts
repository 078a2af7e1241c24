// Admin login protection, after rate-limiter-flexible's documented login pattern, with every
// count atomic in Redis (shared by all replicas):
//  - consecutive failures per email and client address (ADMIN_LOGIN_MAX_ATTEMPTS, then
//    blocked for ADMIN_LOGIN_WINDOW_S): guessing from one place stops;
//  - failures per address over a day (ADMIN_LOGIN_ADDRESS_MAX_FAILURES): one address trying
//    many emails stops;
//  - failures per account over an hour from anywhere (ADMIN_LOGIN_ACCOUNT_MAX_FAILURES): a
//    slower global backoff against guessing from many addresses, which refuses only addresses
//    that never signed in to that account, so a stranger cannot lock its owner out.
// A point is taken from every counter before the password is checked (and given back on
// success), so concurrent guesses cannot all pass a check made before any was counted.
import { createHash } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import { RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import { API_CONFIG, type ApiConfig } from '../config/api-config.js';
import { ApiError } from '../common/errors.js';
import { RedisConnections } from '../infra/redis.provider.js';

const DAY_S = 24 * 3600;
const HOUR_S = 3600;
/** An address that signed in to an account is its owner's for this long. */
const KNOWN_ADDRESS_S = 30 * DAY_S;

export type LoginRefusal = 'email_and_address' | 'address' | 'account';

/** What the attempt's admission found; `lockedNow` names counters this attempt filled. */
export interface LoginAttempt {
  refused: LoginRefusal | null;
  retryAfterS: number;
  lockedNow: LoginRefusal[];
}

@Injectable()
export class LoginLimiter {
  private readonly byEmailAndAddress: RateLimiterRedis;
  private readonly byAddress: RateLimiterRedis;
  private readonly byAccount: RateLimiterRedis;

  constructor(
    private readonly redis: RedisConnections,
    @Inject(API_CONFIG) private readonly config: ApiConfig,
  ) {
    const storeClient = redis.command;
    const p = redis.prefix;
    this.byEmailAndAddress = new RateLimiterRedis({
      storeClient,
      keyPrefix: `${p}login:email-address`,
      points: config.ADMIN_LOGIN_MAX_ATTEMPTS,
      duration: config.ADMIN_LOGIN_WINDOW_S,
      blockDuration: config.ADMIN_LOGIN_WINDOW_S,
    });
    this.byAddress = new RateLimiterRedis({
      storeClient,
      keyPrefix: `${p}login:address`,
      points: config.ADMIN_LOGIN_ADDRESS_MAX_FAILURES,
      duration: DAY_S,
      blockDuration: DAY_S,
    });
    this.byAccount = new RateLimiterRedis({
      storeClient,
      keyPrefix: `${p}login:account`,
      points: config.ADMIN_LOGIN_ACCOUNT_MAX_FAILURES,
      duration: HOUR_S,
      blockDuration: HOUR_S,
    });
  }

  private static account(email: string): string {
    return createHash('sha256').update(email.toLowerCase()).digest('hex').slice(0, 32);
  }

  private knownKey(email: string, address: string): string {
    return `${this.redis.prefix}login:known:${LoginLimiter.account(email)}:${address}`;
  }

  /** Counts the attempt on every counter and says whether it may check the password. */
  async begin(email: string, address: string): Promise<LoginAttempt> {
    const account = LoginLimiter.account(email);
    const [pair, addr, acct, known] = await Promise.all([
      consume(this.byEmailAndAddress, `${account}|${address}`),
      consume(this.byAddress, address),
      consume(this.byAccount, account),
      this.redis.command.exists(this.knownKey(email, address)),
    ]);
    const lockedNow: LoginRefusal[] = [];
    if (pair.justFilled) lockedNow.push('email_and_address');
    if (addr.justFilled) lockedNow.push('address');
    if (acct.justFilled && !known) lockedNow.push('account');
    const refusal: [LoginRefusal, Outcome] | undefined = !pair.allowed
      ? ['email_and_address', pair]
      : !addr.allowed
        ? ['address', addr]
        : !acct.allowed && !known
          ? ['account', acct]
          : undefined;
    return {
      refused: refusal?.[0] ?? null,
      retryAfterS: refusal ? Math.max(1, Math.ceil(refusal[1].msBeforeNext / 1000)) : 0,
      lockedNow,
    };
  }

  /** A right password: its pair starts over, the other counters get their point back. */
  async succeeded(email: string, address: string): Promise<void> {
    const account = LoginLimiter.account(email);
    await Promise.all([
      this.byEmailAndAddress.delete(`${account}|${address}`),
      this.byAddress.reward(address, 1),
      this.byAccount.reward(account, 1),
      this.redis.command.set(this.knownKey(email, address), '1', 'EX', KNOWN_ADDRESS_S),
    ]);
  }

  static refusalError(attempt: LoginAttempt): ApiError {
    return new ApiError(
      'rate_limit_error',
      'too_many_login_attempts',
      'Too many failed logins; try again later',
      null,
      { 'retry-after': String(attempt.retryAfterS) },
    );
  }
}

interface Outcome {
  allowed: boolean;
  /** This attempt is the first one over the limit: the lockout starts now. */
  justFilled: boolean;
  msBeforeNext: number;
}

/** rate-limiter-flexible rejects with a RateLimiterRes when over, with an Error on failure. */
async function consume(limiter: RateLimiterRedis, key: string): Promise<Outcome> {
  try {
    const res = await limiter.consume(key, 1);
    return { allowed: true, justFilled: false, msBeforeNext: res.msBeforeNext };
  } catch (error) {
    if (!(error instanceof RateLimiterRes)) throw error;
    return {
      allowed: false,
      justFilled: error.consumedPoints === limiter.points + 1,
      msBeforeNext: error.msBeforeNext,
    };
  }
}
