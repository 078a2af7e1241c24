import * as protoLoader from '@grpc/proto-loader';
import { StageProtocolError } from './errors.js';
import { halfBitsToNumber, toHalfBits } from './fp16.js';
import {
  decisionFromWire,
  decisionToWire,
  packetFromWire,
  packetToWire,
  verdictFromWire,
  verdictToWire,
  type DecisionRecord,
  type PacketEnvelope,
} from './messages.js';
import { STAGE_PROTO_LOADER_OPTIONS, STAGE_PROTO_PATH } from './proto-path.js';

// Real protobuf encoding, exactly as grpc-js runs it on both ends of a stream.
const defs = protoLoader.loadSync(STAGE_PROTO_PATH, STAGE_PROTO_LOADER_OPTIONS);
const service = defs['pipedec.stage.Stage'] as protoLoader.ServiceDefinition;
const overWire = (m: protoLoader.MethodDefinition<object, object>, v: object) =>
  m.requestDeserialize(m.requestSerialize(v));

function envelope(): PacketEnvelope {
  return {
    packet: {
      requestId: 'req-1',
      epoch: 3,
      seq: 7,
      nodeIds: Int32Array.from([10, 11, 12]),
      parentIds: Int32Array.from([-1, 10, 10]),
      positions: Int32Array.from([4, 5, 5]),
      hidden: Float32Array.from([0.1, -2, 3.5, 1e-3, 7, 8, 65504, -0.25, 1 / 3, 2, 4, 6]), // [3, 4]
      sampling: { temperature: 0.7, topP: 0.9, seed: 2 ** 40 + 3 },
    },
    decisionCount: 5,
    trace: { computeMs: [1.5, 2.25], rows: [3, 3], codecMs: 0.25 },
  };
}

describe('stage messages over protobuf', () => {
  it('carries a packet with fp32 hidden states bit for bit', () => {
    const e = envelope();
    const back = packetFromWire(overWire(service.Packets, packetToWire(e, 'FP32')));
    expect(back).toEqual(e);
    expect(back.packet.hidden).toBeInstanceOf(Float32Array);
  });

  it('carries fp16 hidden states rounded to the nearest half, in half the bytes', () => {
    const e = envelope();
    const wire = packetToWire(e, 'FP16');
    expect(wire.hidden?.data.byteLength).toBe(12 * 2);
    const back = packetFromWire(overWire(service.Packets, wire));
    expect(Array.from(back.packet.hidden!)).toEqual(
      Array.from(e.packet.hidden!).map((v) => halfBitsToNumber(toHalfBits(v))),
    );
  });

  it('carries tokens into a first stage, without hidden states', () => {
    const e = envelope();
    e.packet.hidden = undefined;
    e.packet.tokens = Int32Array.from([1, 2, 3]);
    const back = packetFromWire(overWire(service.Packets, packetToWire(e, 'FP32')));
    expect(back.packet.tokens).toEqual(e.packet.tokens);
    expect(back.packet.hidden).toBeUndefined();
  });

  it('refuses a packet whose bytes do not match its shape', () => {
    const wire = packetToWire(envelope(), 'FP32');
    wire.hidden = { ...wire.hidden!, data: wire.hidden!.data.subarray(4) };
    const received = overWire(service.Packets, wire);
    expect(() => packetFromWire(received)).toThrow(StageProtocolError);
    expect(() => packetFromWire(received)).toThrow('needs 48 bytes, got 44');
  });

  it('refuses mismatched lengths, a missing request id and missing sampling', () => {
    const wire = packetToWire(envelope(), 'FP32');
    expect(() => packetFromWire({ ...wire, positions: [1] })).toThrow(
      '3 node ids but 3 parents and 1 positions',
    );
    expect(() => packetFromWire(overWire(service.Packets, { ...wire, requestId: '' }))).toThrow(
      'requestId',
    );
    expect(() => packetFromWire(overWire(service.Packets, { ...wire, sampling: null }))).toThrow(
      'sampling',
    );
  });

  it('carries verdicts', () => {
    const v = {
      verdict: {
        requestId: 'r',
        epoch: 1,
        seq: 2,
        nodeIds: Int32Array.from([4, 5]),
        tokens: Int32Array.from([99, 100]),
        logits: Float32Array.from([12.5, -3.25]),
      },
      trace: { computeMs: [1, 2, 3, 4], rows: [2, 2, 2, 2], codecMs: 0 },
    };
    expect(verdictFromWire(overWire(service.Verdicts, verdictToWire(v)))).toEqual(v);
    const failed = { ...v, failure: { stage: 2, message: 'ModelError: KV_LIMIT' } };
    expect(verdictFromWire(overWire(service.Verdicts, verdictToWire(failed)))).toEqual(failed);
  });

  it('carries every kind of decision', () => {
    const base: DecisionRecord = {
      requestId: 'r',
      epoch: 2,
      seq: 0,
      commit: [],
      keep: 'all',
      upTo: -1,
    };
    const cases: DecisionRecord[] = [
      base,
      { ...base, seq: 1, commit: [7, 8], keep: [9, 12], upTo: 14 },
      { ...base, seq: 2, keep: 'none', upTo: 20 },
      { ...base, seq: 3, keep: [], upTo: 21 },
      { ...base, seq: 4, release: true },
    ];
    for (const d of cases) {
      expect(decisionFromWire(overWire(service.Decisions, decisionToWire(d)))).toEqual(d);
    }
  });
});
