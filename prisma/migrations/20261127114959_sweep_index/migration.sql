-- CreateIndex
CREATE INDEX "GenerationRequest_accountedAt_queuedAt_id_idx" ON "GenerationRequest"("accountedAt", "queuedAt", "id");
