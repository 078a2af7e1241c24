import { randomUUID } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import {
  cancelKey,
  eventsKey,
  GENERATION_JOB_VERSION,
  relayKey,
  unsupportedCombination,
  type DecodingMethod,
  type SpeculativeAcceptance,
  type GenerationJob,
} from '@pipedec/contracts';
import type { TenantPrincipal } from '../auth/principal.js';
import { ApiError, Errors } from '../common/errors.js';
import { API_CONFIG, type ApiConfig } from '../config/api-config.js';
import { Clock } from '../infra/clock.js';
import { RedisConnections } from '../infra/redis.provider.js';
import type { RateHeaders } from '../quotas/quota.service.js';
import { TenantsService } from '../tenants/tenants.service.js';
import { FairScheduler } from './fair-scheduler.js';
import {
  IdempotencyStore,
  keyReused,
  requestDigest,
  type IdempotencyRecord,
  type IdempotencyRequest,
} from './idempotency.js';
import { PipelineGate } from './pipeline-gate.js';
import { PromptTokenizer } from './prompt-tokenizer.js';
import { requestOfJob, RequestsRepository } from './requests.repository.js';
import { RequestsService } from './requests.service.js';
import { ReservationService } from './reservation.service.js';

/** How the request is relayed, beside what it asks for (not part of its idempotency digest). */
export interface SubmitOptions {
  /**
   * The request ends with its client (OpenAI endpoints without keep_running): the job carries
   * the relay's heartbeat key, and its head cancels it when no API relays it any more.
   */
  cancelWithClient?: boolean;
}

/** A generation request after validation, whatever endpoint it came from. */
export interface GenerationParams {
  model: string;
  prompt: { text: string } | { messages: { role: string; content: string }[] };
  /** Which body field holds the prompt, for error messages. */
  promptParam: 'prompt' | 'messages';
  maxTokens?: number;
  temperature?: number;
  topP?: number;
  topK?: number;
  seed?: number;
  stop?: string | string[] | null;
  method?: DecodingMethod;
  width?: number;
  acceptance?: SpeculativeAcceptance;
}

/** The body fields every generation endpoint shares (OpenAI's names, plus ours). */
export interface CommonBody {
  model: string;
  max_tokens?: number;
  temperature?: number;
  top_p?: number;
  top_k?: number;
  seed?: number;
  stop?: string | string[] | null;
  decoding_method?: DecodingMethod;
  tree_width?: number;
  speculative_acceptance?: SpeculativeAcceptance;
}

/** GenerationParams from those fields; the endpoint adds the prompt. */
export function commonParams(b: CommonBody): Omit<GenerationParams, 'prompt' | 'promptParam'> {
  return {
    model: b.model,
    maxTokens: b.max_tokens,
    temperature: b.temperature,
    topP: b.top_p,
    topK: b.top_k,
    seed: b.seed,
    stop: b.stop,
    method: b.decoding_method,
    width: b.tree_width,
    acceptance: b.speculative_acceptance,
  };
}

export interface Admitted {
  requestId: string;
  promptTokens: number;
  maxTokens: number;
  createdAt: number; // epoch seconds
  headers: RateHeaders;
  /** An earlier request with the same Idempotency-Key and body: nothing new was admitted. */
  replayed?: boolean;
}

/** How long a replay waits for the first request's row (it is written just after queueing). */
const REPLAY_ROW_WAIT_MS = 5000;

/** tree_width when the request gives none; 0 lets auto's chooser pick the width as well. */
const DEFAULT_WIDTH: Record<DecodingMethod, number> = { auto: 0, pipedec: 2, stpp: 2, pp: 1 };

/**
 * Admission: validates a request against the model and the tenant's limits, tokenizes its
 * prompt, refuses it while no pipeline is whole (PipelineGate), reserves its quota, queues its
 * job and records it. Relaying its events is GenerationRelay's; its status and cancelling are
 * RequestsService's.
 */
@Injectable()
export class GenerationService {
  constructor(
    private readonly tenants: TenantsService,
    private readonly tokenizer: PromptTokenizer,
    private readonly reservation: ReservationService,
    private readonly scheduler: FairScheduler,
    private readonly repo: RequestsRepository,
    private readonly requests: RequestsService,
    private readonly redis: RedisConnections,
    private readonly clock: Clock,
    private readonly gate: PipelineGate,
    private readonly idempotency: IdempotencyStore,
    @Inject(API_CONFIG) private readonly config: ApiConfig,
  ) {}

  /** Validates against the tenant's limits, reserves quota, records and enqueues the job. */
  async submit(
    principal: TenantPrincipal,
    p: GenerationParams,
    idem?: IdempotencyRequest,
    opts: SubmitOptions = {},
  ): Promise<Admitted> {
    const { tenantId } = principal;
    const digest = idem ? requestDigest(idem.route, p) : '';
    if (idem) {
      // A retry of a request already admitted: the same request, never a second one.
      const held = await this.idempotency.find(tenantId, idem.key);
      if (held) return this.replay(tenantId, held, digest);
    }
    const ctx = await this.tenants.context(tenantId);
    if (p.model !== this.config.MODEL_NAME) {
      throw new ApiError(
        'invalid_request_error',
        'model_not_found',
        `The model "${p.model}" does not exist; this service serves "${this.config.MODEL_NAME}"`,
        'model',
        {},
        404,
      );
    }
    const method = p.method ?? 'auto';
    const width = p.width ?? DEFAULT_WIDTH[method];
    const unsupported = unsupportedCombination({ method, width });
    if (unsupported)
      throw Errors.invalid('unsupported_combination', unsupported.message, unsupported.param);
    const maxTokens =
      p.maxTokens ?? Math.min(this.config.DEFAULT_MAX_TOKENS, ctx.limits.maxOutputTokens);
    if (maxTokens > ctx.limits.maxOutputTokens) {
      throw Errors.invalid(
        'max_tokens_too_large',
        `max_tokens is ${maxTokens}; this tenant's limit is ${ctx.limits.maxOutputTokens}`,
        'max_tokens',
      );
    }
    const tokenIds =
      'text' in p.prompt
        ? await this.tokenizer.encode(p.prompt.text)
        : await this.tokenizer.encodeChat(p.prompt.messages);
    if (tokenIds.length > ctx.limits.maxPromptTokens) {
      throw Errors.invalid(
        'prompt_too_long',
        `The prompt has ${tokenIds.length} tokens; this tenant's limit is ${ctx.limits.maxPromptTokens}`,
        p.promptParam,
      );
    }
    if (tokenIds.length === 0)
      throw Errors.invalid('empty_prompt', 'The prompt is empty', p.promptParam);
    // A valid request that no pipeline could take now, or ever hold in KV memory, or that
    // would wait behind a full queue, is refused before it reserves anything.
    await this.gate.admit();
    const tooLarge = await this.gate.kvTooLarge(tokenIds.length, maxTokens);
    if (tooLarge) {
      const param = tooLarge.field === 'prompt' ? p.promptParam : 'max_tokens';
      throw Errors.invalid('kv_memory_exceeded', tooLarge.message, param);
    }
    await this.refuseWhenQueueFull();

    const requestId = randomUUID();
    let claim: IdempotencyRecord | null = null;
    if (idem) {
      claim = {
        requestId,
        digest,
        promptTokens: tokenIds.length,
        maxTokens,
        createdAt: Math.floor(this.clock.nowMs() / 1000),
      };
      const held = await this.idempotency.claim(tenantId, idem.key, claim);
      if (held) return this.replay(tenantId, held, digest);
    }
    const reserve = tokenIds.length + maxTokens;
    // Whether the job may skip the fair lists is looked up in the quota's round trip.
    const room = this.scheduler.checkRoom();
    let headers: RateHeaders;
    try {
      headers = await this.reservation.reserve(tenantId, requestId, ctx.limits, reserve, room);
    } catch (e) {
      if (idem && claim) await this.idempotency.release(tenantId, idem.key, claim);
      throw e;
    }
    const queuedAt = this.clock.now();
    const stop = p.stop == null ? [] : typeof p.stop === 'string' ? [p.stop] : p.stop;
    const sampling = {
      temperature: p.temperature ?? 1,
      topP: p.topP ?? 1,
      ...(p.topK ? { topK: p.topK } : {}),
      seed: p.seed ?? Math.floor(Math.random() * 2 ** 31),
      // A seed asks for reproducible tokens, which exact acceptance gives across methods;
      // without one, distribution-lossless acceptance keeps the speculation's speedup.
      acceptance: p.acceptance ?? (p.seed !== undefined ? 'exact' : 'distribution'),
    };
    const job: GenerationJob = {
      version: GENERATION_JOB_VERSION,
      requestId,
      tenantId,
      model: p.model,
      prompt: { kind: 'tokens', tokenIds },
      promptTokens: tokenIds.length,
      maxTokens,
      sampling,
      method,
      width,
      stop,
      eventsKey: eventsKey(this.redis.prefix, requestId),
      cancelKey: cancelKey(this.redis.prefix, requestId),
      enqueuedAt: queuedAt.getTime(),
      ...(opts.cancelWithClient ? { relayKey: relayKey(this.redis.prefix, requestId) } : {}),
    };
    // The job is queued first and recorded after: time to first token waits for the queue's
    // round trips, and writing the record at the same time slowed them down (its work shares
    // this event loop). The reply waits for both. Either failing takes the job back, so no
    // job runs without a record (nothing would bill it). A job that finishes before its row
    // commits is still accounted: the relay finds no row and the sweeper accounts it once the
    // row is there.
    try {
      await this.scheduler.enqueue(
        job,
        ctx.pricing.priority + 1,
        Math.max(1, 100 - ctx.pricing.priority),
        room,
      );
      await this.repo.create(tenantId, requestOfJob(job, principal.apiKeyId));
    } catch (e) {
      await this.withdraw(tenantId, requestId);
      await this.reservation.settle(requestId, 0);
      if (idem && claim) await this.idempotency.release(tenantId, idem.key, claim);
      throw e;
    }
    return {
      requestId,
      promptTokens: tokenIds.length,
      maxTokens,
      createdAt: claim?.createdAt ?? Math.floor(queuedAt.getTime() / 1000),
      headers,
    };
  }

  /** 503 queue_full with Retry-After once QUEUE_MAX_WAITING requests wait to start. */
  private async refuseWhenQueueFull(): Promise<void> {
    const limit = this.config.QUEUE_MAX_WAITING;
    if (limit === 0) return;
    const waiting = await this.scheduler.waitingCount();
    if (waiting < limit) return;
    const retry = this.config.QUEUE_FULL_RETRY_AFTER_S;
    throw new ApiError(
      'service_unavailable',
      'queue_full',
      `${waiting} requests are waiting to start, the queue's limit is ${limit}. Retry after ${retry} s`,
      null,
      { 'retry-after': String(retry) },
    );
  }

  /** The request an Idempotency-Key already stands for, if the body is the same. */
  private async replay(
    tenantId: string,
    held: IdempotencyRecord,
    digest: string,
  ): Promise<Admitted> {
    if (held.digest !== digest) throw keyReused();
    // The first request claims the key before it writes its row: a concurrent retry waits
    // for the row, or is told to retry when that admission is still going (or failed).
    const until = this.clock.nowMs() + REPLAY_ROW_WAIT_MS;
    while (!(await this.requests.owns(tenantId, held.requestId))) {
      if (this.clock.nowMs() > until) {
        throw Errors.conflict(
          'idempotency_key_in_progress',
          'A request with this Idempotency-Key is still being admitted; retry shortly',
        );
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    return {
      requestId: held.requestId,
      promptTokens: held.promptTokens,
      maxTokens: held.maxTokens,
      createdAt: held.createdAt,
      headers: { 'idempotent-replayed': 'true' },
      replayed: true,
    };
  }

  /** Takes back a job that may be queued without a record: out of the queue, or cancelled. */
  private async withdraw(tenantId: string, requestId: string): Promise<void> {
    await this.requests.flagCancelled(requestId).catch(() => undefined);
    await this.scheduler.remove(tenantId, requestId).catch(() => false);
  }
}
