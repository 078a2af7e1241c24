// An outgoing frame link to a peer stage, whatever carries it (grpc/grpc-link.ts's bidi
// stream, socket/socket-link.ts's socket; registry/peer-directory.ts picks per peer). A link is
// opened on first write and re-opened on the next write after it broke (a restarted peer), so
// a sender never holds a dead link. A break is reported once per stream or connection: the
// owner decides what it means (the head fails the requests in flight).
import type { WireAck } from './frame-receiver.js';

/** A peer's answer to a frame it refused (wire/frame-receiver.ts). */
export type RefusedAck = WireAck;

export interface PeerLinkEvents {
  refused(ack: RefusedAck): void;
  broken(error: Error): void;
}

export interface PeerLink {
  /** Queues a frame on the link, in order (buffered past what the peer has taken). */
  write(message: Buffer): void;
  close(): void;
}

/**
 * What both transports' links share: the connection (a stream, a socket) is opened on the
 * first write and again on the first write after it went away; frames queue on it in order;
 * close() ends it and silences its events. A transport says how to open, send and end.
 */
export abstract class ReopeningLink<C> implements PeerLink {
  private current: C | null = null;
  protected closed = false;

  write(message: Buffer): void {
    if (this.closed) return;
    this.send((this.current ??= this.open()), message);
  }

  close(): void {
    this.closed = true;
    const c = this.current;
    this.current = null;
    if (c) this.end(c);
  }

  /** `c` is gone (broken or ended): the next write opens another. */
  protected gone(c: C): void {
    if (this.current === c) this.current = null;
  }

  protected abstract open(): C;
  protected abstract send(c: C, message: Buffer): void;
  protected abstract end(c: C): void;
}
