// A simulated clock over real computation. The stages run the real target layers and the draft
// the real draft model, in lockstep timesteps; time is not measured but accounted by a stated
// cost model, so the paper's 14-machine comparison can be reproduced on one CPU.
//
// Cost model, per timestep t:
//   stage s busy:     a + b * n_s                 (n_s = rows stage s computes in t)
//   draft:            serial part   (draft work the packet sent in t depends on: STPP trees)
//                     overlapped part (PipeDec: drafting the next layer while stages compute)
//                     each draft call costs  da + db * rows
//   timestep length:  serial + max(max_s busy_s, overlapped) + h     (h: one network hop;
//                     every packet moves one hop per timestep, the last stage's verdict too)

import type { ModelInfo } from '@pipedec/model';
import { EngineError } from './errors.js';
import type { Decision, LayerPacket, Verdict } from './messages.js';
import {
  addUsage,
  emptyUsage,
  type Pipeline,
  type PipelineEvent,
  type PipelineSession,
  type StageUsage,
} from './pipeline.js';
import type { StageShard, StageWorker } from './stage.js';

export interface CostModel {
  name: string;
  stageFixedMs: number; // a: per stage compute, whatever the rows (weights streamed once)
  stagePerPositionMs: number; // b: per row computed
  hopMs: number; // h: one stage-to-stage (or last-stage-to-head) transfer
  draftFixedMs: number; // da: per draft forward call
  draftPerPositionMs: number; // db: per draft row
}

/**
 * The paper's setting, estimated: Llama-3.1-70B in fp16 over 14 A100-80GB stages (about 5.7
 * layers, 10 GB of weights each: one decode step streams them at ~1.5 TB/s, about 6.5 ms,
 * plus ~0.02 ms per extra row of tree compute), a 0.3 ms hop between nodes, and a
 * Llama-3.2-1B draft on the head's A100 (about 2.5 ms a call, 0.01 ms per row).
 */
export const PAPER_A100_COST: CostModel = {
  name: 'paper: 70B/14 stages on A100, 1B draft',
  stageFixedMs: 6.5,
  stagePerPositionMs: 0.02,
  hopMs: 0.3,
  draftFixedMs: 2.5,
  draftPerPositionMs: 0.01,
};

export function stageCostMs(cost: CostModel, positions: number): number {
  return positions > 0 ? cost.stageFixedMs + cost.stagePerPositionMs * positions : 0;
}

/** What happened in one timestep, enough to price it under any cost model. */
export interface TimestepLoad {
  maxRows: number; // rows of the busiest stage (0: no stage computed)
  serialDraftCalls: number;
  serialDraftRows: number;
  overlapDraftCalls: number;
  overlapDraftRows: number;
}

export function timestepMs(cost: CostModel, load: TimestepLoad): number {
  const draft = (calls: number, rows: number) =>
    cost.draftFixedMs * calls + cost.draftPerPositionMs * rows;
  return (
    draft(load.serialDraftCalls, load.serialDraftRows) +
    Math.max(
      stageCostMs(cost, load.maxRows),
      draft(load.overlapDraftCalls, load.overlapDraftRows),
    ) +
    cost.hopMs
  );
}

function emptyLoad(): TimestepLoad {
  return {
    maxRows: 0,
    serialDraftCalls: 0,
    serialDraftRows: 0,
    overlapDraftCalls: 0,
    overlapDraftRows: 0,
  };
}

/** Lockstep pipeline: one timestep per next() that finds no queued event. */
export class SimulatedPipeline implements Pipeline {
  /** Per timestep of the latest session: reprice it under another cost model with timestepMs. */
  loads: TimestepLoad[] = [];
  private load = emptyLoad();
  private sentThisTick = false;

  constructor(
    readonly workers: StageWorker[],
    readonly cost: CostModel,
  ) {
    if (workers.length === 0) throw new EngineError('BAD_REQUEST', 'a pipeline needs a stage');
  }

  get info(): ModelInfo {
    return this.workers[0].shard.info;
  }

  get stageCount(): number {
    return this.workers.length;
  }

  open(requestId: string): PipelineSession {
    return new SimulatedSession(requestId, this);
  }

  /**
   * Wraps the draft so its calls are charged to the current timestep: serial if the packet of
   * this timestep has not been sent yet (the packet waits for the draft), overlapped if it has.
   */
  meterDraft(draft: StageShard): StageShard {
    const forward: StageShard['forward'] = async (seq, batch) => {
      if (this.sentThisTick) {
        this.load.overlapDraftCalls++;
        this.load.overlapDraftRows += batch.nodeIds.length;
      } else {
        this.load.serialDraftCalls++;
        this.load.serialDraftRows += batch.nodeIds.length;
      }
      return draft.forward(seq, batch);
    };
    return {
      info: draft.info,
      isFirst: draft.isFirst,
      isLast: draft.isLast,
      forward,
      commit: (seq, ids) => draft.commit(seq, ids),
      prune: (seq, keep) => draft.prune(seq, keep),
      release: (seq) => draft.release(seq),
      // The runtime's sampled distributions where the draft has them (else JavaScript's):
      // the same path, so the same proposals, as the real head's.
      ...(draft.distributions
        ? { distributions: (logits, scales) => draft.distributions!(logits, scales) }
        : {}),
    };
  }

  /** @internal the session marks the tick's send and collects the draft charge. */
  markSent(): void {
    this.sentThisTick = true;
  }

  /** @internal the load of the timestep that ends now; starts the next one. */
  takeLoad(): TimestepLoad {
    const l = this.load;
    this.load = emptyLoad();
    this.sentThisTick = false;
    return l;
  }
}

class SimulatedSession implements PipelineSession {
  private readonly slots: (LayerPacket | null)[]; // [stages] packet each stage computes next
  private readonly usages: StageUsage[];
  private readonly events: PipelineEvent[] = [{ kind: 'tick', timestep: 0 }];
  private ticks = 1;
  private clockMs = 0;
  private closed = false;

  constructor(
    readonly requestId: string,
    private readonly sim: SimulatedPipeline,
  ) {
    this.slots = sim.workers.map(() => null);
    this.usages = sim.workers.map(emptyUsage);
    sim.takeLoad();
    sim.loads = [];
  }

  get timestep(): number {
    return this.ticks - 1;
  }

  get simulatedMs(): number {
    return this.clockMs;
  }

  get inFlight(): number {
    return this.slots.filter((p) => p !== null).length;
  }

  usage(): StageUsage[] {
    return this.usages.map((u) => ({ ...u }));
  }

  send(packet: LayerPacket): void {
    if (this.slots[0]) throw new EngineError('PROTOCOL', 'two packets sent in one timestep');
    this.slots[0] = packet;
    this.sim.markSent();
  }

  broadcast(decision: Decision): void {
    for (const w of this.sim.workers) w.receive(decision);
  }

  async next(): Promise<PipelineEvent> {
    if (this.events.length === 0) await this.step();
    return this.events.shift()!;
  }

  close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      this.slots.fill(null);
      for (const w of this.sim.workers) w.release(this.requestId);
    }
    return Promise.resolve();
  }

  /** One timestep: every stage computes the packet it holds; outputs move one hop. */
  private async step(): Promise<void> {
    const { workers, cost } = this.sim;
    const verdicts: Verdict[] = [];
    let maxRows = 0;
    for (let s = workers.length - 1; s >= 0; s--) {
      const packet = this.slots[s];
      if (!packet) continue;
      this.slots[s] = null;
      const r = await workers[s].process(packet);
      addUsage(this.usages[s], r);
      this.usages[s].simulatedMs += stageCostMs(cost, r.positions);
      maxRows = Math.max(maxRows, r.positions);
      if (!r.output) continue;
      if (s + 1 < workers.length) this.slots[s + 1] = r.output as LayerPacket;
      else verdicts.push(r.output as Verdict);
    }
    const load = { ...this.sim.takeLoad(), maxRows };
    this.sim.loads.push(load);
    this.clockMs += timestepMs(cost, load);
    for (const verdict of verdicts) this.events.push({ kind: 'verdict', verdict });
    this.events.push({ kind: 'tick', timestep: this.ticks++ });
  }
}
