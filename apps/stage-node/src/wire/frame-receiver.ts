// What a stage does with a frame that arrived on one of its links, whichever transport carried
// it (the gRPC streams of grpc/stage.grpc-controller.ts or the sockets of socket/): decode it
// into the engine's records (views over the received bytes) and hand its segments to the
// StageInbox in arrival order. A frame that fails to decode or apply is refused: logged with
// what was wrong and answered with an ack naming its request, so that the head fails that
// request; the link and the stage go on.
import { Logger } from '@nestjs/common';
import type { StageInbox } from './stage-inbox.js';
import { FrameError, decodeDecisions, decodePackets, decodeVerdicts } from './frame.js';

/** The links that carry frames into a stage's inbox. */
export type FrameMethod = 'Packets' | 'Verdicts' | 'Decisions';
export const FRAME_METHODS: readonly FrameMethod[] = ['Packets', 'Verdicts', 'Decisions'];

/** The answer to a refused frame (stage.proto's Ack); nothing answers an accepted one. */
export interface WireAck {
  requestId: string;
  seq: number;
  error: string;
}

export class FrameReceiver {
  private readonly log = new Logger('StageFrames');

  constructor(private readonly inbox: StageInbox) {}

  /** Hands the frame to the inbox; returns the ack to send back when it was refused. */
  receive(method: FrameMethod, frame: Buffer): WireAck | null {
    try {
      if (method === 'Packets') {
        const t = performance.now();
        const envs = decodePackets(frame);
        const codec = (performance.now() - t) / envs.length;
        for (const env of envs) {
          env.trace.codecMs += codec;
          this.inbox.packet(env);
        }
      } else if (method === 'Verdicts') {
        for (const env of decodeVerdicts(frame)) this.inbox.verdict(env);
      } else {
        for (const d of decodeDecisions(frame)) this.inbox.decision(d);
      }
      return null;
    } catch (error) {
      return this.refuse(method, frame, error);
    }
  }

  /** The link of `method` from one peer ended (closed, broken or cancelled). */
  ended(method: FrameMethod): void {
    // The head's decision stream ended: the head is gone or restarting.
    if (method === 'Decisions') this.inbox.decisionsClosed();
  }

  /**
   * Logs a refused frame and says what went wrong; a frame of a known request fails that
   * request (method Echo, a measurement, fails none).
   */
  refuse(method: FrameMethod | 'Echo' | 'Ping', frame: Buffer, error: unknown): WireAck {
    const text = error instanceof Error ? error.message : String(error);
    const requestId = error instanceof FrameError ? error.requestId : '';
    const seq = error instanceof FrameError ? error.seq : 0;
    const who = requestId ? ` of request ${requestId}#${seq}` : '';
    this.log.error(`${method}: refused a ${frame.byteLength}-byte frame${who}: ${text}`);
    if (requestId && method !== 'Echo' && method !== 'Ping') {
      this.inbox.refused(requestId, seq, text);
    }
    return { requestId, seq, error: text };
  }
}
