import { Inject, Injectable } from '@nestjs/common';
import { API_CONFIG, type ApiConfig } from '../config/api-config.js';
import { ApiError } from '../common/errors.js';
import { RedisConnections } from '../infra/redis.provider.js';

/**
 * Counts failed admin logins per email and per client address in Redis (shared by every
 * replica). Over the limit, logins are refused with 429 until the window ends, even with
 * the right password, so guessing gets nowhere.
 */
@Injectable()
export class LoginLimiter {
  constructor(
    private readonly redis: RedisConnections,
    @Inject(API_CONFIG) private readonly config: ApiConfig,
  ) {}

  private keys(email: string, ip: string): string[] {
    const p = this.redis.prefix;
    return [`${p}login:email:${email.toLowerCase()}`, `${p}login:ip:${ip}`];
  }

  async assertAllowed(email: string, ip: string): Promise<void> {
    const keys = this.keys(email, ip);
    const counts = await this.redis.command.mget(...keys);
    const worst = Math.max(...counts.map((c) => Number(c ?? 0)));
    if (worst >= this.config.ADMIN_LOGIN_MAX_ATTEMPTS) {
      const ttl = Math.max(1, ...(await Promise.all(keys.map((k) => this.redis.command.ttl(k)))));
      throw new ApiError(
        'rate_limit_error',
        'too_many_login_attempts',
        'Too many failed logins; try again later',
        null,
        {
          'retry-after': String(ttl),
        },
      );
    }
  }

  async recordFailure(email: string, ip: string): Promise<void> {
    const multi = this.redis.command.multi();
    for (const key of this.keys(email, ip)) {
      multi.incr(key);
      multi.expire(key, this.config.ADMIN_LOGIN_WINDOW_S, 'NX');
    }
    await multi.exec();
  }

  async reset(email: string): Promise<void> {
    await this.redis.command.del(this.keys(email, '')[0]);
  }
}
