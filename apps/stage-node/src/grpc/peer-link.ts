// One outgoing bidi stream to a peer stage. Opened on first write, re-opened on the next write
// after it broke (a restarted peer), so a sender never holds a dead stream. A break is reported
// once per stream: the owner decides what it means (the head fails the requests in flight).
import type { ClientDuplexStream } from '@grpc/grpc-js';
import { dialStage, type StageClient, type StageMethod } from './grpc-options.js';

export interface RefusedAck {
  requestId: string;
  seq: number;
  error: string;
}

export interface PeerLinkEvents {
  refused(ack: RefusedAck): void;
  broken(error: Error): void;
}

export class PeerLink {
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

/** A dialled peer: one channel, the links opened on it. */
export class Peer {
  readonly client: StageClient;
  private readonly links: PeerLink[] = [];

  constructor(readonly address: string) {
    this.client = dialStage(address);
  }

  link(method: StageMethod, events: PeerLinkEvents): PeerLink {
    const l = new PeerLink(this.client, method, events);
    this.links.push(l);
    return l;
  }

  close(): void {
    for (const l of this.links) l.close();
    this.client.close();
  }
}
