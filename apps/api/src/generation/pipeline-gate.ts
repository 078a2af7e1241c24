// Admission's check that a pipeline can take the request now. While no pipeline of the stage
// registry is whole (a stage died and its supervisor has not brought it back, or none has
// started yet), a new request is refused at once with 503 no_pipeline_available and
// Retry-After, instead of being admitted to wait in the queue (#18: requests admitted during
// an outage hung). The registry read is shared by admissions within PIPELINE_GATE_CACHE_MS,
// so a burst costs one read, and a dead stage is seen within that time of the registry
// saying so (its neighbours unlink it at once; its entry expires after one registry TTL).
import { Inject, Injectable } from '@nestjs/common';
import { ApiError } from '../common/errors.js';
import { API_CONFIG, type ApiConfig } from '../config/api-config.js';
import { HealthService } from '../health/health.service.js';
import { Clock } from '../infra/clock.js';

/** How long one read of the registry answers admissions. */
export const PIPELINE_GATE_CACHE_MS = 250;

interface Reading {
  at: number;
  whole: number;
  problems: string[];
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
