// The stage messages of stage.proto in two forms: records with typed arrays, shaped like
// libs/engine's LayerPacket, Verdict and Decision so a stage passes them on unchanged, and
// wire objects as @grpc/proto-loader hands them over (camelCase fields, enums as strings,
// bytes as Buffers, repeated numbers as number[]). Every received object is checked with a zod
// schema before it becomes a record.
import { z } from 'zod';
import { StageProtocolError } from './errors.js';
import { decodeTensor, encodeTensor, type WireDtype } from './tensor-codec.js';

/** Durations summed over the stages a packet passed, each measured on its own host. */
export interface PacketTrace {
  computeMs: number[]; // [stages passed] each stage's forward time
  rows: number[]; // [stages passed] rows each stage computed
  codecMs: number; // encode + decode of the hidden states, summed
}

export interface SamplingParams {
  temperature: number; // 0 = greedy
  topP: number; // (0, 1]
  seed: number; // integer in [0, 2^53)
}

export interface PacketRecord {
  requestId: string;
  epoch: number;
  seq: number;
  nodeIds: Int32Array; // [n]
  parentIds: Int32Array; // [n] -1 = attends to the committed prefix only
  positions: Int32Array; // [n]
  tokens?: Int32Array; // [n] (into a first stage)
  hidden?: Float32Array; // [n, hiddenSize]
  sampling: SamplingParams;
}

/** A packet with what the transport adds around it. */
export interface PacketEnvelope {
  packet: PacketRecord;
  decisionCount: number; // decisions the head had broadcast before injecting the packet
  trace: PacketTrace;
}

export interface VerdictRecord {
  requestId: string;
  epoch: number;
  seq: number;
  nodeIds: Int32Array; // [m]
  tokens: Int32Array; // [m]
  logits: Float32Array; // [m] the target's logit of each chosen token
}

export interface VerdictEnvelope {
  verdict: VerdictRecord;
  trace: PacketTrace;
  /** A stage could not compute the packet: the request fails with this. */
  failure?: { stage: number; message: string };
}

export interface DecisionRecord {
  requestId: string;
  epoch: number;
  seq: number;
  commit: number[];
  keep: number[] | 'all' | 'none';
  upTo: number;
  release?: boolean;
}

const u32 = z.number().int().min(0).max(0xffffffff);
const int32s = z.array(z.number().int());
const bytes = z.custom<Uint8Array>((v) => v instanceof Uint8Array, 'expected bytes');
const requestId = z.string().min(1).max(200);

const wireTrace = z
  .object({ computeMs: z.array(z.number()), rows: z.array(u32), codecMs: z.number() })
  .nullish();
const wireTensor = z.object({
  dtype: z.enum(['DTYPE_UNSPECIFIED', 'FP32', 'FP16']),
  shape: z.array(u32),
  data: bytes,
});
const wireSampling = z.object({
  temperature: z.number().min(0),
  topP: z.number().gt(0).max(1),
  seed: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
});

const wirePacket = z.object({
  requestId,
  epoch: u32,
  seq: u32,
  decisionCount: u32,
  nodeIds: int32s,
  parentIds: int32s,
  positions: int32s,
  tokens: int32s,
  hidden: wireTensor.nullish(),
  sampling: wireSampling,
  trace: wireTrace,
});
export type WireLayerPacket = z.input<typeof wirePacket>;

const wireVerdict = z.object({
  requestId,
  epoch: u32,
  seq: u32,
  nodeIds: int32s,
  tokens: int32s,
  logits: z.array(z.number()),
  trace: wireTrace,
  error: z.string(),
  failedStage: u32,
});
export type WireVerdict = z.input<typeof wireVerdict>;

const wireDecision = z.object({
  requestId,
  epoch: u32,
  seq: u32,
  commit: int32s,
  keepMode: z.enum(['KEEP_ALL', 'KEEP_NONE', 'KEEP_LIST']),
  keep: int32s,
  upTo: z.number().int(),
  release: z.boolean(),
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

export const emptyTrace = (): PacketTrace => ({ computeMs: [], rows: [], codecMs: 0 });

export function packetToWire(env: PacketEnvelope, dtype: WireDtype): WireLayerPacket {
  const p = env.packet;
  const n = p.nodeIds.length;
  return {
    requestId: p.requestId,
    epoch: p.epoch,
    seq: p.seq,
    decisionCount: env.decisionCount,
    nodeIds: Array.from(p.nodeIds),
    parentIds: Array.from(p.parentIds),
    positions: Array.from(p.positions),
    tokens: p.tokens ? Array.from(p.tokens) : [],
    hidden: p.hidden ? encodeTensor(p.hidden, [n, n === 0 ? 0 : p.hidden.length / n], dtype) : null,
    sampling: p.sampling,
    trace: env.trace,
  };
}

export function packetFromWire(value: unknown): PacketEnvelope {
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
  if (w.hidden) {
    if (w.hidden.shape.length !== 2 || w.hidden.shape[0] !== n) {
      throw new StageProtocolError(
        'TENSOR_SIZE',
        `${what}: hidden shape [${w.hidden.shape.join(', ')}] for ${n} nodes`,
      );
    }
    hidden = decodeTensor(w.hidden, what);
  }
  const packet: PacketRecord = {
    requestId: w.requestId,
    epoch: w.epoch,
    seq: w.seq,
    nodeIds: Int32Array.from(w.nodeIds),
    parentIds: Int32Array.from(w.parentIds),
    positions: Int32Array.from(w.positions),
    sampling: w.sampling,
  };
  if (w.tokens.length > 0) packet.tokens = Int32Array.from(w.tokens);
  if (hidden) packet.hidden = hidden;
  return { packet, decisionCount: w.decisionCount, trace: w.trace ?? emptyTrace() };
}

export function verdictToWire(env: VerdictEnvelope): WireVerdict {
  const v = env.verdict;
  return {
    requestId: v.requestId,
    epoch: v.epoch,
    seq: v.seq,
    nodeIds: Array.from(v.nodeIds),
    tokens: Array.from(v.tokens),
    logits: Array.from(v.logits),
    trace: env.trace,
    error: env.failure?.message ?? '',
    failedStage: env.failure?.stage ?? 0,
  };
}

export function verdictFromWire(value: unknown): VerdictEnvelope {
  const w = parseWire(wireVerdict, value, 'Verdict');
  if (w.nodeIds.length !== w.tokens.length || w.logits.length !== w.tokens.length) {
    throw new StageProtocolError(
      'MESSAGE_INVALID',
      `Verdict ${w.requestId}#${w.seq}: ${w.nodeIds.length} node ids, ${w.tokens.length} tokens, ${w.logits.length} logits`,
    );
  }
  const env: VerdictEnvelope = {
    verdict: {
      requestId: w.requestId,
      epoch: w.epoch,
      seq: w.seq,
      nodeIds: Int32Array.from(w.nodeIds),
      tokens: Int32Array.from(w.tokens),
      logits: Float32Array.from(w.logits),
    },
    trace: w.trace ?? emptyTrace(),
  };
  if (w.error !== '') env.failure = { stage: w.failedStage, message: w.error };
  return env;
}

export function decisionToWire(d: DecisionRecord): WireDecision {
  const keepMode = d.keep === 'all' ? 'KEEP_ALL' : d.keep === 'none' ? 'KEEP_NONE' : 'KEEP_LIST';
  return {
    requestId: d.requestId,
    epoch: d.epoch,
    seq: d.seq,
    commit: d.commit,
    keepMode,
    keep: Array.isArray(d.keep) ? d.keep : [],
    upTo: d.upTo,
    release: d.release ?? false,
  };
}

export function decisionFromWire(value: unknown): DecisionRecord {
  const w = parseWire(wireDecision, value, 'Decision');
  const keep = w.keepMode === 'KEEP_ALL' ? 'all' : w.keepMode === 'KEEP_NONE' ? 'none' : w.keep;
  const d: DecisionRecord = {
    requestId: w.requestId,
    epoch: w.epoch,
    seq: w.seq,
    commit: w.commit,
    keep,
    upTo: w.upTo,
  };
  if (w.release) d.release = true;
  return d;
}
