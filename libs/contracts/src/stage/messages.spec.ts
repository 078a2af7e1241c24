import * as protoLoader from '@grpc/proto-loader';
import { StageProtocolError } from './errors.js';
import {
  decisionFromWire,
  decisionToWire,
  packetFromWire,
  packetToWire,
  verdictFromWire,
  verdictToWire,
  type LayerPacket,
} from './messages.js';
import { STAGE_PROTO_LOADER_OPTIONS, STAGE_PROTO_PATH } from './proto-path.js';
import { toHalfBits, halfBitsToNumber } from './fp16.js';

// Real protobuf encoding, exactly as grpc-js runs it on both ends of a stream.
const defs = protoLoader.loadSync(STAGE_PROTO_PATH, STAGE_PROTO_LOADER_OPTIONS);
const service = defs['pipedec.stage.Stage'] as protoLoader.ServiceDefinition;
const packets = service.Packets;
const verdicts = service.Verdicts;
const decisions = service.Decisions;
const overWire = (m: protoLoader.MethodDefinition<object, object>, v: object) =>
  m.requestDeserialize(m.requestSerialize(v));

function packet(): LayerPacket {
  return {
    requestId: 'req-1',
    epoch: 3,
    seq: 7,
    decisionSeq: 5,
    nodeIds: Int32Array.from([10, 11, 12]),
    parentIds: Int32Array.from([-1, 10, 10]),
    positions: Int32Array.from([4, 5, 5]),
    hidden: Float32Array.from([0.1, -2, 3.5, 1e-3, 7, 8, 65504, -0.25, 1 / 3, 2, 4, 6]),
    hiddenSize: 4,
    trace: { computeMs: 1.5, codecMs: 0.25, hops: 2 },
    meta: { kind: 'tree' },
  };
}

describe('stage messages over protobuf', () => {
  it('carries a packet with fp32 hidden states bit for bit', () => {
    const p = packet();
    const back = packetFromWire(overWire(packets, packetToWire(p, 'FP32')));
    expect(back).toEqual({ ...p, tokens: undefined });
    expect(back.hidden).toBeInstanceOf(Float32Array);
  });

  it('carries fp16 hidden states rounded to the nearest half, in half the bytes', () => {
    const p = packet();
    const wire = packetToWire(p, 'FP16');
    expect(wire.hidden?.data.byteLength).toBe(12 * 2);
    const back = packetFromWire(overWire(packets, wire));
    expect(Array.from(back.hidden!)).toEqual(
      Array.from(p.hidden!).map((v) => halfBitsToNumber(toHalfBits(v))),
    );
  });

  it('carries tokens for a first stage and no hidden states', () => {
    const p = { ...packet(), hidden: undefined, hiddenSize: 0, tokens: Int32Array.from([1, 2, 3]) };
    const back = packetFromWire(overWire(packets, packetToWire(p, 'FP32')));
    expect(back.tokens).toEqual(p.tokens);
    expect(back.hidden).toBeUndefined();
  });

  it('refuses a packet whose bytes do not match its shape', () => {
    const wire = packetToWire(packet(), 'FP32');
    wire.hidden = { ...wire.hidden!, data: wire.hidden!.data.subarray(4) };
    expect(() => packetFromWire(overWire(packets, wire))).toThrow(StageProtocolError);
    expect(() => packetFromWire(overWire(packets, wire))).toThrow('needs 48 bytes, got 44');
  });

  it('refuses mismatched array lengths and a missing request id', () => {
    const wire = packetToWire(packet(), 'FP32');
    expect(() => packetFromWire({ ...wire, positions: [1] })).toThrow(
      '3 node ids but 3 parents and 1 positions',
    );
    expect(() => packetFromWire(overWire(packets, { ...wire, requestId: '' }))).toThrow(
      'requestId',
    );
  });

  it('carries verdicts and decisions', () => {
    const v = {
      requestId: 'r',
      epoch: 1,
      seq: 2,
      nodeIds: Int32Array.from([4, 5]),
      tokens: Int32Array.from([99, 100]),
      trace: { computeMs: 3, codecMs: 0, hops: 4 },
      meta: undefined,
    };
    expect(verdictFromWire(overWire(verdicts, verdictToWire(v)))).toEqual(v);
    const d = {
      requestId: 'r',
      seq: 1,
      epoch: 0,
      kind: 'OPEN' as const,
      nodeIds: [],
      committedRows: 0,
      sampling: { temperature: 0.8, topP: 0.9, topK: 40, seed: 12345 },
      meta: undefined,
    };
    expect(decisionFromWire(overWire(decisions, decisionToWire(d)))).toEqual(d);
    const prune = { ...d, kind: 'PRUNE' as const, seq: 2, nodeIds: [4, 9], sampling: undefined };
    expect(decisionFromWire(overWire(decisions, decisionToWire(prune)))).toEqual(prune);
    expect(() =>
      decisionFromWire(overWire(decisions, { ...decisionToWire(d), sampling: null })),
    ).toThrow('OPEN without sampling');
  });
});
