// A recorded request as its tenant sees it: its status and result, cancelling it, and whether
// it is theirs (socket.io subscriptions). Split from GenerationService, which admits requests.
import { Injectable } from '@nestjs/common';
import {
  cancelChannel,
  cancelKey,
  emptySpeculativeStats,
  REQUEST_KEYS_TTL_S,
  speculativeStatsSchema,
  type DecodingChoice,
} from '@pipedec/contracts';
import { Errors } from '../common/errors.js';
import { Clock } from '../infra/clock.js';
import { RedisConnections } from '../infra/redis.provider.js';
import { AccountingService } from './accounting.service.js';
import { EventReader } from './event-reader.js';
import { FairScheduler } from './fair-scheduler.js';
import { decodingOf, deliveredUsage } from './outcome.js';
import { RequestsRepository } from './requests.repository.js';

@Injectable()
export class RequestsService {
  constructor(
    private readonly repo: RequestsRepository,
    private readonly events: EventReader,
    private readonly scheduler: FairScheduler,
    private readonly accounting: AccountingService,
    private readonly redis: RedisConnections,
    private readonly clock: Clock,
  ) {}

  /** Sets the request's cancel flag and tells the heads (a running job ends at its next step). */
  async flagCancelled(requestId: string): Promise<void> {
    await this.redis.command
      .multi()
      .set(cancelKey(this.redis.prefix, requestId), '1', 'EX', REQUEST_KEYS_TTL_S)
      .publish(cancelChannel(this.redis.prefix), requestId)
      .exec();
  }

  /**
   * Cancels a request of this tenant. A job still waiting is removed and ended here; a
   * running one sees the cancel flag at its next timestep and ends itself.
   */
  async cancel(tenantId: string, requestId: string): Promise<{ id: string; status: string }> {
    const request = await this.repo.find(tenantId, requestId);
    if (!request) throw Errors.notFound('Request', requestId);
    if (request.accountedAt) return { id: requestId, status: request.status };
    await this.flagCancelled(requestId);
    if (await this.scheduler.remove(tenantId, requestId)) {
      // A job waiting for a retry may have streamed tokens on its first attempt: those were
      // delivered, and are billed.
      const usage = deliveredUsage(
        request,
        (await this.events.all(requestId)).map((e) => e.event),
      );
      await this.events.append(
        requestId,
        {
          type: 'done',
          finishReason: 'cancelled',
          usage,
          stats: emptySpeculativeStats(),
          at: this.clock.nowMs(),
        },
        REQUEST_KEYS_TTL_S,
      );
      await this.accounting.finalize(tenantId, requestId);
      return { id: requestId, status: 'cancelled' };
    }
    return { id: requestId, status: 'cancelling' };
  }

  /** Status and (when finished) result of a request of this tenant. */
  async status(tenantId: string, requestId: string) {
    const request = await this.repo.find(tenantId, requestId);
    if (!request) throw Errors.notFound('Request', requestId);
    const entries = await this.events.all(requestId);
    const text = new Map<number, string>();
    let started = false;
    for (const { event } of entries) {
      if (event.type === 'token' && !text.has(event.index)) text.set(event.index, event.text);
      if (event.type === 'started') started = true;
    }
    const output = [...text.entries()]
      .sort((a, b) => a[0] - b[0])
      .map(([, t]) => t)
      .join('');
    const status = request.accountedAt ? request.status : started ? 'running' : 'queued';
    return {
      id: request.id,
      status,
      model: request.model,
      method: request.method,
      /** What it decodes with: the method named, or auto's choice, with its parameters. */
      decoding:
        (request.decoding as DecodingChoice | null) ?? decodingOf(entries.map((e) => e.event)),
      output,
      finishReason: request.finishReason,
      error: request.errorCode,
      usage: request.accountedAt
        ? {
            prompt_tokens: request.promptTokens,
            completion_tokens: request.completionTokens,
            total_tokens: request.promptTokens + request.completionTokens,
          }
        : null,
      timings: {
        queuedAt: request.queuedAt,
        startedAt: request.startedAt,
        finishedAt: request.finishedAt,
        timeToFirstTokenMs: request.timeToFirstTokenMs,
        timePerOutputTokenMs: request.timePerOutputTokenMs,
        totalLatencyMs: request.totalLatencyMs,
      },
      stats: request.stats === null ? null : speculativeStatsSchema.parse(request.stats),
      costMicros: Number(request.costMicros),
      lastEventId: entries.length > 0 ? entries[entries.length - 1].id : null,
    };
  }

  /** Whether the request belongs to the tenant (socket.io subscriptions). */
  async owns(tenantId: string, requestId: string): Promise<boolean> {
    return this.repo.exists(tenantId, requestId);
  }
}
