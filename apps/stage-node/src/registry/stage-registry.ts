// This stage's entry in the Redis registry, renewed by a heartbeat and expiring when the
// heartbeats stop (a killed process disappears after one TTL), plus reads of a pipeline's
// entries for the pipeline-whole check and for finding peers. A deliberate change of an entry
// (registered, draining, relinked, gone) is also announced on the pipeline's channel.
import { Logger } from '@nestjs/common';
import {
  registryChangedChannel,
  registryKey,
  registryPipelinesKey,
  stageRegistrationSchema,
  type StageRegistration,
} from '@pipedec/contracts';
import type { Redis } from 'ioredis';

export class StageRegistry {
  private readonly log = new Logger('StageRegistry');
  private timer: NodeJS.Timeout | null = null;
  private beating: Promise<void> = Promise.resolve();
  private subscriber: Redis | null = null;
  private leaving = false;

  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly entry: () => StageRegistration,
    private readonly ttlMs: number,
    private readonly heartbeatMs: number,
  ) {}

  /** Registers now and keeps the entry alive until stop(). */
  async start(): Promise<void> {
    await this.beat();
    this.timer = setInterval(() => {
      this.beating = this.beat(false).catch((error: unknown) => {
        this.log.warn(
          `heartbeat failed: ${error instanceof Error ? error.message : String(error)}`,
        );
      });
    }, this.heartbeatMs);
  }

  /**
   * Writes the entry at once (after a readiness change), without waiting for the timer, and
   * announces it (`announce` false: a heartbeat, which changes nothing the head decides on).
   */
  async beat(announce = true): Promise<void> {
    // After deregister() began, a late beat (a registry read that saw a relink, a heartbeat
    // already due) must not bring the entry back: commands on one connection run in order,
    // so refusing here, synchronously, keeps every write before the removal.
    if (this.leaving) return;
    const e = this.entry();
    const tx = this.redis
      .multi()
      .set(
        registryKey(this.prefix, e.pipelineId, e.stageIndex),
        JSON.stringify(e),
        'PX',
        this.ttlMs,
      )
      .sadd(registryPipelinesKey(this.prefix), e.pipelineId);
    if (announce)
      tx.publish(registryChangedChannel(this.prefix, e.pipelineId), String(e.stageIndex));
    await tx.exec();
  }

  /** Stops the heartbeat and removes the entry, so the head notices at once. */
  async deregister(): Promise<void> {
    this.leaving = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    // The subscription goes first: a leaving stage has nothing to hear (the head would only
    // hear its own removal), and released after the removal it would outlive a removal that
    // failed (Redis down at shutdown), reconnecting for ever and keeping the process alive.
    this.subscriber?.removeAllListeners();
    this.subscriber?.disconnect();
    this.subscriber = null;
    await this.beating;
    const e = this.entry();
    await this.redis
      .multi()
      .del(registryKey(this.prefix, e.pipelineId, e.stageIndex))
      .publish(registryChangedChannel(this.prefix, e.pipelineId), String(e.stageIndex))
      .exec();
  }

  /**
   * Calls `onChange` for each change a stage of `pipelineId` announces, and whenever the
   * subscription connects or drops (what changed meanwhile is unknown). The result says
   * whether announcements are heard now. Ends with deregister().
   */
  watch(pipelineId: string, onChange: () => void): { listening: () => boolean } {
    const channel = registryChangedChannel(this.prefix, pipelineId);
    const sub = this.redis.duplicate({ autoResubscribe: false, maxRetriesPerRequest: null });
    this.subscriber = sub;
    let listening = false;
    sub.on('message', () => onChange());
    sub.on('close', () => {
      listening = false;
      onChange();
    });
    sub.on('ready', () => {
      sub.subscribe(channel).then(
        () => {
          listening = true;
          onChange();
        },
        (e: unknown) =>
          this.log.warn(
            `cannot subscribe to ${channel}: ${e instanceof Error ? e.message : String(e)}`,
          ),
      );
    });
    return { listening: () => listening };
  }

  /** The entries of stages 0..count-1 of a pipeline; undefined where none (or unparsable). */
  async read(pipelineId: string, count: number): Promise<(StageRegistration | undefined)[]> {
    const keys = Array.from({ length: count }, (_, s) => registryKey(this.prefix, pipelineId, s));
    const values = await this.redis.mget(...keys);
    return values.map((v, s) => {
      if (v === null) return undefined;
      const parsed = stageRegistrationSchema.safeParse(safeJson(v));
      if (!parsed.success) {
        this.log.warn(`registry entry ${keys[s]} is malformed: ${parsed.error.message}`);
        return undefined;
      }
      return parsed.data;
    });
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
