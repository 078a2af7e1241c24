// What a stage does with the frames its links receive. The transports (grpc/ and socket/)
// only hand frames to the FrameReceiver, which decodes them and delegates here; the stage
// runtime (every stage) and the head's pipeline implement it.
import type { Decision } from '@pipedec/engine';
import type { PacketEnvelope, VerdictEnvelope } from './frame.js';

export abstract class StageInbox {
  abstract packet(env: PacketEnvelope): void;
  abstract decision(d: Decision): void;
  abstract verdict(env: VerdictEnvelope): void;
  /** The head's decision stream ended: the head is gone or restarting. */
  abstract decisionsClosed(): void;
  /**
   * A frame naming this request was refused here (malformed, truncated): the request can't go
   * on, so it fails (at the head at once; elsewhere by a failure report to the head).
   */
  abstract refused(requestId: string, seq: number, error: string): void;
}
