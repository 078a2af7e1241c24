// Where stage.proto lives and how every process loads it, so the server (Nest's gRPC
// transport) and the clients decode messages into the same shapes (Acks as objects; Frames as raw bytes through apps/stage-node's identity codec).
import { fileURLToPath } from 'node:url';
import type { Options } from '@grpc/proto-loader';

/**
 * Absolute path of stage.proto. tsc does not copy .proto files, so both src/stage/*.ts and
 * dist/stage/*.js resolve it through the package root, where only src/proto holds it.
 */
export const STAGE_PROTO_PATH = fileURLToPath(
  new URL('../../src/proto/stage.proto', import.meta.url),
);
export const STAGE_PROTO_PACKAGE = 'pipedec.stage';
export const STAGE_SERVICE = 'Stage';

export const STAGE_PROTO_LOADER_OPTIONS: Options = {
  keepCase: false,
  longs: Number,
  enums: String,
  defaults: true,
  arrays: true,
  oneofs: true,
};
