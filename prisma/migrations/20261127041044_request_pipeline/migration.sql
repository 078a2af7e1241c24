-- AlterTable
ALTER TABLE "GenerationRequest" ADD COLUMN     "pipelineId" TEXT;

-- CreateIndex
CREATE INDEX "GenerationRequest_pipelineId_finishedAt_idx" ON "GenerationRequest"("pipelineId", "finishedAt");
