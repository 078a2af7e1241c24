// A frame link (wire/link.ts) on a bidi stream of the Stage service: the FRAME_TRANSPORT=grpc
// path, and how a peer is reached that advertises no frame socket.
import type { ClientDuplexStream } from '@grpc/grpc-js';
import { ReopeningLink, type PeerLinkEvents, type RefusedAck } from '../wire/link.js';
import type { StageClient, StageMethod } from './grpc-options.js';

/** A link on a bidi stream of the Stage service (grpc-js buffers past the flow-control window). */
export class GrpcLink extends ReopeningLink<ClientDuplexStream<Buffer, unknown>> {
  constructor(
    private readonly client: StageClient,
    private readonly method: StageMethod,
    private readonly events: PeerLinkEvents,
  ) {
    super();
  }

  protected open(): ClientDuplexStream<Buffer, unknown> {
    const call = this.client[this.method]();
    call.on('data', (ack: RefusedAck) => {
      if (ack.error) this.events.refused(ack);
    });
    call.on('error', (error: Error) => {
      this.gone(call);
      if (!this.closed) this.events.broken(error);
    });
    call.on('end', () => this.gone(call));
    return call;
  }

  protected send(call: ClientDuplexStream<Buffer, unknown>, message: Buffer): void {
    call.write(message);
  }

  protected end(call: ClientDuplexStream<Buffer, unknown>): void {
    call.end();
  }
}
