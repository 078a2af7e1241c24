import { Controller, HttpCode, Param, ParseUUIDPipe, Post, Res } from '@nestjs/common';
import { completionRequestSchema, type CompletionRequest } from '@pipedec/contracts';
import type { Response } from 'express';
import { ApiKeysService } from '../api-keys/api-keys.service.js';
import { AuditService } from '../audit/audit.service.js';
import { Auth } from '../auth/auth-policy.js';
import { actorOf, CurrentAdmin, type AdminPrincipal } from '../auth/principal.js';
import { ValidBody } from '../common/route-inputs.js';
import { ApiDoc } from '../openapi/route-doc.js';
import { GenerationRelay } from './generation-relay.js';
import { commonParams, GenerationService } from './generation.service.js';

/**
 * The dashboard's playground: an admin runs a completion as one of a tenant's keys, without
 * its secret. It counts against that tenant's quotas and bills like any request, and each use
 * is written to the audit log with the admin as actor.
 */
@Controller('admin/tenants/:tenantId/keys/:keyId/completions')
export class AdminPlaygroundController {
  constructor(
    private readonly keys: ApiKeysService,
    private readonly audit: AuditService,
    private readonly generation: GenerationService,
    private readonly relay: GenerationRelay,
  ) {}

  @Post()
  @HttpCode(200)
  @Auth.admin('admin')
  @ApiDoc({
    summary: "Playground: a completion run as a tenant's key (billed to it, audited)",
    produces: ['application/json', 'text/event-stream'],
    errors: [404, 409, 429, 503],
  })
  async complete(
    @Param('tenantId', ParseUUIDPipe) tenantId: string,
    @Param('keyId', ParseUUIDPipe) keyId: string,
    @ValidBody(completionRequestSchema) req: CompletionRequest,
    @CurrentAdmin() admin: AdminPrincipal,
    @Res() res: Response,
  ): Promise<void> {
    const principal = await this.keys.actAs(tenantId, keyId, 'generate');
    const keepRunning = req.keep_running ?? false;
    const admitted = await this.generation.submit(
      principal,
      {
        ...commonParams(req),
        prompt: { text: typeof req.prompt === 'string' ? req.prompt : req.prompt[0] },
        promptParam: 'prompt',
      },
      undefined,
      { cancelWithClient: !keepRunning },
    );
    await this.audit.record({
      actor: actorOf(admin),
      action: 'api_key.use_by_admin',
      targetType: 'generation_request',
      targetId: admitted.requestId,
      tenantId,
      details: { keyId },
    });
    const opts = {
      kind: 'completion' as const,
      model: req.model,
      includeUsage: req.stream_options?.include_usage ?? false,
      keepRunning,
    };
    if (req.stream) await this.relay.stream(principal, admitted, opts, res);
    else await this.relay.whole(principal, admitted, opts, res);
  }
}
