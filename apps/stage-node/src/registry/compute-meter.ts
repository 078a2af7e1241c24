// How busy this stage is: the wall time its model's forward calls occupy, reported in each
// heartbeat as a share of the window since the previous one. Overlapping calls (the head's
// draft and its target layers) count once, so the share stays within 0..1.
import type { LayerShard } from '@pipedec/model';

export class ComputeMeter {
  private inFlight = 0;
  private busySince = 0; // when inFlight last rose from 0
  private busyMs = 0; // busy time closed within the current window
  private windowStart: number;

  constructor(private readonly now: () => number = () => performance.now()) {
    this.windowStart = now();
  }

  /**
   * Runs `work`, counting its duration as busy time. Returns work's own promise, so callers
   * resume exactly when they would without the meter (no extra microtask in between).
   */
  time<T>(work: () => Promise<T>): Promise<T> {
    if (this.inFlight++ === 0) this.busySince = this.now();
    const end = () => {
      if (--this.inFlight === 0) this.busyMs += this.now() - this.busySince;
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

  /** The busy share of the window since the previous sample (0..1), and a new window begins. */
  sample(): number {
    const now = this.now();
    let busy = this.busyMs;
    if (this.inFlight > 0) {
      busy += now - this.busySince;
      this.busySince = now; // the rest of this call counts in the next window
    }
    const window = now - this.windowStart;
    this.windowStart = now;
    this.busyMs = 0;
    return window > 0 ? Math.min(1, Math.max(0, busy / window)) : 0;
  }
}

/** The shard with its forward calls timed by `meter`; everything else passes through. */
export function meteredShard(shard: LayerShard, meter: ComputeMeter): LayerShard {
  return {
    info: shard.info,
    layerStart: shard.layerStart,
    layerEnd: shard.layerEnd,
    isFirst: shard.isFirst,
    isLast: shard.isLast,
    forward: (seq, batch) => meter.time(() => shard.forward(seq, batch)),
    commit: (seq, nodeIds) => shard.commit(seq, nodeIds),
    prune: (seq, keep) => shard.prune(seq, keep),
    truncate: (seq, committedRows) => shard.truncate(seq, committedRows),
    release: (seq) => shard.release(seq),
    memory: () => shard.memory(),
    close: () => shard.close(),
  };
}
