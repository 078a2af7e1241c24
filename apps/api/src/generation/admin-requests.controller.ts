import { Controller, Get, Param, ParseUUIDPipe } from '@nestjs/common';
import { jobStatusSchema } from '@pipedec/contracts';
import { Auth } from '../auth/auth-policy.js';
import { ApiDoc } from '../openapi/route-doc.js';
import { RequestsService } from './requests.service.js';

/**
 * A tenant's request as an admin sees it (the playground's statistics after a run): the
 * same view GET /v1/jobs/:id gives the tenant, decoding choice, timesteps and hit rate included.
 */
@Controller('admin/tenants/:tenantId/requests')
export class AdminRequestsController {
  constructor(private readonly requests: RequestsService) {}

  @Get(':requestId')
  @Auth.admin('viewer')
  @ApiDoc({
    summary: "A tenant's request: status, output, decoding choice, timesteps, hit rate",
    response: jobStatusSchema,
    errors: [404],
  })
  status(
    @Param('tenantId', ParseUUIDPipe) tenantId: string,
    @Param('requestId', ParseUUIDPipe) requestId: string,
  ) {
    return this.requests.status(tenantId, requestId);
  }
}
