// The Stage service of stage.proto on Nest's gRPC transport. Each rpc is a long-lived bidi
// stream from one peer; messages are parsed into records and handed to the StageInbox in
// arrival order. A message that fails to parse or apply is answered with an Ack naming it; the
// stream stays open.
import type { ServerDuplexStream } from '@grpc/grpc-js';
import { Controller, Inject, Logger } from '@nestjs/common';
import { GrpcStreamCall } from '@nestjs/microservices';
import {
  STAGE_SERVICE,
  decisionFromWire,
  packetFromWire,
  packetToWire,
  verdictFromWire,
} from '@pipedec/contracts';
import { StageInbox } from './stage-inbox.js';

interface WireAck {
  requestId: string;
  seq: number;
  error: string;
}

@Controller()
export class StageGrpcController {
  private readonly log = new Logger('StageGrpc');

  constructor(@Inject(StageInbox) private readonly inbox: StageInbox) {}

  @GrpcStreamCall(STAGE_SERVICE, 'Packets')
  packets(call: ServerDuplexStream<unknown, WireAck>): Promise<void> {
    return this.consume(call, 'Packets', (m) => {
      const t = performance.now();
      const env = packetFromWire(m);
      env.trace.codecMs += performance.now() - t;
      this.inbox.packet(env);
    });
  }

  @GrpcStreamCall(STAGE_SERVICE, 'Verdicts')
  verdicts(call: ServerDuplexStream<unknown, WireAck>): Promise<void> {
    return this.consume(call, 'Verdicts', (m) => this.inbox.verdict(verdictFromWire(m)));
  }

  @GrpcStreamCall(STAGE_SERVICE, 'Decisions')
  decisions(call: ServerDuplexStream<unknown, WireAck>): Promise<void> {
    return this.consume(call, 'Decisions', (m) => this.inbox.decision(decisionFromWire(m))).then(
      () => this.inbox.decisionsClosed(),
    );
  }

  /** Decodes and re-encodes each packet, as a stage would, and sends it back. */
  @GrpcStreamCall(STAGE_SERVICE, 'Echo')
  echo(call: ServerDuplexStream<unknown, unknown>): Promise<void> {
    return this.consume(call, 'Echo', (m) => {
      const env = packetFromWire(m);
      const dtype = (m as { hidden?: { dtype?: string } | null }).hidden?.dtype;
      call.write(packetToWire(env, dtype === 'FP16' ? 'FP16' : 'FP32'));
    });
  }

  @GrpcStreamCall(STAGE_SERVICE, 'Ping')
  ping(call: ServerDuplexStream<unknown, unknown>): Promise<void> {
    return this.consume(call, 'Ping', (m) => call.write(m));
  }

  private consume(
    call: ServerDuplexStream<unknown, WireAck> | ServerDuplexStream<unknown, unknown>,
    method: string,
    handle: (message: unknown) => void,
  ): Promise<void> {
    return new Promise<void>((resolve) => {
      call.on('data', (message: unknown) => {
        try {
          handle(message);
        } catch (error) {
          const m = message as { requestId?: unknown; seq?: unknown };
          const text = error instanceof Error ? error.message : String(error);
          this.log.warn(`${method}: refused a message: ${text}`);
          call.write({
            requestId: typeof m.requestId === 'string' ? m.requestId : '',
            seq: typeof m.seq === 'number' ? m.seq : 0,
            error: text,
          });
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
