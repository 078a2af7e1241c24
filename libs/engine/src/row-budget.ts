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
// narrows toward width 1, where PipeDec sends one drafted token per timestep: batched PP with
// a free guess. STPP's per-level budget narrows the same way (its tree is width x depth rows
// per verification). The share is taken when a request starts; `auto` picks the method and
// width for an idle pipeline and this narrows it.

/** Rows per timestep shared by the requests in flight (ROW_BUDGET on the head). */
export const DEFAULT_ROW_BUDGET = 16;

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
