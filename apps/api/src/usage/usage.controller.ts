import { Controller, Get, Param, ParseUUIDPipe } from '@nestjs/common';
import {
  metricsQuerySchema,
  metricsReportSchema,
  refusalsQuerySchema,
  refusalsReportSchema,
  usageQuerySchema,
  usageReportSchema,
  type MetricsQuery,
  type RefusalsQuery,
  type UsageQuery,
} from '@pipedec/contracts';
import { Auth } from '../auth/auth-policy.js';
import { CurrentTenant, type TenantPrincipal } from '../auth/principal.js';
import { ValidQuery } from '../common/route-inputs.js';
import { ApiDoc } from '../openapi/route-doc.js';
import { TenantsService } from '../tenants/tenants.service.js';
import { UsageService } from './usage.service.js';

@Controller()
export class UsageController {
  constructor(
    private readonly usage: UsageService,
    private readonly tenants: TenantsService,
  ) {}

  /** A tenant's own usage; the tenant comes from the key, never from the request. */
  @Get('v1/usage')
  @Auth.apiKey('read-usage')
  @ApiDoc({ summary: "The key's tenant usage and cost over time", response: usageReportSchema })
  mine(@CurrentTenant() tenant: TenantPrincipal, @ValidQuery(usageQuerySchema) query: UsageQuery) {
    return this.usage.report(tenant.tenantId, query);
  }

  @Get('admin/usage')
  @Auth.admin('viewer')
  @ApiDoc({ summary: 'Usage, latency and cost per tenant and over time' })
  overview(@ValidQuery(usageQuerySchema) query: UsageQuery) {
    return this.usage.overview(query);
  }

  @Get('admin/metrics')
  @Auth.admin('viewer')
  @ApiDoc({
    summary: 'Latency percentiles, volume and cost per minute, hour or day (all tenants or one)',
    response: metricsReportSchema,
  })
  metrics(@ValidQuery(metricsQuerySchema) query: MetricsQuery) {
    return this.usage.metrics(query);
  }

  /** Refused admissions (429s) per tenant and reason, counted per hour. */
  @Get('admin/refusals')
  @Auth.admin('viewer')
  @ApiDoc({
    summary:
      'Refused requests (429: rate, tokens, monthly quota, concurrency) per tenant and reason',
    response: refusalsReportSchema,
  })
  refusals(@ValidQuery(refusalsQuerySchema) query: RefusalsQuery) {
    return this.usage.refusals(query);
  }

  @Get('admin/tenants/:tenantId/usage')
  @Auth.admin('viewer')
  @ApiDoc({
    summary: 'Usage, latency and cost of a tenant over time',
    response: usageReportSchema,
    errors: [404],
  })
  async ofTenant(
    @Param('tenantId', ParseUUIDPipe) tenantId: string,
    @ValidQuery(usageQuerySchema) query: UsageQuery,
  ) {
    await this.tenants.get(tenantId);
    return this.usage.report(tenantId, query);
  }
}
