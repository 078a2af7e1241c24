// The peers of this stage, found in the registry: one dialled channel per stage address, with
// the links opened to it (gRPC streams, or sockets where the peer has a frame socket). When a
// stage comes back at another address (or as another process), its channel and links are
// replaced.
import type { StageRegistration } from '@pipedec/contracts';
import { dialStage, type StageClient, type StageMethod } from '../grpc/grpc-options.js';
import { GrpcLink } from '../grpc/grpc-link.js';
import { SocketLink } from '../socket/socket-link.js';
import { FRAME_METHODS, type FrameMethod } from '../wire/frame-receiver.js';
import type { PeerLink, PeerLinkEvents } from '../wire/link.js';

/**
 * A dialled peer: one gRPC channel, and the links opened to it. A peer that advertises a frame
 * socket (FRAME_TRANSPORT=tcp, its registry entry's framesAddress) gets its Packets, Verdicts
 * and Decisions on sockets; otherwise every link is a stream of the Stage service.
 */
export class Peer {
  readonly client: StageClient;
  private readonly links: PeerLink[] = [];

  /** `framesAddress`: the peer's frame socket, when it has one. */
  constructor(
    readonly address: string,
    readonly framesAddress?: string,
  ) {
    this.client = dialStage(address);
  }

  link(method: StageMethod, events: PeerLinkEvents): PeerLink {
    const l =
      this.framesAddress && (FRAME_METHODS as readonly string[]).includes(method)
        ? new SocketLink(this.framesAddress, method as FrameMethod, events)
        : new GrpcLink(this.client, method, events);
    this.links.push(l);
    return l;
  }

  close(): void {
    for (const l of this.links) l.close();
    this.client.close();
  }
}

interface Known {
  entry: StageRegistration;
  peer: Peer;
  links: Map<StageMethod, PeerLink>;
}

export class PeerDirectory {
  private readonly known = new Map<number, Known>();

  constructor(private readonly events: (stage: number, address: string) => PeerLinkEvents) {}

  /** Takes the registry's current view; replaces peers whose process changed. */
  update(entries: readonly (StageRegistration | undefined)[]): void {
    entries.forEach((e, stage) => {
      if (!e) return;
      const k = this.known.get(stage);
      if (
        k &&
        k.entry.address === e.address &&
        k.entry.framesAddress === e.framesAddress &&
        k.entry.instanceId === e.instanceId
      ) {
        k.entry = e;
        return;
      }
      k?.peer.close();
      this.known.set(stage, {
        entry: e,
        peer: new Peer(e.address, e.framesAddress),
        links: new Map(),
      });
    });
  }

  entry(stage: number): StageRegistration | undefined {
    return this.known.get(stage)?.entry;
  }

  /** The stream of `method` to `stage`, opened on first use; undefined while it is unknown. */
  link(stage: number, method: StageMethod): PeerLink | undefined {
    const k = this.known.get(stage);
    if (!k) return undefined;
    let l = k.links.get(method);
    if (!l) {
      l = k.peer.link(method, this.events(stage, k.entry.address));
      k.links.set(method, l);
    }
    return l;
  }

  close(): void {
    for (const k of this.known.values()) k.peer.close();
    this.known.clear();
  }
}
