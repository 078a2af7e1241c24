// One place for how this app speaks stage.proto: the server options of Nest's gRPC transport
// and the client that dials a peer stage.
import type { Client, ClientDuplexStream } from '@grpc/grpc-js';
import type { Http2Server, ServerHttp2Session } from 'node:http2';
import { ClientGrpcProxy, Transport, type GrpcOptions } from '@nestjs/microservices';
import { STAGE_PROTO_PACKAGE, STAGE_SERVICE } from '@pipedec/contracts';
import { stagePackageDefinition } from './stage-definition.js';

const MAX_MESSAGE_BYTES = 256 * 1024 * 1024;

/**
 * HTTP/2 flow-control window a stage grants per stream and per connection, both ends. The
 * protocol's default is 64 KiB per stream: a frame larger than that (a distribution-mode
 * verdict carries a vocabulary of probabilities per row, 16 KiB each on the demo model; a
 * batched packet) waits a round trip for each further 64 KiB, so over a 5 ms hop a 256 KiB
 * verdict took ~40 ms instead of ~5 (bench:cluster ns5, distribution mode 2x exact mode's
 * time per token). One link carries one pipeline's frames, so a large window costs nothing
 * but the memory of frames already sent.
 */
export const FLOW_CONTROL_WINDOW_BYTES = 32 * 1024 * 1024;

/**
 * Client side. Keepalive only finds silent partitions (a dead process closes its sockets and
 * is noticed at once; the registry TTL is the backstop), so it is lenient: a stage starved of
 * CPU for a second must not lose its links.
 */
const channelOptions = {
  'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
  'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
  'grpc.keepalive_time_ms': 10_000,
  'grpc.keepalive_timeout_ms': 20_000,
  'grpc.keepalive_permit_without_calls': 1,
  // The streams live as long as the link: a retry would replay a whole stream's frames.
  'grpc.enable_retries': 0,
  'grpc-node.flow_control_window': FLOW_CONTROL_WINDOW_BYTES,
};

/**
 * grpc-js's server has no option for its HTTP/2 window (its clients have
 * grpc-node.flow_control_window), so each session is told at once: a SETTINGS frame with the
 * stream window, and a WINDOW_UPDATE for the connection's.
 */
function widenWindows(session: ServerHttp2Session): void {
  if (session.destroyed) return;
  session.settings({ initialWindowSize: FLOW_CONTROL_WINDOW_BYTES });
  session.setLocalWindowSize(FLOW_CONTROL_WINDOW_BYTES);
}

/** Hooks widenWindows onto the HTTP/2 servers a grpc-js Server listens with (already bound). */
export function widenServerWindows(grpcServer: unknown): void {
  const servers = (
    grpcServer as {
      http2Servers?: Map<Http2Server, { sessions: Set<ServerHttp2Session> }>;
    } | null
  )?.http2Servers;
  if (!(servers instanceof Map) || servers.size === 0) {
    throw new Error('grpc-js server: no bound HTTP/2 server to widen the flow-control window of');
  }
  for (const [server, info] of servers) {
    server.on('session', widenWindows);
    for (const session of info.sessions) widenWindows(session);
  }
}

export function stageServerOptions(url: string): GrpcOptions {
  return {
    transport: Transport.GRPC,
    options: {
      url,
      package: STAGE_PROTO_PACKAGE,
      packageDefinition: stagePackageDefinition(),
      channelOptions: {
        'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
        'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
        // Accept the clients' keepalive pings on idle links; the server sends none itself.
        'grpc.http2.min_ping_interval_without_data_ms': 5_000,
      },
      // Nest calls this after binding, with grpc-js's Server.
      onLoadPackageDefinition: (_pkg: unknown, server: unknown) => widenServerWindows(server),
    },
  };
}

export type StageMethod = 'Packets' | 'Verdicts' | 'Decisions' | 'Echo' | 'Ping';

/** The generated grpc-js client of the Stage service: one bidi stream per method. */
export type StageClient = Client & Record<StageMethod, () => ClientDuplexStream<Buffer, unknown>>;

/** A client for the stage at `address`, built by Nest's gRPC transport from stage.proto. */
export function dialStage(address: string): StageClient {
  const proxy = new ClientGrpcProxy({
    url: address,
    package: STAGE_PROTO_PACKAGE,
    packageDefinition: stagePackageDefinition(),
    channelOptions,
  });
  return proxy.getClientByServiceName<StageClient>(STAGE_SERVICE);
}
