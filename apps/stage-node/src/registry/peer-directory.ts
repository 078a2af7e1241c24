// The peers of this stage, found in the registry: one dialled channel per stage address, with
// the stream links opened on it. When a stage comes back at another address (or as another
// process), its channel and links are replaced.
import type { StageRegistration } from '@pipedec/contracts';
import type { StageMethod } from '../grpc/grpc-options.js';
import { Peer, type PeerLink, type PeerLinkEvents } from '../grpc/peer-link.js';

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
      if (k && k.entry.address === e.address && k.entry.instanceId === e.instanceId) {
        k.entry = e;
        return;
      }
      k?.peer.close();
      this.known.set(stage, { entry: e, peer: new Peer(e.address), links: new Map() });
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
