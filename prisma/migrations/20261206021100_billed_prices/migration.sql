-- The prices each request was billed at, so a bill multiplies out after a plan's prices change.
ALTER TABLE "GenerationRequest" ADD COLUMN     "billedInputPer1kMicros" BIGINT NOT NULL DEFAULT 0,
ADD COLUMN     "billedOutputPer1kMicros" BIGINT NOT NULL DEFAULT 0;

-- Requests accounted before this migration did not record their prices: the best record left
-- is their tenant's plan as it is now (right unless the plan's prices changed since).
UPDATE "GenerationRequest" AS r
   SET "billedInputPer1kMicros" = p."priceInputPer1kMicros",
       "billedOutputPer1kMicros" = p."priceOutputPer1kMicros"
  FROM "Tenant" AS t JOIN "Plan" AS p ON p."id" = t."planId"
 WHERE t."id" = r."tenantId" AND r."accountedAt" IS NOT NULL;
