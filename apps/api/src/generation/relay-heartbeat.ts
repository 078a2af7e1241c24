import { Injectable, Logger, type OnModuleDestroy } from '@nestjs/common';
import { RELAY_HEARTBEAT_MS, RELAY_HEARTBEAT_TTL_MS, relayKey } from '@pipedec/contracts';
import { RedisConnections } from '../infra/redis.provider.js';

// Tells the heads which requests this replica is relaying to a client right now. A request
// cancelled with its client (no keep_running) is cancelled by the API when the client drops;
// when the API itself dies, nobody would: its head watches the heartbeat key (contracts
// keys.ts relayKey) and cancels the job once no replica has refreshed it for a few seconds.
// One timer and one pipelined round trip per beat cover every request this replica relays.

@Injectable()
export class RelayHeartbeat implements OnModuleDestroy {
  private readonly log = new Logger('RelayHeartbeat');
  /** Request id -> how many follows of it this replica runs (SSE, a replay, socket.io). */
  private readonly relaying = new Map<string, number>();
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly redis: RedisConnections) {}

  /** Marks the request relayed by this replica until the returned release is called. */
  hold(requestId: string): () => void {
    const n = this.relaying.get(requestId) ?? 0;
    this.relaying.set(requestId, n + 1);
    if (n === 0) this.beat([requestId]);
    if (!this.timer) {
      this.timer = setInterval(() => this.beat([...this.relaying.keys()]), RELAY_HEARTBEAT_MS);
      this.timer.unref();
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.relaying.get(requestId) ?? 1) - 1;
      if (left > 0) this.relaying.set(requestId, left);
      else this.relaying.delete(requestId);
      if (this.relaying.size === 0 && this.timer) {
        clearInterval(this.timer);
        this.timer = null;
      }
    };
  }

  onModuleDestroy(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  private beat(requestIds: string[]): void {
    if (requestIds.length === 0) return;
    const pipeline = this.redis.command.pipeline();
    for (const id of requestIds) {
      pipeline.set(relayKey(this.redis.prefix, id), '1', 'PX', RELAY_HEARTBEAT_TTL_MS);
    }
    // A missed beat is covered by the key's TTL and the head's grace; the next one retries.
    pipeline.exec().catch((e: unknown) => {
      this.log.warn(`relay heartbeat: ${e instanceof Error ? e.message : String(e)}`);
    });
  }
}
