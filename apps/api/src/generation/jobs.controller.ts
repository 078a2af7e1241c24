import { Controller, Delete, Get, HttpCode, Param, ParseUUIDPipe, Post, Res } from '@nestjs/common';
import { jobStatusSchema, jobSubmitSchema, type JobSubmit } from '@pipedec/contracts';
import type { Response } from 'express';
import { Auth } from '../auth/auth-policy.js';
import { CurrentTenant, type TenantPrincipal } from '../auth/principal.js';
import { ValidBody } from '../common/route-inputs.js';
import { ApiDoc } from '../openapi/route-doc.js';
import { commonParams, GenerationService } from './generation.service.js';
import { IdempotencyKey } from './idempotency.js';
import { RequestsService } from './requests.service.js';

/** Native job API: submit, read status and result, cancel. Always scoped to the key's tenant. */
@Controller('v1/jobs')
export class JobsController {
  constructor(
    private readonly generation: GenerationService,
    private readonly requests: RequestsService,
  ) {}

  @Post()
  @HttpCode(202)
  @Auth.apiKey('generate')
  @ApiDoc({
    summary: 'Submit a generation job; poll GET /v1/jobs/{id} or subscribe on /v1/stream',
    errors: [409, 429, 503],
  })
  async submit(
    @CurrentTenant() tenant: TenantPrincipal,
    @ValidBody(jobSubmitSchema) req: JobSubmit,
    @IdempotencyKey() key: string | undefined,
    @Res({ passthrough: true }) res: Response,
  ) {
    const a = await this.generation.submit(
      tenant,
      { ...commonParams(req), prompt: { text: req.prompt }, promptParam: 'prompt' },
      key ? { key, route: 'jobs' } : undefined,
    );
    for (const [k, v] of Object.entries(a.headers)) res.setHeader(k, v);
    return {
      id: a.requestId,
      // A replay answers with where the request is now.
      status: a.replayed
        ? (await this.requests.status(tenant.tenantId, a.requestId)).status
        : 'queued',
      prompt_tokens: a.promptTokens,
      max_tokens: a.maxTokens,
    };
  }

  @Get(':id')
  @Auth.apiKey('generate')
  @ApiDoc({
    summary: 'Status and result of a job, with its decoding choice and statistics',
    response: jobStatusSchema,
    errors: [404],
  })
  status(@CurrentTenant() tenant: TenantPrincipal, @Param('id', ParseUUIDPipe) id: string) {
    return this.requests.status(tenant.tenantId, id);
  }

  @Post(':id/cancel')
  @HttpCode(200)
  @Auth.apiKey('generate')
  @ApiDoc({ summary: 'Cancel a job', errors: [404] })
  cancel(@CurrentTenant() tenant: TenantPrincipal, @Param('id', ParseUUIDPipe) id: string) {
    return this.requests.cancel(tenant.tenantId, id);
  }

  @Delete(':id')
  @HttpCode(200)
  @Auth.apiKey('generate')
  @ApiDoc({ summary: 'Cancel a job', errors: [404] })
  remove(@CurrentTenant() tenant: TenantPrincipal, @Param('id', ParseUUIDPipe) id: string) {
    return this.requests.cancel(tenant.tenantId, id);
  }
}
