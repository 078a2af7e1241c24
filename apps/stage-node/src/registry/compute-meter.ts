// How busy this stage is: the share of the last few seconds (UTILISATION_SPAN_MS) its model's
// forward calls occupied, reported in each heartbeat. A sliding span, not "since the previous
// heartbeat": readers sample the registry at their own pace (the API once a second), and a
// burst of work shorter than a heartbeat must still show in the next snapshot whenever it is
// read. Overlapping calls (the head's draft and its target layers) count once, so the share
// stays within 0..1.
import type { LayerShard } from '@pipedec/model';

/** The span utilisation is measured over. */
export const UTILISATION_SPAN_MS = 5_000;

export class ComputeMeter {
  private inFlight = 0;
  private busySince = 0; // when inFlight last rose from 0
  /** Closed busy intervals [start, end] that may still overlap the span, oldest first. */
  private readonly busy: [number, number][] = [];
  private readonly startedAt: number;

  constructor(
    private readonly now: () => number = () => performance.now(),
    private readonly spanMs = UTILISATION_SPAN_MS,
  ) {
    this.startedAt = now();
  }

  /**
   * Runs `work`, counting its duration as busy time. Returns work's own promise, so callers
   * resume exactly when they would without the meter (no extra microtask in between).
   */
  time<T>(work: () => Promise<T>): Promise<T> {
    if (this.inFlight++ === 0) this.busySince = this.now();
    const end = () => {
      if (--this.inFlight === 0) this.busy.push([this.busySince, this.now()]);
    };
    let p: Promise<T>;
    try {
      p = work();
    } catch (error) {
      end();
      throw error;
    }
    p.then(end, end);
    return p;
  }

  /** The busy share of the last span (of the time since start while younger than a span). */
  sample(): number {
    const now = this.now();
    const from = Math.max(this.startedAt, now - this.spanMs);
    while (this.busy.length > 0 && this.busy[0][1] <= from) this.busy.shift();
    let busy = 0;
    for (const [a, b] of this.busy) busy += b - Math.max(a, from);
    if (this.inFlight > 0) busy += now - Math.max(this.busySince, from);
    const window = now - from;
    return window > 0 ? Math.min(1, Math.max(0, busy / window)) : 0;
  }
}

/**
 * The shard with its forward calls timed by `meter`; everything else passes through.
 * `distributions` false leaves out the shard's runtime distributions (RUNTIME_DISTRIBUTIONS),
 * so its callers compute them in JavaScript.
 */
export function meteredShard(
  shard: LayerShard,
  meter: ComputeMeter,
  distributions = true,
): LayerShard {
  return {
    info: shard.info,
    layerStart: shard.layerStart,
    layerEnd: shard.layerEnd,
    isFirst: shard.isFirst,
    isLast: shard.isLast,
    forward: (seq, batch) => meter.time(() => shard.forward(seq, batch)),
    forwardMany: (items) => meter.time(() => shard.forwardMany(items)),
    // Passed on only where the shard has it: its absence tells callers to compute in JavaScript.
    ...(shard.distributions && distributions
      ? {
          distributions: (logits: Float32Array, scales: Float32Array) =>
            meter.time(() => shard.distributions!(logits, scales)),
        }
      : {}),
    commit: (seq, nodeIds) => shard.commit(seq, nodeIds),
    prune: (seq, keep) => shard.prune(seq, keep),
    truncate: (seq, committedRows) => shard.truncate(seq, committedRows),
    release: (seq) => shard.release(seq),
    memory: () => shard.memory(),
    close: () => shard.close(),
  };
}
