import { Global, Module } from '@nestjs/common';
import { MetricsController } from './metrics.controller.js';
import { MetricsPort } from './metrics-port.js';
import { MetricsService } from './metrics.service.js';

@Global()
@Module({
  controllers: [MetricsController],
  providers: [MetricsService, MetricsPort],
  exports: [MetricsService, MetricsPort],
})
export class MetricsModule {}
