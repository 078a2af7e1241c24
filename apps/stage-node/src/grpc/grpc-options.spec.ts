// The stage's gRPC server grants a wide HTTP/2 window, through Nest's real gRPC transport:
// what a peer's HTTP/2 session is told, and a frame larger than the protocol's default window
// (64 KiB) that crosses without the server reading it, which the default would refuse.
import { ServerGrpc } from '@nestjs/microservices';
import http2 from 'node:http2';
import { FLOW_CONTROL_WINDOW_BYTES, stageServerOptions } from './grpc-options.js';

const DEFAULT_WINDOW = 65_535;

describe('stage gRPC server options', () => {
  let server: ServerGrpc;
  let port: number;

  beforeAll(async () => {
    const options = stageServerOptions('127.0.0.1:0').options;
    let bound = 0;
    server = new ServerGrpc({
      ...options,
      onLoadPackageDefinition: (pkg: unknown, grpcServer: unknown) => {
        options.onLoadPackageDefinition!(pkg, grpcServer);
        const servers = (grpcServer as { http2Servers: Map<http2.Http2Server, unknown> })
          .http2Servers;
        const address = [...servers.keys()][0].address();
        bound = typeof address === 'object' && address ? address.port : 0;
      },
    });
    await new Promise<void>((resolve, reject) => {
      void server.listen((e?: unknown) => (e instanceof Error ? reject(e) : resolve()));
    });
    port = bound;
  });

  afterAll(async () => {
    await server.close();
  });

  it('tells each peer a stream and connection window far above the 64 KiB default', async () => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    try {
      // The first SETTINGS is the server's initial one; the widened window follows at once.
      const window = await new Promise<number>((resolve) => {
        session.on('remoteSettings', (s: http2.Settings) => {
          const w = s.initialWindowSize ?? DEFAULT_WINDOW;
          if (w > DEFAULT_WINDOW) resolve(w);
        });
      });
      expect(window).toBe(FLOW_CONTROL_WINDOW_BYTES);
      expect(FLOW_CONTROL_WINDOW_BYTES).toBeGreaterThanOrEqual(16 * 1024 * 1024);

      // A 1 MiB body to an unknown method: the server never reads it, so only the window
      // lets it all leave this end. With the default the write would stall at 64 KiB.
      const stream = session.request({
        ':method': 'POST',
        ':path': '/nowhere.Stage/Nothing',
        'content-type': 'application/grpc',
      });
      stream.on('error', () => undefined);
      const body = Buffer.alloc(1024 * 1024);
      const flushed = await new Promise<boolean>((resolve) => {
        stream.write(body, () => resolve(true));
        stream.on('close', () => resolve(false));
      });
      expect(flushed).toBe(true);
      expect(session.state.remoteWindowSize).toBeGreaterThan(
        FLOW_CONTROL_WINDOW_BYTES - body.length - 1,
      );
      stream.close();
    } finally {
      session.close();
    }
  });
});
