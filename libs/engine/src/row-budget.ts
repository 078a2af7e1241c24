// How wide a request's speculation may be when several requests share the pipeline (#16).
//
// Speculation spends rows to save timesteps: worth it while the stages have idle capacity,
// wasted work once they are full of other requests' rows. Each stage computes the packets of
// the requests in flight together (one runtime call per timestep), so the head gives the
// requests in flight a shared budget of rows per timestep: a request joining a busy pipeline
// gets an equal share of it, and its tree is that narrow.
//
//   requests in flight (this one included):  1    2    4    8    16
//   width with budget 16, asked for 4:        4    4    4    2    1
//   width with budget 16, asked for 16:      16    8    4    2    1
//
// With one request this is the width asked for (today's PipeDec); with many, each tree
// narrows toward width 1, where PipeDec sends one drafted token per timestep. STPP's per-level
// budget narrows the same way (its tree is width x depth rows per verification). The share is
// taken when a request starts; `auto` picks the method and width for an idle pipeline and this
// narrows it.
//
// Width 1 is not free: PipeDec still drafts every timestep and sends a packet through every
// stage for ~0.7 tokens, where PP sends one packet per token. Once enough requests fill the
// stages, that is 1.5x the stage work per token for nothing. So past `maxInFlight` requests
// (this one included) a request starting does not speculate at all: it decodes as PP, the
// end of the smooth degradation (decodingUnderLoad). vLLM does the same
// (speculative_disable_by_batch_size: new requests stop speculating past a running batch
// size). bench:batching (bench/results/batching.json), aggregate tokens/s of batched PipeDec
// against batched PP:
//
//   clients:               1      2      4      8
//   4 loopback stages    0.93   0.63   0.63   0.55
//   8 stages, 5 ms hops  2.05   1.13   0.93   0.66
//   timestep model, 14   1.98   1.07   0.83   0.75
//
// Speculation under load lost from 4 requests on every pipeline measured and won at 2 on the
// hop-bound ones: the default cut is past 3.
//
// A PipeDec request already running follows the load the same way (layerWidthUnderLoad, the
// head's WIDTH_FOLLOWS_LOAD): each tree layer its share of the budget, and past the cut none
// at all, so it sends each committed token alone as PP does, and its draft skips those tokens
// (it computes them in one call if the tree widens again when the load falls: DraftRunner's
// skip). Narrowing to width 1 was not enough: on 4 loopback stages with 8 clients, the one
// request that had started on an idle pipeline kept a packet a timestep at width 2 while the
// 7 after it decoded as PP, and that one request raised the load's CPU per token from PP's
// 6.6 ms to 8.0 (bench:batching). With no layer past the cut, PipeDec over PP in the same run:
// 0.88x -> 0.98x the tokens/s, 1.16x -> 1.04x the CPU per token (medians of 3 alternated runs,
// bench/results/pipedec-width0-ab); skipping the draft as well took the head's CPU per token,
// over the middle stages', from 1.03x PP's to 1.00x (bench/results/head-cpu-ab).

/** Rows per timestep shared by the requests in flight (ROW_BUDGET on the head). */
export const DEFAULT_ROW_BUDGET = 16;
/** The most requests in flight (the starting one included) that speculate (SPECULATE_MAX_IN_FLIGHT). */
export const DEFAULT_SPECULATE_MAX_IN_FLIGHT = 3;

/**
 * The tree width for a request asking for `width` when `inFlight` requests (itself included)
 * share `rowBudget` rows per timestep: an equal share, at least 1, at most what it asked for.
 */
export function widthUnderLoad(width: number, inFlight: number, rowBudget: number): number {
  if (!(width >= 1) || !(inFlight >= 1) || !(rowBudget >= 1)) {
    throw new RangeError(
      `widthUnderLoad(width ${width}, in flight ${inFlight}, budget ${rowBudget}): each must be >= 1`,
    );
  }
  return Math.max(1, Math.min(width, Math.floor(rowBudget / inFlight)));
}

/**
 * The width of the next tree layer of a running PipeDec request that asked for `width`, with
 * `inFlight` requests in the pipeline (itself included): 0 past `maxInFlight` (no layer: the
 * committed token goes alone, as PP's), else its share of the row budget (widthUnderLoad).
 */
export function layerWidthUnderLoad(
  width: number,
  inFlight: number,
  rowBudget: number,
  maxInFlight: number,
): number {
  // The starting rule's answer, so the two never disagree on the cut or the share.
  const d = decodingUnderLoad('pipedec', width, inFlight, rowBudget, maxInFlight);
  return d.method === 'pp' ? 0 : d.width;
}

export type LoadMethod = 'pp' | 'stpp' | 'pipedec';

/**
 * What a request starting now decodes with when `inFlight` requests (itself included) share
 * the pipeline: PP when more than `maxInFlight` do, else its method at its share of the row
 * budget (widthUnderLoad). PP asked for stays PP at width 1.
 */
export function decodingUnderLoad(
  method: LoadMethod,
  width: number,
  inFlight: number,
  rowBudget: number,
  maxInFlight: number,
): { method: LoadMethod; width: number } {
  if (!(maxInFlight >= 1)) {
    throw new RangeError(`decodingUnderLoad: maxInFlight must be >= 1, got ${maxInFlight}`);
  }
  const share = widthUnderLoad(width, inFlight, rowBudget); // validates the others
  if (method === 'pp' || inFlight > maxInFlight) return { method: 'pp', width: 1 };
  return { method, width: share };
}
