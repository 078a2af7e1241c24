import { Controller, Get, Param, ParseUUIDPipe, Post } from '@nestjs/common';
import {
  apiKeyViewSchema,
  createApiKeySchema,
  createdApiKeySchema,
  listOf,
  rotateApiKeySchema,
  type CreateApiKey,
} from '@pipedec/contracts';
import type { z } from 'zod';
import { Auth } from '../auth/auth-policy.js';
import { actorOf, CurrentAdmin, type AdminPrincipal } from '../auth/principal.js';
import { ValidBody } from '../common/route-inputs.js';
import { ApiDoc } from '../openapi/route-doc.js';
import { TenantsService } from '../tenants/tenants.service.js';
import { ApiKeysService } from './api-keys.service.js';

/** Admin management of a tenant's keys. */
@Controller('admin/tenants/:tenantId/keys')
export class ApiKeysController {
  constructor(
    private readonly keys: ApiKeysService,
    private readonly tenants: TenantsService,
  ) {}

  @Get()
  @Auth.admin('viewer')
  @ApiDoc({
    summary: "A tenant's API keys (never secrets)",
    response: listOf(apiKeyViewSchema),
    errors: [404],
  })
  async list(@Param('tenantId', ParseUUIDPipe) tenantId: string) {
    await this.tenants.get(tenantId);
    return { data: await this.keys.list(tenantId) };
  }

  @Post()
  @Auth.admin('admin')
  @ApiDoc({
    summary: 'Create a key; the secret is returned once',
    response: createdApiKeySchema,
    errors: [404],
  })
  async create(
    @Param('tenantId', ParseUUIDPipe) tenantId: string,
    @ValidBody(createApiKeySchema) body: CreateApiKey,
    @CurrentAdmin() admin: AdminPrincipal,
  ) {
    await this.tenants.get(tenantId);
    return this.keys.create(tenantId, body, actorOf(admin));
  }

  @Post(':keyId/revoke')
  @Auth.admin('admin')
  @ApiDoc({ summary: 'Revoke a key at once', errors: [404] })
  revoke(
    @Param('tenantId', ParseUUIDPipe) tenantId: string,
    @Param('keyId', ParseUUIDPipe) keyId: string,
    @CurrentAdmin() admin: AdminPrincipal,
  ) {
    return this.keys.revoke(tenantId, keyId, actorOf(admin));
  }

  @Post(':keyId/rotate')
  @Auth.admin('admin')
  @ApiDoc({
    summary: 'New secret; the old one works for the grace period',
    response: createdApiKeySchema,
    errors: [404, 409],
  })
  rotate(
    @Param('tenantId', ParseUUIDPipe) tenantId: string,
    @Param('keyId', ParseUUIDPipe) keyId: string,
    @ValidBody(rotateApiKeySchema) { gracePeriodSeconds }: z.infer<typeof rotateApiKeySchema>,
    @CurrentAdmin() admin: AdminPrincipal,
  ) {
    return this.keys.rotate(tenantId, keyId, gracePeriodSeconds, actorOf(admin));
  }
}
