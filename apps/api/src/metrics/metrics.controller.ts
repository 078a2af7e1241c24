import { createHash, timingSafeEqual } from 'node:crypto';
import { Controller, Get, Header, Inject, Req } from '@nestjs/common';
import type { Request } from 'express';
import { Auth } from '../auth/auth-policy.js';
import { bearerToken } from '../auth/principal.js';
import { ApiError } from '../common/errors.js';
import { API_CONFIG, type ApiConfig } from '../config/api-config.js';
import { ApiDoc } from '../openapi/route-doc.js';
import { MetricsService } from './metrics.service.js';

@Controller()
export class MetricsController {
  constructor(
    private readonly metrics: MetricsService,
    @Inject(API_CONFIG) private readonly config: ApiConfig,
  ) {}

  /**
   * Prometheus scrape endpoint on the public port: only with `Authorization: Bearer
   * METRICS_TOKEN` (#18: it was open and showed every tenant's tokens and spend). Without a
   * token configured it is refused; METRICS_PORT serves it on an internal port instead.
   */
  @Get('metrics')
  @Auth.public()
  @ApiDoc({
    summary: 'Prometheus metrics (Authorization: Bearer METRICS_TOKEN)',
    description:
      'Refused (403) when METRICS_TOKEN is not set: METRICS_PORT then serves them on an internal port.',
    produces: ['text/plain'],
    errors: [401, 403],
  })
  @Header('content-type', 'text/plain; version=0.0.4')
  scrape(@Req() req: Request): Promise<string> {
    const expected = this.config.METRICS_TOKEN;
    if (!expected) {
      throw new ApiError(
        'permission_error',
        'metrics_not_public',
        'Metrics are not served on this port: set METRICS_TOKEN to scrape them here with a bearer token, or scrape METRICS_PORT',
      );
    }
    const given = bearerToken(req);
    if (!given || !sameSecret(given, expected)) {
      throw new ApiError(
        'authentication_error',
        'invalid_metrics_token',
        'Send Authorization: Bearer <METRICS_TOKEN> to scrape metrics',
      );
    }
    return this.metrics.registry.metrics();
  }
}

/** Compares digests, so neither the length nor the content leaks through timing. */
function sameSecret(a: string, b: string): boolean {
  const digest = (s: string) => createHash('sha256').update(s).digest();
  return timingSafeEqual(digest(a), digest(b));
}
