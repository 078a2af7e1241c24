// KV memory budget arithmetic (#16): how many KV rows a request may hold on a stage, and
// whether it fits beside the requests already running. Shared by the head, which admits a job
// only when its worst case fits on every stage (else the job waits), and by the API, which
// refuses a request that could never fit with a 400 naming the field.
//
// A stage's KV memory is a byte budget shared by all its sequences (libs/model kv-cache.ts
// KvBudget, MAX_KV_BYTES); it announces the budget and its bytes per row (2 x layers held x
// kvHeads x headDim x 4) in its registry entry. A request's worst case on a stage:
//
//   rows  = min(prompt + max_tokens, context window) + tree rows
//   slots = kvSlotsFor(rows)         (the cache grows in steps: its buffers may exceed rows)
//   bytes = slots x bytes per row    (held until the request ends)
//
// Worked example (demo model, 4 stages of 4 layers, 2 kv heads of 32): 2 x 4 x 2 x 32 x 4 =
// 2,048 bytes a row. A 100-token prompt, max_tokens 200, PipeDec width 2 on 4 stages with
// tree depth 4: rows 300 + 2 x 9 + 9 = 327, slots 327 + 82 = 409, 818 KiB on each stage.

/** What a stage announces about its KV memory (registry entry `kv`). */
export interface StageKv {
  /** The stage's KV byte budget; null = unbounded. */
  limitBytes: number | null;
  /** Bytes one KV row takes across the layers the stage holds. */
  bytesPerRow: number;
  /** The model's context window (max_position_embeddings). */
  maxPositions: number;
  /** STPP's static tree depth on this pipeline (STPP_DEPTH), for kvTreeRows. */
  treeDepth: number;
}

// Mirrors SequenceKv.reserve (libs/model kv-cache.ts): the first buffer holds 16 rows, each
// growth adds a quarter (at least 64 rows) or exactly what is needed. A kv-gate spec checks
// a real shard against this bound.
const MIN_SLOTS = 16;
const GROWTH_STEP = 64;

/**
 * The most KV slots a sequence that never holds more than `rows` rows may have allocated:
 * its last growth started below `rows` and added at most a quarter (at least 64).
 */
export function kvSlotsFor(rows: number): number {
  if (rows <= 0) return 0;
  return Math.max(MIN_SLOTS, rows + Math.max(GROWTH_STEP, Math.ceil(rows / 4)));
}

/**
 * Rows a request's speculation may hold on a stage beside its committed ones, a bound with
 * slack: PipeDec keeps at most `width` nodes in each of up to stageCount + 1 tree layers in
 * flight; STPP's static tree is width x depth nodes plus up to depth + 1 committed tokens not
 * yet computed; PP holds up to stageCount tokens in flight. One formula covers all three.
 */
export function kvTreeRows(width: number, stageCount: number, treeDepth: number): number {
  const w = Math.max(1, width);
  return w * (stageCount + treeDepth + 1) + stageCount + treeDepth + 1;
}

/** A request's worst-case rows: its whole context (capped by the window) and its tree. */
export function kvRowsFor(
  promptTokens: number,
  maxTokens: number,
  maxPositions: number,
  treeRows: number,
): number {
  return Math.min(promptTokens + maxTokens, maxPositions) + treeRows;
}

/** Bytes a request of `rows` worst-case rows may hold on a stage. */
export function kvBytesFor(rows: number, stage: StageKv): number {
  return kvSlotsFor(rows) * stage.bytesPerRow;
}

/** The most rows one request may hold on every one of these stages (Infinity: unbounded). */
export function kvRowsCapacity(stages: readonly StageKv[]): number {
  let most = Number.POSITIVE_INFINITY;
  for (const s of stages) {
    if (s.limitBytes === null || s.bytesPerRow <= 0) continue;
    most = Math.min(most, largestRows(s.limitBytes / s.bytesPerRow));
  }
  return most;
}

/** The largest rows r with kvSlotsFor(r) <= slots (kvSlotsFor never decreases). */
function largestRows(slots: number): number {
  let lo = 0;
  let hi = Math.max(0, Math.floor(slots));
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (kvSlotsFor(mid) <= slots) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/**
 * Why a request could never fit in a pipeline whose stages allow `capacityRows` rows each (see
 * kvRowsCapacity), or null when it fits. `treeRows` is the smallest tree it may run with
 * (width 1): the head narrows a wider tree to fit. The field at fault is the prompt when it
 * alone does not fit, else max_tokens.
 */
export function kvRefusal(
  promptTokens: number,
  maxTokens: number,
  maxPositions: number,
  treeRows: number,
  capacityRows: number,
): { field: 'prompt' | 'max_tokens'; message: string } | null {
  const rows = kvRowsFor(promptTokens, maxTokens, maxPositions, treeRows);
  if (rows <= capacityRows) return null;
  const room = capacityRows - treeRows - promptTokens;
  if (room < 1) {
    return {
      field: 'prompt',
      message: `The prompt has ${promptTokens} tokens; a stage's KV memory holds at most ${Math.max(0, capacityRows - treeRows - 1)} prompt tokens and 1 output token`,
    };
  }
  return {
    field: 'max_tokens',
    message: `max_tokens is ${maxTokens}; with a ${promptTokens}-token prompt a stage's KV memory holds at most ${room} output tokens`,
  };
}

/** A request's bytes on each stage (null where the stage is unbounded). */
export function kvNeed(rows: number, stages: readonly StageKv[]): (number | null)[] {
  return stages.map((s) => (s.limitBytes === null ? null : kvBytesFor(rows, s)));
}
