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
