import { Controller, Get, Header } from '@nestjs/common';
import { Auth } from '../auth/auth-policy.js';
import { MetricsService } from './metrics.service.js';

@Controller()
export class MetricsController {
  constructor(private readonly metrics: MetricsService) {}

  /** Prometheus scrape endpoint (keep it on an internal network). */
  @Get('metrics')
  @Auth.public()
  @Header('content-type', 'text/plain; version=0.0.4')
  scrape(): Promise<string> {
    return this.metrics.registry.metrics();
  }
}
