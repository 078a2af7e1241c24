import { Body, Controller, Get, Param, ParseUUIDPipe, Patch, Post, Query } from '@nestjs/common';
import {
  auditQuerySchema,
  createPlanSchema,
  displayName,
  createTenantSchema,
  updatePlanSchema,
  updateTenantSchema,
} from '@pipedec/contracts';
import { z } from 'zod';
import { AuditService } from '../audit/audit.service.js';
import { Auth } from '../auth/auth-policy.js';
import { actorOf, CurrentAdmin, type AdminPrincipal } from '../auth/principal.js';
import { parseBody } from '../common/parse-body.js';
import { TenantsService } from './tenants.service.js';

/** The plan named in the path: checked like a body's name, so a NUL cannot reach SQL. */
const planPathSchema = z.object({ name: displayName('plan name') });

@Controller('admin')
export class TenantsController {
  constructor(
    private readonly tenants: TenantsService,
    private readonly audit: AuditService,
  ) {}

  @Get('plans')
  @Auth.admin('viewer')
  async plans() {
    return { data: await this.tenants.plans() };
  }

  @Post('plans')
  @Auth.admin('admin')
  createPlan(@Body() body: unknown, @CurrentAdmin() admin: AdminPrincipal) {
    return this.tenants.createPlan(parseBody(createPlanSchema, body), actorOf(admin));
  }

  @Patch('plans/:name')
  @Auth.admin('admin')
  updatePlan(
    @Param('name') name: string,
    @Body() body: unknown,
    @CurrentAdmin() admin: AdminPrincipal,
  ) {
    const plan = parseBody(planPathSchema, { name }).name;
    return this.tenants.updatePlan(plan, parseBody(updatePlanSchema, body), actorOf(admin));
  }

  @Get('tenants')
  @Auth.admin('viewer')
  async list() {
    return { data: await this.tenants.list() };
  }

  @Get('tenants/:tenantId')
  @Auth.admin('viewer')
  get(@Param('tenantId', ParseUUIDPipe) tenantId: string) {
    return this.tenants.get(tenantId);
  }

  @Post('tenants')
  @Auth.admin('admin')
  create(@Body() body: unknown, @CurrentAdmin() admin: AdminPrincipal) {
    return this.tenants.create(parseBody(createTenantSchema, body), actorOf(admin));
  }

  @Patch('tenants/:tenantId')
  @Auth.admin('admin')
  update(
    @Param('tenantId', ParseUUIDPipe) tenantId: string,
    @Body() body: unknown,
    @CurrentAdmin() admin: AdminPrincipal,
  ) {
    return this.tenants.update(tenantId, parseBody(updateTenantSchema, body), actorOf(admin));
  }

  @Get('audit')
  @Auth.admin('viewer')
  async auditLog(@Query() query: unknown) {
    return this.audit.list(parseBody(auditQuerySchema, query));
  }
}
