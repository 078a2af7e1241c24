import { type DynamicModule, Module } from '@nestjs/common';
import { APP_FILTER, APP_GUARD, DiscoveryModule } from '@nestjs/core';
import { AdminAuthModule } from './admin-auth/admin-auth.module.js';
import { ApiKeysModule } from './api-keys/api-keys.module.js';
import { AuditModule } from './audit/audit.module.js';
import { AuthGuard } from './auth-guard/auth.guard.js';
import { ErrorFilter } from './common/error.filter.js';
import { API_CONFIG, type ApiConfig } from './config/api-config.js';
import { GenerationModule } from './generation/generation.module.js';
import { HealthModule } from './health/health.module.js';
import { MetricsModule } from './metrics/metrics.module.js';
import { OpenApiModule } from './openapi/openapi.module.js';
import { PipelinesModule } from './pipelines/pipelines.module.js';
import { InfraModule } from './infra/infra.module.js';
import { LiveModule } from './live/live.module.js';
import { TenantsModule } from './tenants/tenants.module.js';
import { UsageModule } from './usage/usage.module.js';

@Module({})
export class AppModule {
  static forRoot(config: ApiConfig): DynamicModule {
    return {
      module: AppModule,
      global: true,
      imports: [
        DiscoveryModule,
        InfraModule,
        MetricsModule,
        AuditModule,
        HealthModule,
        TenantsModule,
        ApiKeysModule,
        AdminAuthModule,
        UsageModule,
        GenerationModule,
        OpenApiModule,
        PipelinesModule,
        LiveModule,
      ],
      providers: [
        { provide: API_CONFIG, useValue: config },
        { provide: APP_GUARD, useClass: AuthGuard },
        { provide: APP_FILTER, useClass: ErrorFilter },
      ],
      exports: [API_CONFIG],
    };
  }
}
