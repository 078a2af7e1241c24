// The stage messages of stage.proto in two forms: records with typed arrays, which the stage
// code uses, and wire objects as @grpc/proto-loader hands them over (camelCase fields, enums as
// strings, bytes as Buffers, repeated ints as number[]). Every received object is checked with
// a zod schema before it becomes a record; records are turned back into wire objects to send.
import { z } from 'zod';
import { StageProtocolError } from './errors.js';
import { decodeTensor, encodeTensor, type WireDtype } from './tensor-codec.js';

/** Durations summed over the stages a packet passed, each measured on its own host. */
export interface PacketTrace {
  computeMs: number;
  codecMs: number;
  hops: number;
}

export interface LayerPacket {
  requestId: string;
  epoch: number;
  seq: number;
  decisionSeq: number;
  nodeIds: Int32Array; // [n]
  parentIds: Int32Array; // [n] -1 = attends to the committed prefix only
  positions: Int32Array; // [n]
  tokens?: Int32Array; // [n]
  hidden?: Float32Array; // [n, hiddenSize]
  hiddenSize: number; // 0 when hidden is absent
  trace: PacketTrace;
  meta?: unknown; // engine-defined JSON
}

export interface Verdict {
  requestId: string;
  epoch: number;
  seq: number;
  nodeIds: Int32Array; // [m]
  tokens: Int32Array; // [m]
  trace: PacketTrace;
  meta?: unknown;
}

export interface SamplingParams {
  temperature: number; // 0 = greedy
  topP: number;
  topK: number;
  seed: number;
}

export const DECISION_KINDS = ['OPEN', 'PRUNE', 'COMMIT', 'TRUNCATE', 'RELEASE'] as const;
export type DecisionKind = (typeof DECISION_KINDS)[number];

export interface StageDecision {
  requestId: string;
  seq: number;
  epoch: number;
  kind: DecisionKind;
  nodeIds: number[];
  committedRows: number;
  sampling?: SamplingParams;
  meta?: unknown;
}

const u32 = z.number().int().min(0).max(0xffffffff);
const int32s = z.array(z.number().int());
const bytes = z.custom<Uint8Array>((v) => v instanceof Uint8Array, 'expected bytes');
const requestId = z.string().min(1).max(200);

const wireTrace = z.object({ computeMs: z.number(), codecMs: z.number(), hops: u32 }).nullish();
const wireTensor = z.object({
  dtype: z.enum(['DTYPE_UNSPECIFIED', 'FP32', 'FP16']),
  shape: z.array(u32),
  data: bytes,
});

const wirePacket = z.object({
  requestId,
  epoch: u32,
  seq: u32,
  decisionSeq: u32,
  nodeIds: int32s,
  parentIds: int32s,
  positions: int32s,
  tokens: int32s,
  hidden: wireTensor.nullish(),
  trace: wireTrace,
  meta: bytes,
});
export type WireLayerPacket = z.input<typeof wirePacket>;

const wireVerdict = z.object({
  requestId,
  epoch: u32,
  seq: u32,
  nodeIds: int32s,
  tokens: int32s,
  trace: wireTrace,
  meta: bytes,
});
export type WireVerdict = z.input<typeof wireVerdict>;

const wireSampling = z.object({
  temperature: z.number().min(0),
  topP: z.number().min(0).max(1),
  topK: u32,
  seed: z.number().int().min(0),
});
const wireDecision = z.object({
  requestId,
  seq: u32,
  epoch: u32,
  kind: z.enum(['KIND_UNSPECIFIED', ...DECISION_KINDS]),
  nodeIds: int32s,
  committedRows: u32,
  sampling: wireSampling.nullish(),
  meta: bytes,
});
export type WireDecision = z.input<typeof wireDecision>;

function parseWire<T extends z.ZodType>(schema: T, value: unknown, what: string): z.output<T> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const detail = result.error.issues
    .map((i) => `${i.path.map(String).join('.') || '(root)'}: ${i.message}`)
    .join('; ');
  throw new StageProtocolError('MESSAGE_INVALID', `${what}: ${detail}`);
}

const emptyTrace = (): PacketTrace => ({ computeMs: 0, codecMs: 0, hops: 0 });
const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder();
const EMPTY = new Uint8Array(0);

function encodeMeta(meta: unknown): Uint8Array {
  return meta === undefined ? EMPTY : textEncoder.encode(JSON.stringify(meta));
}
function decodeMeta(meta: Uint8Array, what: string): unknown {
  if (meta.byteLength === 0) return undefined;
  try {
    return JSON.parse(textDecoder.decode(meta)) as unknown;
  } catch {
    throw new StageProtocolError('MESSAGE_INVALID', `${what}: meta is not JSON`);
  }
}

export function packetToWire(p: LayerPacket, dtype: WireDtype): WireLayerPacket {
  const n = p.nodeIds.length;
  return {
    requestId: p.requestId,
    epoch: p.epoch,
    seq: p.seq,
    decisionSeq: p.decisionSeq,
    nodeIds: Array.from(p.nodeIds),
    parentIds: Array.from(p.parentIds),
    positions: Array.from(p.positions),
    tokens: p.tokens ? Array.from(p.tokens) : [],
    hidden: p.hidden ? encodeTensor(p.hidden, [n, p.hiddenSize], dtype) : null,
    trace: p.trace,
    meta: encodeMeta(p.meta),
  };
}

export function packetFromWire(value: unknown): LayerPacket {
  const w = parseWire(wirePacket, value, 'LayerPacket');
  const what = `LayerPacket ${w.requestId}#${w.seq}`;
  const n = w.nodeIds.length;
  if (w.parentIds.length !== n || w.positions.length !== n) {
    throw new StageProtocolError(
      'MESSAGE_INVALID',
      `${what}: ${n} node ids but ${w.parentIds.length} parents and ${w.positions.length} positions`,
    );
  }
  if (w.tokens.length !== 0 && w.tokens.length !== n) {
    throw new StageProtocolError(
      'MESSAGE_INVALID',
      `${what}: ${n} nodes, ${w.tokens.length} tokens`,
    );
  }
  let hidden: Float32Array | undefined;
  let hiddenSize = 0;
  if (w.hidden) {
    if (w.hidden.shape.length !== 2 || w.hidden.shape[0] !== n) {
      throw new StageProtocolError(
        'TENSOR_SIZE',
        `${what}: hidden shape [${w.hidden.shape.join(', ')}] for ${n} nodes`,
      );
    }
    hidden = decodeTensor(w.hidden, what);
    hiddenSize = w.hidden.shape[1];
  }
  return {
    requestId: w.requestId,
    epoch: w.epoch,
    seq: w.seq,
    decisionSeq: w.decisionSeq,
    nodeIds: Int32Array.from(w.nodeIds),
    parentIds: Int32Array.from(w.parentIds),
    positions: Int32Array.from(w.positions),
    tokens: w.tokens.length > 0 ? Int32Array.from(w.tokens) : undefined,
    hidden,
    hiddenSize,
    trace: w.trace ?? emptyTrace(),
    meta: decodeMeta(w.meta, what),
  };
}

export function verdictToWire(v: Verdict): WireVerdict {
  return {
    requestId: v.requestId,
    epoch: v.epoch,
    seq: v.seq,
    nodeIds: Array.from(v.nodeIds),
    tokens: Array.from(v.tokens),
    trace: v.trace,
    meta: encodeMeta(v.meta),
  };
}

export function verdictFromWire(value: unknown): Verdict {
  const w = parseWire(wireVerdict, value, 'Verdict');
  if (w.nodeIds.length !== w.tokens.length) {
    throw new StageProtocolError(
      'MESSAGE_INVALID',
      `Verdict ${w.requestId}#${w.seq}: ${w.nodeIds.length} node ids, ${w.tokens.length} tokens`,
    );
  }
  return {
    requestId: w.requestId,
    epoch: w.epoch,
    seq: w.seq,
    nodeIds: Int32Array.from(w.nodeIds),
    tokens: Int32Array.from(w.tokens),
    trace: w.trace ?? emptyTrace(),
    meta: decodeMeta(w.meta, `Verdict ${w.requestId}#${w.seq}`),
  };
}

export function decisionToWire(d: StageDecision): WireDecision {
  return {
    requestId: d.requestId,
    seq: d.seq,
    epoch: d.epoch,
    kind: d.kind,
    nodeIds: d.nodeIds,
    committedRows: d.committedRows,
    sampling: d.sampling ?? null,
    meta: encodeMeta(d.meta),
  };
}

export function decisionFromWire(value: unknown): StageDecision {
  const w = parseWire(wireDecision, value, 'Decision');
  const what = `Decision ${w.requestId}#${w.seq}`;
  if (w.kind === 'KIND_UNSPECIFIED') {
    throw new StageProtocolError('MESSAGE_INVALID', `${what}: kind is unspecified`);
  }
  if (w.kind === 'OPEN' && !w.sampling) {
    throw new StageProtocolError('MESSAGE_INVALID', `${what}: OPEN without sampling`);
  }
  return {
    requestId: w.requestId,
    seq: w.seq,
    epoch: w.epoch,
    kind: w.kind,
    nodeIds: w.nodeIds,
    committedRows: w.committedRows,
    sampling: w.sampling ?? undefined,
    meta: decodeMeta(w.meta, what),
  };
}
