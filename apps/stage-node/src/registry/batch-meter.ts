// How this stage batched lately, reported in each heartbeat: the compute calls, the requests
// (packets) and rows they took, and on the head the tokens it committed, as differences of
// plain counters over about the last span (UTILISATION_SPAN_MS, utilisation's). The hot path
// only bumps those counters; here each heartbeat keeps one reading of them and answers against
// the newest reading at least a span old, so a reader sampling the registry at its own pace
// sees a window of the same length as utilisation's, whenever it reads.
import type { StageBatch } from '@pipedec/contracts';
import { UTILISATION_SPAN_MS } from './compute-meter.js';

/** Counters since the process started (tokens: the head only; null elsewhere). */
export interface BatchCounters {
  calls: number;
  requests: number;
  rows: number;
  tokens: number | null;
}

interface Reading {
  at: number;
  counters: BatchCounters;
}

export class BatchMeter {
  /** Readings taken by sample(), oldest first; the first is the baseline. */
  private readonly readings: Reading[] = [];

  constructor(
    private readonly counters: () => BatchCounters,
    /** Requests the head runs now (null: not the head). */
    private readonly inFlight: () => number | null,
    private readonly now: () => number = () => performance.now(),
    private readonly spanMs = UTILISATION_SPAN_MS,
  ) {}

  /** The differences since the newest reading at least a span old (the first, while younger). */
  sample(): StageBatch {
    const at = this.now();
    const c = { ...this.counters() };
    this.readings.push({ at, counters: c });
    while (this.readings.length > 1 && this.readings[1].at <= at - this.spanMs) {
      this.readings.shift();
    }
    const base = this.readings[0];
    const b = base.counters;
    return {
      spanMs: at - base.at,
      calls: c.calls - b.calls,
      requests: c.requests - b.requests,
      rows: c.rows - b.rows,
      inFlight: this.inFlight(),
      tokens: c.tokens === null ? null : c.tokens - (b.tokens ?? 0),
    };
  }
}
