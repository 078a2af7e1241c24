// The Stage service of stage.proto on Nest's gRPC transport. Each rpc is a long-lived bidi
// stream from one peer carrying binary frames (wire/frame.ts, raw bytes through the identity
// codec of stage-definition.ts); each frame is decoded into the engine's records (views over
// the received bytes) and its segments handed to the StageInbox in arrival order. A frame that
// fails to decode or apply is refused: logged with what was wrong and answered with an Ack
// naming its request, so the head fails that request; the stream and the stage go on.
import type { ServerDuplexStream } from '@grpc/grpc-js';
import { Controller, Inject, Logger } from '@nestjs/common';
import { GrpcStreamCall } from '@nestjs/microservices';
import { STAGE_SERVICE } from '@pipedec/contracts';
import {
  FrameError,
  decodeDecisions,
  decodePackets,
  decodeVerdicts,
  encodePackets,
  packetFrameDtype,
} from '../wire/frame.js';
import { StageInbox } from './stage-inbox.js';

interface WireAck {
  requestId: string;
  seq: number;
  error: string;
}

type FrameCall = ServerDuplexStream<Buffer, WireAck>;

@Controller()
export class StageGrpcController {
  private readonly log = new Logger('StageGrpc');

  constructor(@Inject(StageInbox) private readonly inbox: StageInbox) {}

  @GrpcStreamCall(STAGE_SERVICE, 'Packets')
  packets(call: FrameCall): Promise<void> {
    return this.consume(call, 'Packets', (frame) => {
      const t = performance.now();
      const envs = decodePackets(frame);
      const codec = (performance.now() - t) / envs.length;
      for (const env of envs) {
        env.trace.codecMs += codec;
        this.inbox.packet(env);
      }
    });
  }

  @GrpcStreamCall(STAGE_SERVICE, 'Verdicts')
  verdicts(call: FrameCall): Promise<void> {
    return this.consume(call, 'Verdicts', (frame) => {
      for (const env of decodeVerdicts(frame)) this.inbox.verdict(env);
    });
  }

  @GrpcStreamCall(STAGE_SERVICE, 'Decisions')
  decisions(call: FrameCall): Promise<void> {
    return this.consume(call, 'Decisions', (frame) => {
      for (const d of decodeDecisions(frame)) this.inbox.decision(d);
    }).then(() => this.inbox.decisionsClosed());
  }

  /** Decodes and re-encodes each packet frame, as a stage would, and sends it back. */
  @GrpcStreamCall(STAGE_SERVICE, 'Echo')
  echo(call: ServerDuplexStream<Buffer, Buffer>): Promise<void> {
    return this.consume(call, 'Echo', (frame) => {
      call.write(encodePackets(decodePackets(frame), packetFrameDtype(frame)));
    });
  }

  /** The same bytes back, unread. */
  @GrpcStreamCall(STAGE_SERVICE, 'Ping')
  ping(call: ServerDuplexStream<Buffer, Buffer>): Promise<void> {
    return this.consume(call, 'Ping', (frame) => call.write(frame));
  }

  private consume(
    call: FrameCall | ServerDuplexStream<Buffer, Buffer>,
    method: string,
    handle: (frame: Buffer) => void,
  ): Promise<void> {
    return new Promise<void>((resolve) => {
      call.on('data', (frame: Buffer) => {
        try {
          handle(frame);
        } catch (error) {
          const text = error instanceof Error ? error.message : String(error);
          const requestId = error instanceof FrameError ? error.requestId : '';
          const seq = error instanceof FrameError ? error.seq : 0;
          const who = requestId ? ` of request ${requestId}#${seq}` : '';
          this.log.error(`${method}: refused a ${frame.byteLength}-byte frame${who}: ${text}`);
          if (requestId && method !== 'Echo') this.inbox.refused(requestId, seq, text);
          (call as FrameCall).write({ requestId, seq, error: text });
        }
      });
      call.on('end', () => {
        call.end();
        resolve();
      });
      call.on('error', () => resolve());
      call.on('cancelled', () => resolve());
    });
  }
}
