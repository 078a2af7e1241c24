-- A finished request's decoding statistics as its job reported them (contracts'
-- SpeculativeStats: tokens per timestep, hit rate with its counts, the time split), for the
-- job's result and the live view's pooled figures.
ALTER TABLE "GenerationRequest" ADD COLUMN "stats" JSONB;
