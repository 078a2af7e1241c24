// The head's KV admission gate (#16): a job starts only when its worst-case KV memory fits on
// every stage beside the jobs already running; otherwise it waits here, in the order the queue
// gave it, until running jobs end. A stage's memory is never overcommitted, so no request
// fails with KV_LIMIT because of its neighbours, and none crashes a stage.
//
// Waiting here keeps the job active in BullMQ (its lock renewed, counted against
// QUEUE_CONCURRENCY); the jobs behind it stay in the queue and the fair scheduler, in their
// tenant-fair order. Admission is first come, first served: a large job at the front holds
// back smaller ones behind it instead of being overtaken forever. When the head stops taking
// jobs (SIGTERM, or its pipeline is no longer whole) the waiting jobs go back to the queue,
// untouched, for another pipeline (withdrawAll).
//
// Accounting is in KV slots (contracts kv-budget.ts): a job of r worst-case rows holds
// kvSlotsFor(r) slots on every stage, and a stage holds floor(limit / bytes per row) slots.
import { kvSlotsFor, type StageKv } from '@pipedec/contracts';

/** Ends a job's hold on the KV budget (idempotent). */
export type KvLease = () => void;

interface Waiter {
  slots: number;
  admit: () => void;
  withdraw: () => void;
}

export class KvGate {
  private heldSlots = 0;
  private readonly waiting: Waiter[] = [];

  /** `stages`: the pipeline's stages as announced now (their budgets may change). */
  constructor(private readonly stages: () => readonly StageKv[]) {}

  /** Slots the smallest stage budget holds (Infinity: every stage unbounded). */
  capacitySlots(): number {
    let most = Number.POSITIVE_INFINITY;
    for (const s of this.stages()) {
      if (s.limitBytes !== null) most = Math.min(most, Math.floor(s.limitBytes / s.bytesPerRow));
    }
    return most;
  }

  /** Whether a job of `rows` worst-case rows could ever start (alone on the pipeline). */
  canEverFit(rows: number): boolean {
    return kvSlotsFor(rows) <= this.capacitySlots();
  }

  /** Jobs waiting for room, and the slots held by those running (for logs and tests). */
  get state(): { waiting: number; heldSlots: number } {
    return { waiting: this.waiting.length, heldSlots: this.heldSlots };
  }

  /**
   * Waits until a job of `rows` worst-case rows fits, and holds its slots until the lease is
   * ended. Aborted while waiting: resolves at once with a lease that holds nothing (the job
   * then ends as cancelled without running). A job that can never fit waits for a budget
   * that grows; callers check canEverFit first. Null: withdrawn while waiting (withdrawAll).
   */
  acquire(rows: number, signal: AbortSignal): Promise<KvLease | null> {
    const slots = kvSlotsFor(rows);
    if (signal.aborted) return Promise.resolve(() => undefined);
    if (this.waiting.length === 0 && this.fits(slots)) return Promise.resolve(this.hold(slots));
    return new Promise<KvLease | null>((resolve) => {
      const waiter: Waiter = {
        slots,
        admit: () => {
          signal.removeEventListener('abort', onAbort);
          resolve(this.hold(slots));
        },
        withdraw: () => {
          signal.removeEventListener('abort', onAbort);
          resolve(null);
        },
      };
      const onAbort = () => {
        const i = this.waiting.indexOf(waiter);
        if (i >= 0) this.waiting.splice(i, 1);
        resolve(() => undefined);
        this.pump(); // the job at the front may have held back smaller ones
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.waiting.push(waiter);
    });
  }

  /**
   * Ends every wait with null: the head stopped taking jobs (draining, or its pipeline broke),
   * and a job that has not started goes back to the queue for another pipeline.
   */
  withdrawAll(): void {
    for (const w of this.waiting.splice(0)) w.withdraw();
  }

  /** Admits waiting jobs from the front while they fit (after a release or a budget change). */
  pump(): void {
    while (this.waiting.length > 0 && this.fits(this.waiting[0].slots)) {
      this.waiting.shift()!.admit();
    }
  }

  private fits(slots: number): boolean {
    // Alone on the pipeline a job always starts: one too large for the budget was refused
    // before (canEverFit), or the budget shrank under it and the stage's own limit decides.
    return this.heldSlots === 0 || this.heldSlots + slots <= this.capacitySlots();
  }

  private hold(slots: number): KvLease {
    this.heldSlots += slots;
    let held = true;
    return () => {
      if (!held) return;
      held = false;
      this.heldSlots -= slots;
      this.pump();
    };
  }
}
