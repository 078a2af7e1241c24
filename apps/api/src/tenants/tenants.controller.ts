import { Controller, Get, Param, ParseUUIDPipe, Patch, Post } from '@nestjs/common';
import {
  auditPageSchema,
  auditQuerySchema,
  createPlanSchema,
  displayName,
  createTenantSchema,
  listOf,
  planViewSchema,
  tenantViewSchema,
  updatePlanSchema,
  updateTenantSchema,
  type AuditQuery,
  type CreatePlan,
  type CreateTenant,
  type UpdatePlan,
  type UpdateTenant,
} from '@pipedec/contracts';
import { AuditService } from '../audit/audit.service.js';
import { Auth } from '../auth/auth-policy.js';
import { actorOf, CurrentAdmin, type AdminPrincipal } from '../auth/principal.js';
import { ValidBody, ValidParam, ValidQuery } from '../common/route-inputs.js';
import { ApiDoc } from '../openapi/route-doc.js';
import { TenantsService } from './tenants.service.js';

/** The plan named in the path: checked like a body's name, so a NUL cannot reach SQL. */
const planName = displayName('plan name');

@Controller('admin')
export class TenantsController {
  constructor(
    private readonly tenants: TenantsService,
    private readonly audit: AuditService,
  ) {}

  @Get('plans')
  @Auth.admin('viewer')
  @ApiDoc({ summary: 'Plans with limits and prices', response: listOf(planViewSchema) })
  async plans() {
    return { data: await this.tenants.plans() };
  }

  @Post('plans')
  @Auth.admin('admin')
  @ApiDoc({ summary: 'Create a plan (limits, prices, priority)', errors: [409] })
  createPlan(@ValidBody(createPlanSchema) body: CreatePlan, @CurrentAdmin() admin: AdminPrincipal) {
    return this.tenants.createPlan(body, actorOf(admin));
  }

  @Patch('plans/:name')
  @Auth.admin('admin')
  @ApiDoc({ summary: "Change a plan's limits, prices or priority", errors: [404] })
  updatePlan(
    @ValidParam('name', planName) plan: string,
    @ValidBody(updatePlanSchema) body: UpdatePlan,
    @CurrentAdmin() admin: AdminPrincipal,
  ) {
    return this.tenants.updatePlan(plan, body, actorOf(admin));
  }

  @Get('tenants')
  @Auth.admin('viewer')
  @ApiDoc({ summary: 'Tenants with effective limits', response: listOf(tenantViewSchema) })
  async list() {
    return { data: await this.tenants.list() };
  }

  @Get('tenants/:tenantId')
  @Auth.admin('viewer')
  @ApiDoc({ summary: 'One tenant', response: tenantViewSchema, errors: [404] })
  get(@Param('tenantId', ParseUUIDPipe) tenantId: string) {
    return this.tenants.get(tenantId);
  }

  @Post('tenants')
  @Auth.admin('admin')
  @ApiDoc({ summary: 'Create a tenant', errors: [404, 409] })
  create(@ValidBody(createTenantSchema) body: CreateTenant, @CurrentAdmin() admin: AdminPrincipal) {
    return this.tenants.create(body, actorOf(admin));
  }

  @Patch('tenants/:tenantId')
  @Auth.admin('admin')
  @ApiDoc({
    summary: 'Change plan, status or limit overrides',
    description:
      'With expectedUpdatedAt (the updatedAt the editor loaded), a tenant changed since is a 409 saying what changed, instead of a silent overwrite.',
    errors: [404, 409],
  })
  update(
    @Param('tenantId', ParseUUIDPipe) tenantId: string,
    @ValidBody(updateTenantSchema) body: UpdateTenant,
    @CurrentAdmin() admin: AdminPrincipal,
  ) {
    return this.tenants.update(tenantId, body, actorOf(admin));
  }

  @Get('audit')
  @Auth.admin('viewer')
  @ApiDoc({
    summary: 'Audit log, newest first; filter by tenant, actor, action and time, paged by id',
    response: auditPageSchema,
  })
  async auditLog(@ValidQuery(auditQuerySchema) query: AuditQuery) {
    return this.audit.list(query);
  }
}
