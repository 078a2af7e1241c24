// One place for how this app speaks stage.proto: the server options of Nest's gRPC transport
// and the client that dials a peer stage.
import type { Client, ClientDuplexStream } from '@grpc/grpc-js';
import { ClientGrpcProxy, Transport, type GrpcOptions } from '@nestjs/microservices';
import { STAGE_PROTO_PACKAGE, STAGE_SERVICE } from '@pipedec/contracts';
import { stagePackageDefinition } from './stage-definition.js';

const MAX_MESSAGE_BYTES = 256 * 1024 * 1024;

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
};

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
