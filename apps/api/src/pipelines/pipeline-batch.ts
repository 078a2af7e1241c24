// A pipeline's batch for the live view, from its stages' registry entries: each stage's
// heartbeat carries counter differences over about the last 5 s (the stage's BatchMeter), so
// the averages here are sums over the stages divided by their calls, never an average of
// averages, and a stage that computed nothing lately weighs nothing. Stale entries describe a
// window that ended long ago and are left out, as their utilisation is.
import { STALE_AFTER_MS, type PipelineBatch, type StageRegistration } from '@pipedec/contracts';

export function pipelineBatch(
  found: readonly (StageRegistration | undefined)[],
  now: number,
): PipelineBatch {
  let calls = 0;
  let requests = 0;
  let rows = 0;
  let head: StageRegistration['batch'];
  for (const r of found) {
    if (!r?.batch || now - r.heartbeatAt > STALE_AFTER_MS) continue;
    calls += r.batch.calls;
    requests += r.batch.requests;
    rows += r.batch.rows;
    if (r.stageIndex === 0) head = r.batch;
  }
  return {
    inFlight: head?.inFlight ?? null,
    requestsPerCall: calls > 0 ? requests / calls : null,
    rowsPerCall: calls > 0 ? rows / calls : null,
    tokensPerSecond:
      head && head.tokens !== null && head.spanMs > 0 ? (head.tokens * 1000) / head.spanMs : null,
  };
}
