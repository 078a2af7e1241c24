// One outgoing frame link to a peer stage on a plain TCP socket (socket/records.ts): the
// socket counterpart of grpc/grpc-link.ts's GrpcLink, with the same contract. Connected on
// first write (writes before the connection is up wait in the socket), re-connected on the
// next write after it broke (a restarted peer), so a sender never holds a dead link. A break
// is reported once per connection: the owner decides what it means (the head fails the
// requests in flight). Keepalive probes find silent partitions; the registry's TTL is the
// backstop, as with gRPC.
import net from 'node:net';
import type { FrameMethod } from '../wire/frame-receiver.js';
import { ReopeningLink, type PeerLinkEvents, type RefusedAck } from '../wire/link.js';
import { hostPort, RecordReader, writeRecord } from './records.js';

const KEEPALIVE_MS = 10_000;

export class SocketLink extends ReopeningLink<net.Socket> {
  constructor(
    private readonly address: string,
    private readonly method: FrameMethod,
    private readonly events: PeerLinkEvents,
  ) {
    super();
  }

  protected open(): net.Socket {
    const { host, port } = hostPort(this.address);
    const socket = net.connect(port, host);
    socket.setNoDelay(true);
    socket.setKeepAlive(true, KEEPALIVE_MS);
    writeRecord(socket, Buffer.from(this.method, 'latin1'));
    let reported = false;
    const broke = (error: Error): void => {
      this.gone(socket);
      if (this.closed || reported) return;
      reported = true;
      this.events.broken(error);
    };
    const reader = new RecordReader((frame) => {
      const ack = JSON.parse(frame.toString('utf8')) as RefusedAck;
      if (ack.error) this.events.refused(ack);
    });
    socket.on('data', (chunk: Buffer) => {
      try {
        reader.push(chunk);
      } catch (error) {
        socket.destroy(error as Error);
      }
    });
    socket.on('error', broke);
    socket.on('close', () => broke(new Error(`the connection to ${this.address} closed`)));
    return socket;
  }

  protected send(socket: net.Socket, frame: Buffer): void {
    writeRecord(socket, frame);
  }

  protected end(socket: net.Socket): void {
    socket.end();
  }
}
