// stage.proto as grpc-js sees it here: loaded by @grpc/proto-loader (so Acks keep their
// protobuf encoding), with an identity codec on every Frame. A frame (wire/frame.ts) is
// already bytes: grpc-js sends it as the message and hands the receiver the Buffer it read,
// with no protobuf pass (that pass costs a copy each way and an object per message). Server
// and clients both use this definition, through Nest's `packageDefinition` option.
import { loadSync, type PackageDefinition } from '@grpc/proto-loader';
import {
  STAGE_PROTO_LOADER_OPTIONS,
  STAGE_PROTO_PACKAGE,
  STAGE_PROTO_PATH,
  STAGE_SERVICE,
} from '@pipedec/contracts';

interface MethodDefinitionLike {
  requestSerialize: (value: unknown) => Buffer;
  requestDeserialize: (bytes: Buffer) => unknown;
  responseSerialize: (value: unknown) => Buffer;
  responseDeserialize: (bytes: Buffer) => unknown;
  requestType: { type: { name: string } };
  responseType: { type: { name: string } };
}

const identitySerialize = (value: unknown): Buffer => {
  if (!Buffer.isBuffer(value)) throw new TypeError('a stage frame must be a Buffer');
  return value;
};
const identityDeserialize = (bytes: Buffer): Buffer => bytes;

let definition: PackageDefinition | undefined;

/** The package definition with Frame passed through as raw bytes (built once). */
export function stagePackageDefinition(): PackageDefinition {
  if (definition) return definition;
  const loaded = loadSync(STAGE_PROTO_PATH, STAGE_PROTO_LOADER_OPTIONS);
  const service = loaded[`${STAGE_PROTO_PACKAGE}.${STAGE_SERVICE}`] as unknown as Record<
    string,
    MethodDefinitionLike
  >;
  for (const method of Object.values(service)) {
    if (method.requestType.type.name === 'Frame') {
      method.requestSerialize = identitySerialize;
      method.requestDeserialize = identityDeserialize;
    }
    if (method.responseType.type.name === 'Frame') {
      method.responseSerialize = identitySerialize;
      method.responseDeserialize = identityDeserialize;
    }
  }
  definition = loaded;
  return loaded;
}
