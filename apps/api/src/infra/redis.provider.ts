import { Inject, Injectable, type OnModuleDestroy } from '@nestjs/common';
import { Redis } from 'ioredis';
import { API_CONFIG, type ApiConfig } from '../config/api-config.js';

/**
 * The API's Redis connections: `command` for ordinary commands and scripts; blocking reads
 * (XREAD BLOCK) and subscriptions take their own via `duplicate()` and must close them.
 */
@Injectable()
export class RedisConnections implements OnModuleDestroy {
  readonly command: Redis;
  readonly prefix: string;
  private readonly extra = new Set<Redis>();

  constructor(@Inject(API_CONFIG) private readonly config: ApiConfig) {
    this.command = new Redis(config.REDIS_URL, { maxRetriesPerRequest: 2, lazyConnect: false });
    this.prefix = config.REDIS_PREFIX;
  }

  /**
   * A dedicated connection: blocking reads, or a subscriber (`subscriber`: retries forever and
   * leaves subscribing to its owner, on each connection). Closed with the module.
   */
  duplicate(options: { subscriber?: boolean } = {}): Redis {
    const conn = new Redis(this.config.REDIS_URL, {
      maxRetriesPerRequest: options.subscriber ? null : 2,
      autoResubscribe: !options.subscriber,
    });
    this.extra.add(conn);
    conn.once('end', () => this.extra.delete(conn));
    return conn;
  }

  release(conn: Redis): void {
    this.extra.delete(conn);
    conn.disconnect();
  }

  async ping(): Promise<void> {
    await this.command.ping();
  }

  async onModuleDestroy(): Promise<void> {
    for (const conn of this.extra) conn.disconnect();
    this.extra.clear();
    await this.command.quit().catch(() => this.command.disconnect());
  }
}
