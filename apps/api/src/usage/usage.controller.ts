import { Controller, Get, Param, ParseUUIDPipe, Query } from '@nestjs/common';
import { metricsQuerySchema, refusalsQuerySchema, usageQuerySchema } from '@pipedec/contracts';
import { Auth } from '../auth/auth-policy.js';
import { CurrentTenant, type TenantPrincipal } from '../auth/principal.js';
import { parseBody } from '../common/parse-body.js';
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
  mine(@CurrentTenant() tenant: TenantPrincipal, @Query() query: unknown) {
    return this.usage.report(tenant.tenantId, parseBody(usageQuerySchema, query));
  }

  @Get('admin/usage')
  @Auth.admin('viewer')
  overview(@Query() query: unknown) {
    return this.usage.overview(parseBody(usageQuerySchema, query));
  }

  @Get('admin/metrics')
  @Auth.admin('viewer')
  metrics(@Query() query: unknown) {
    return this.usage.metrics(parseBody(metricsQuerySchema, query));
  }

  /** Refused admissions (429s) per tenant and reason, counted per hour. */
  @Get('admin/refusals')
  @Auth.admin('viewer')
  refusals(@Query() query: unknown) {
    return this.usage.refusals(parseBody(refusalsQuerySchema, query));
  }

  @Get('admin/tenants/:tenantId/usage')
  @Auth.admin('viewer')
  async ofTenant(@Param('tenantId', ParseUUIDPipe) tenantId: string, @Query() query: unknown) {
    await this.tenants.get(tenantId);
    return this.usage.report(tenantId, parseBody(usageQuerySchema, query));
  }
}
