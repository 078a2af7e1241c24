import { Body, Controller, Get, Param, ParseUUIDPipe, Post } from '@nestjs/common';
import { createApiKeySchema, rotateApiKeySchema } from '@pipedec/contracts';
import { Auth } from '../auth/auth-policy.js';
import { actorOf, CurrentAdmin, type AdminPrincipal } from '../auth/principal.js';
import { parseBody } from '../common/parse-body.js';
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
  async list(@Param('tenantId', ParseUUIDPipe) tenantId: string) {
    await this.tenants.get(tenantId);
    return { data: await this.keys.list(tenantId) };
  }

  @Post()
  @Auth.admin('admin')
  async create(
    @Param('tenantId', ParseUUIDPipe) tenantId: string,
    @Body() body: unknown,
    @CurrentAdmin() admin: AdminPrincipal,
  ) {
    await this.tenants.get(tenantId);
    return this.keys.create(tenantId, parseBody(createApiKeySchema, body), actorOf(admin));
  }

  @Post(':keyId/revoke')
  @Auth.admin('admin')
  revoke(
    @Param('tenantId', ParseUUIDPipe) tenantId: string,
    @Param('keyId', ParseUUIDPipe) keyId: string,
    @CurrentAdmin() admin: AdminPrincipal,
  ) {
    return this.keys.revoke(tenantId, keyId, actorOf(admin));
  }

  @Post(':keyId/rotate')
  @Auth.admin('admin')
  rotate(
    @Param('tenantId', ParseUUIDPipe) tenantId: string,
    @Param('keyId', ParseUUIDPipe) keyId: string,
    @Body() body: unknown,
    @CurrentAdmin() admin: AdminPrincipal,
  ) {
    const { gracePeriodSeconds } = parseBody(rotateApiKeySchema, body);
    return this.keys.rotate(tenantId, keyId, gracePeriodSeconds, actorOf(admin));
  }
}
