// Admission's check that a pipeline can take the request now. While no pipeline of the stage
// registry is whole (a stage died and its supervisor has not brought it back, or none has
// started yet), a new request is refused at once with 503 no_pipeline_available and
// Retry-After, instead of being admitted to wait in the queue (#18: requests admitted during
// an outage hung). The registry read is shared by admissions within PIPELINE_GATE_CACHE_MS,
// so a burst costs one read, and a dead stage is seen within that time of the registry
// saying so (its neighbours unlink it at once; its entry expires after one registry TTL).
//
// It also refuses, with a 400 naming max_tokens or the prompt, a request that no whole
// pipeline's stages could ever hold in KV memory (contracts kv-budget.ts), even alone and with
// the narrowest tree: the head would only ever fail it. One that fits waits at the head while
// others hold the memory.
import { Inject, Injectable } from '@nestjs/common';
import { kvRefusal } from '@pipedec/contracts';
import { ApiError } from '../common/errors.js';
import { API_CONFIG, type ApiConfig } from '../config/api-config.js';
import { HealthService, type PipelineHealth } from '../health/health.service.js';
import { Clock } from '../infra/clock.js';

/** How long one read of the registry answers admissions. */
export const PIPELINE_GATE_CACHE_MS = 250;

interface Reading {
  at: number;
  whole: number;
  problems: string[];
  /** The KV memory of each whole pipeline (null where a head announces none). */
  kv: PipelineHealth['kv'][];
}

/** Why a request fits in no pipeline's KV memory: the body field at fault and a message. */
export interface KvTooLarge {
  field: 'prompt' | 'max_tokens';
  message: string;
}

@Injectable()
export class PipelineGate {
  private last: Reading | null = null;
  private pending: Promise<Reading> | null = null;

  constructor(
    private readonly health: HealthService,
    private readonly clock: Clock,
    @Inject(API_CONFIG) private readonly config: ApiConfig,
  ) {}

  /** Throws 503 no_pipeline_available (with Retry-After) unless some pipeline is whole. */
  async admit(): Promise<void> {
    if (this.config.ADMIT_WITHOUT_PIPELINE) return;
    const r = await this.reading();
    if (r.whole > 0) return;
    const why = r.problems.length > 0 ? `: ${r.problems.slice(0, 3).join('; ')}` : '';
    throw new ApiError(
      'service_unavailable',
      'no_pipeline_available',
      `No pipeline for this model is whole right now${why}. Retry after ${this.config.NO_PIPELINE_RETRY_AFTER_S} s`,
      null,
      { 'retry-after': String(this.config.NO_PIPELINE_RETRY_AFTER_S) },
    );
  }

  /**
   * Why a request of this many prompt tokens and max_tokens could never fit in the KV memory
   * of any whole pipeline, or null when one can hold it (or none announces its memory).
   */
  async kvTooLarge(promptTokens: number, maxTokens: number): Promise<KvTooLarge | null> {
    if (this.config.ADMIT_WITHOUT_PIPELINE) return null;
    const r = await this.reading();
    let refusal: KvTooLarge | null = null;
    for (const kv of r.kv) {
      if (!kv || kv.capacityRows === null) return null;
      const why = kvRefusal(promptTokens, maxTokens, kv.maxPositions, kv.treeRows, kv.capacityRows);
      if (!why) return null;
      refusal ??= why;
    }
    return refusal;
  }

  private async reading(): Promise<Reading> {
    const now = this.clock.nowMs();
    if (this.last && now - this.last.at < PIPELINE_GATE_CACHE_MS) return this.last;
    this.pending ??= this.health
      .pipelines()
      .then((items) => {
        const r: Reading = {
          at: this.clock.nowMs(),
          whole: items.filter((p) => p.ready).length,
          problems: items.flatMap((p) => p.problems),
          kv: items.filter((p) => p.ready).map((p) => p.kv),
        };
        if (items.length === 0) r.problems.push('no stage has registered');
        this.last = r;
        return r;
      })
      .finally(() => {
        this.pending = null;
      });
    return this.pending;
  }
}
