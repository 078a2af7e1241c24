// Shapes of the API's admin responses as the dashboard reads them: the API's own contracts
// (@pipedec/contracts), re-exported under the dashboard's names. Every response is parsed, so
// a drifting API shows an error state instead of a broken page.
import {
  apiKeyViewSchema,
  limitsSchema,
  planViewSchema,
  tenantViewSchema,
  type ApiKeyView,
  type Limits,
  type MetricsPoint as ContractMetricsPoint,
  type PlanView,
  type TenantView,
} from '@pipedec/contracts/http';

export {
  adminMeSchema,
  createdApiKeySchema,
  limitsSchema,
  listOf,
  loginResponseSchema,
  metricsPointSchema,
  metricsReportSchema,
  pipelinesSnapshotSchema,
  pipelineViewSchema,
  stageViewSchema,
  usageReportSchema,
  type AdminMe,
  type Limits,
  type MetricsReport,
  type PipelinesSnapshot,
  type PipelineView,
  type PriceSegment,
  type StageView,
  type UsageReport,
} from '@pipedec/contracts/http';

export const tenantSchema = tenantViewSchema;
export type Tenant = TenantView;
export const planSchema = planViewSchema;
export type Plan = PlanView;
export const apiKeySchema = apiKeyViewSchema;
export type ApiKey = ApiKeyView;
export type MetricsPoint = ContractMetricsPoint;

export const LIMIT_FIELDS = Object.keys(limitsSchema.shape) as (keyof Limits)[];
