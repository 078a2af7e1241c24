// A frame link (wire/link.ts) on a bidi stream of the Stage service: the FRAME_TRANSPORT=grpc
// path, and how a peer is reached that advertises no frame socket.
import type { ClientDuplexStream } from '@grpc/grpc-js';
import type { PeerLink, PeerLinkEvents, RefusedAck } from '../wire/link.js';
import type { StageClient, StageMethod } from './grpc-options.js';

/** A link on a bidi stream of the Stage service. */
export class GrpcLink implements PeerLink {
  private call: ClientDuplexStream<Buffer, unknown> | null = null;
  private closed = false;

  constructor(
    private readonly client: StageClient,
    private readonly method: StageMethod,
    private readonly events: PeerLinkEvents,
  ) {}

  /** Queues a frame on the stream (grpc-js buffers past the flow-control window). */
  write(message: Buffer): void {
    if (this.closed) return;
    (this.call ??= this.open()).write(message);
  }

  close(): void {
    this.closed = true;
    const call = this.call;
    this.call = null;
    call?.end();
  }

  private open(): ClientDuplexStream<Buffer, unknown> {
    const call = this.client[this.method]();
    call.on('data', (ack: RefusedAck) => {
      if (ack.error) this.events.refused(ack);
    });
    call.on('error', (error: Error) => {
      if (this.call === call) this.call = null;
      if (!this.closed) this.events.broken(error);
    });
    call.on('end', () => {
      if (this.call === call) this.call = null;
    });
    return call;
  }
}
