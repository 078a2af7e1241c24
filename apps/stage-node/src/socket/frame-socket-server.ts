// The stage's frame links on plain TCP sockets (FRAME_TRANSPORT=tcp, the default; records.ts
// says why and how frames are delimited), as a Nest custom transport next to the gRPC one:
// app.close() closes it with the rest. A peer opens one connection per link; its first record
// names the link (Packets, Verdicts or Decisions), every later one is a frame for the
// FrameReceiver. A frame the receiver refuses is answered on the same connection with the ack
// as a JSON record (rare: a malformed frame; never per packet). A record header no writer
// makes, or a first record that names no link, closes that connection only, logged.
import net from 'node:net';
import { Logger } from '@nestjs/common';
import { Server, type CustomTransportStrategy } from '@nestjs/microservices';
import { FRAME_METHODS, type FrameMethod, type FrameReceiver } from '../wire/frame-receiver.js';
import { hostPort, RecordReader, writeRecord } from './records.js';

export class FrameSocketServer extends Server implements CustomTransportStrategy {
  private readonly log = new Logger('StageSockets');
  private server: net.Server | null = null;
  private readonly sockets = new Set<net.Socket>();

  /** `listen`: host:port to bind (port 0: one the OS picks; `port` says which, once bound). */
  constructor(
    private readonly listenAt: string,
    private readonly receiver: FrameReceiver,
  ) {
    super();
  }

  /** The bound port (after listen). */
  get port(): number {
    const a = this.server?.address();
    if (!a || typeof a === 'string') throw new Error('frame socket server is not listening');
    return a.port;
  }

  listen(callback: (error?: Error) => void): void {
    const { host, port } = hostPort(this.listenAt);
    const server = net.createServer((socket) => this.accept(socket));
    this.server = server;
    server.once('error', (error) => callback(error));
    server.listen(port, host, () => callback());
  }

  close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    const server = this.server;
    this.server = null;
    return new Promise((resolve) => (server ? server.close(() => resolve()) : resolve()));
  }

  on(): never {
    throw new Error('FrameSocketServer has no events to listen to');
  }

  unwrap<T>(): T {
    return this.server as T;
  }

  private accept(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.setNoDelay(true);
    const peer = `${socket.remoteAddress}:${socket.remotePort}`;
    let method: FrameMethod | null = null;
    const reader = new RecordReader((frame) => {
      if (method) {
        const ack = this.receiver.receive(method, frame);
        if (ack) writeRecord(socket, Buffer.from(JSON.stringify(ack)));
        return;
      }
      const named = frame.toString('latin1');
      if (!(FRAME_METHODS as readonly string[]).includes(named)) {
        throw new Error(`the first record names no link (${JSON.stringify(named.slice(0, 40))})`);
      }
      method = named as FrameMethod;
    });
    socket.on('data', (chunk: Buffer) => {
      try {
        reader.push(chunk);
      } catch (error) {
        this.log.error(`closed the connection from ${peer}: ${(error as Error).message}`);
        socket.destroy();
      }
    });
    socket.on('error', () => undefined); // 'close' follows
    socket.on('close', () => {
      this.sockets.delete(socket);
      if (method) this.receiver.ended(method);
    });
  }
}
