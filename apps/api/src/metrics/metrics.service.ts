import { Injectable } from '@nestjs/common';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** The API's Prometheus metrics, in a registry of its own (tests create several apps). */
@Injectable()
export class MetricsService {
  readonly registry = new Registry();

  readonly httpRequests = new Counter({
    name: 'pipedec_http_requests_total',
    help: 'HTTP requests by route and status',
    labelNames: ['method', 'route', 'status'],
    registers: [this.registry],
  });
  readonly generationRequests = new Counter({
    name: 'pipedec_generation_requests_total',
    help: 'Finished generation requests by tenant and status',
    labelNames: ['tenant', 'status'],
    registers: [this.registry],
  });
  readonly tokens = new Counter({
    name: 'pipedec_tokens_total',
    help: 'Tokens by tenant and kind (prompt, completion)',
    labelNames: ['tenant', 'kind'],
    registers: [this.registry],
  });
  readonly costMicros = new Counter({
    name: 'pipedec_cost_micros_total',
    help: 'Cost charged, micro-dollars, by tenant',
    labelNames: ['tenant'],
    registers: [this.registry],
  });
  readonly rateLimited = new Counter({
    name: 'pipedec_rate_limited_total',
    help: 'Requests refused by a limit, by tenant and limit',
    labelNames: ['tenant', 'code'],
    registers: [this.registry],
  });
  readonly ttft = new Histogram({
    name: 'pipedec_time_to_first_token_seconds',
    help: 'Time from admission to the first token',
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30],
    registers: [this.registry],
  });
  readonly tpot = new Histogram({
    name: 'pipedec_time_per_output_token_seconds',
    help: 'Mean time between output tokens of a request',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
    registers: [this.registry],
  });
  readonly latency = new Histogram({
    name: 'pipedec_request_latency_seconds',
    help: 'Total latency of generation requests',
    buckets: [0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120],
    registers: [this.registry],
  });
  private queueDepthSource?: () => Promise<Record<string, number>>;
  readonly queueDepth = new Gauge({
    name: 'pipedec_queue_depth',
    help: 'Jobs by place: waiting in the fair scheduler, waiting and active in BullMQ',
    labelNames: ['where'],
    registers: [this.registry],
    collect: async () => {
      const depths = (await this.queueDepthSource?.()) ?? {};
      for (const [where, n] of Object.entries(depths)) this.queueDepth.set({ where }, n);
    },
  });

  /** The scheduler registers how to read queue depths at scrape time. */
  setQueueDepthSource(source: () => Promise<Record<string, number>>): void {
    this.queueDepthSource = source;
  }

  constructor() {
    collectDefaultMetrics({ register: this.registry });
  }
}
