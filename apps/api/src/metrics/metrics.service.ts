import { Inject, Injectable } from '@nestjs/common';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { API_CONFIG, type ApiConfig } from '../config/api-config.js';

/**
 * The API's Prometheus metrics, in a registry of its own (tests create several apps). Tenant
 * ids are labels only when the operator opts in (METRICS_TENANT_LABELS): by default the
 * counters are totals, so a scrape reveals no tenant.
 */
@Injectable()
export class MetricsService {
  readonly registry = new Registry();
  private readonly byTenant: boolean;
  private readonly tenantLabel: string[];

  constructor(@Inject(API_CONFIG) config: ApiConfig) {
    this.byTenant = config.METRICS_TENANT_LABELS;
    this.tenantLabel = this.byTenant ? ['tenant'] : [];
    this.generationRequests = new Counter({
      name: 'pipedec_generation_requests_total',
      help: 'Finished generation requests by status (and tenant, when labelled)',
      labelNames: [...this.tenantLabel, 'status'],
      registers: [this.registry],
    });
    this.tokens = new Counter({
      name: 'pipedec_tokens_total',
      help: 'Tokens by kind (prompt, completion) (and tenant, when labelled)',
      labelNames: [...this.tenantLabel, 'kind'],
      registers: [this.registry],
    });
    this.costMicros = new Counter({
      name: 'pipedec_cost_micros_total',
      help: 'Cost charged, micro-dollars (by tenant, when labelled)',
      labelNames: this.tenantLabel,
      registers: [this.registry],
    });
    this.rateLimited = new Counter({
      name: 'pipedec_rate_limited_total',
      help: 'Requests refused by a limit, by limit (and tenant, when labelled)',
      labelNames: [...this.tenantLabel, 'code'],
      registers: [this.registry],
    });
    collectDefaultMetrics({ register: this.registry });
  }

  /** The tenant label of a sample: the id when labelled by tenant, else none. */
  tenant(tenantId: string): { tenant?: string } {
    return this.byTenant ? { tenant: tenantId } : {};
  }

  readonly httpRequests = new Counter({
    name: 'pipedec_http_requests_total',
    help: 'HTTP requests by route and status',
    labelNames: ['method', 'route', 'status'],
    registers: [this.registry],
  });
  readonly generationRequests: Counter;
  readonly tokens: Counter;
  readonly costMicros: Counter;
  readonly rateLimited: Counter;
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
}
