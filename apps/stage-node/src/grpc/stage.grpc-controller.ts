// The Stage service of stage.proto on Nest's gRPC transport. Each rpc is a long-lived bidi
// stream from one peer carrying binary frames (wire/frame.ts, raw bytes through the identity
// codec of stage-definition.ts). Packets, Verdicts and Decisions go to the FrameReceiver (the
// same one the socket transport uses, socket/frame-socket-server.ts), which answers a frame it
// refuses with an Ack on the stream; Echo and Ping are measurements (bench:cluster's wire
// table).
import type { ServerDuplexStream } from '@grpc/grpc-js';
import { Controller, Inject } from '@nestjs/common';
import { GrpcStreamCall } from '@nestjs/microservices';
import { STAGE_SERVICE } from '@pipedec/contracts';
import { decodePackets, encodePackets, packetFrameDtype } from '../wire/frame.js';
import { FrameReceiver, type FrameMethod, type WireAck } from '../wire/frame-receiver.js';
import { StageInbox } from '../wire/stage-inbox.js';

type FrameCall = ServerDuplexStream<Buffer, WireAck>;

@Controller()
export class StageGrpcController {
  private readonly receiver: FrameReceiver;

  constructor(@Inject(StageInbox) inbox: StageInbox) {
    this.receiver = new FrameReceiver(inbox);
  }

  @GrpcStreamCall(STAGE_SERVICE, 'Packets')
  packets(call: FrameCall): Promise<void> {
    return this.frames(call, 'Packets');
  }

  @GrpcStreamCall(STAGE_SERVICE, 'Verdicts')
  verdicts(call: FrameCall): Promise<void> {
    return this.frames(call, 'Verdicts');
  }

  @GrpcStreamCall(STAGE_SERVICE, 'Decisions')
  decisions(call: FrameCall): Promise<void> {
    return this.frames(call, 'Decisions');
  }

  /** Decodes and re-encodes each packet frame, as a stage would, and sends it back. */
  @GrpcStreamCall(STAGE_SERVICE, 'Echo')
  echo(call: ServerDuplexStream<Buffer, Buffer>): Promise<void> {
    return this.consume(call, (frame) => {
      try {
        call.write(encodePackets(decodePackets(frame), packetFrameDtype(frame)));
      } catch (error) {
        (call as unknown as FrameCall).write(this.receiver.refuse('Echo', frame, error));
      }
    });
  }

  /** The same bytes back, unread. */
  @GrpcStreamCall(STAGE_SERVICE, 'Ping')
  ping(call: ServerDuplexStream<Buffer, Buffer>): Promise<void> {
    return this.consume(call, (frame) => call.write(frame));
  }

  private frames(call: FrameCall, method: FrameMethod): Promise<void> {
    return this.consume(call, (frame) => {
      const ack = this.receiver.receive(method, frame);
      if (ack) call.write(ack);
    }).then(() => this.receiver.ended(method));
  }

  private consume(
    call: FrameCall | ServerDuplexStream<Buffer, Buffer>,
    handle: (frame: Buffer) => void,
  ): Promise<void> {
    return new Promise<void>((resolve) => {
      call.on('data', handle);
      call.on('end', () => {
        call.end();
        resolve();
      });
      call.on('error', () => resolve());
      call.on('cancelled', () => resolve());
    });
  }
}
