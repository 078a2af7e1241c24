// What a stage does with the messages its gRPC server receives. The gRPC controller only
// parses and delegates; the stage runtime (every stage) and the head's pipeline implement it.
import type { DecisionRecord, PacketEnvelope, VerdictEnvelope } from '@pipedec/contracts';

export abstract class StageInbox {
  abstract packet(env: PacketEnvelope): void;
  abstract decision(d: DecisionRecord): void;
  abstract verdict(env: VerdictEnvelope): void;
  /** The head's decision stream ended: the head is gone or restarting. */
  abstract decisionsClosed(): void;
}
