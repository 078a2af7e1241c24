import type { Decision, LayerPacket } from '@pipedec/engine';
import { halfBitsToNumber, toHalfBits } from '@pipedec/model';
import {
  ALIGN_BIAS,
  FrameError,
  addCodecMs,
  decodeDecisions,
  decodePackets,
  decodeVerdicts,
  encodeDecisions,
  encodePackets,
  encodeVerdicts,
  frameStats,
  type PacketEnvelope,
  type VerdictEnvelope,
} from './frame.js';

function packet(requestId: string, rows: number, width: number, tokens = false): PacketEnvelope {
  const p: LayerPacket = {
    requestId,
    epoch: 3,
    seq: 7,
    nodeIds: Int32Array.from({ length: rows }, (_, i) => 100 + i),
    parentIds: Int32Array.from({ length: rows }, (_, i) => (i === 0 ? -1 : 99 + i)),
    positions: Int32Array.from({ length: rows }, (_, i) => 40 + i),
    sampling: { temperature: 0.7, topP: 0.9, seed: 2 ** 52 + 3 },
  };
  if (tokens) p.tokens = Int32Array.from({ length: rows }, (_, i) => 5 + i);
  if (width > 0) p.hidden = Float32Array.from({ length: rows * width }, (_, i) => Math.sin(i));
  return {
    packet: p,
    decisionCount: 4,
    trace: { computeMs: [0.5, 1.25], rows: [rows, rows], codecMs: 0.1 },
  };
}

/** The frame as grpc-js hands it over: 5 bytes into a fresh buffer. */
function received(frame: Buffer, at = ALIGN_BIAS): Buffer {
  const b = Buffer.alloc(frame.byteLength + at);
  frame.copy(b, at);
  return b.subarray(at);
}

function refusal(f: () => unknown): FrameError {
  try {
    f();
  } catch (e) {
    if (e instanceof FrameError) return e;
    throw e;
  }
  throw new Error('not refused');
}

describe('stage frames', () => {
  it('round-trips packets of several requests in one frame, fp32 hidden as views over the bytes', () => {
    const envs = [packet('req-a', 3, 8), packet('req-b', 0, 0, true), packet('réq-c', 2, 8, true)];
    const bytes = received(encodePackets(envs, 'FP32'));
    const copiesBefore = frameStats.copiedArrays;
    const back = decodePackets(bytes);
    expect(frameStats.copiedArrays).toBe(copiesBefore);
    expect(back).toHaveLength(3);
    for (let i = 0; i < 3; i++) {
      expect(back[i].packet).toEqual(envs[i].packet);
      expect(back[i].decisionCount).toBe(4);
      expect(back[i].trace).toEqual(envs[i].trace);
    }
    // No copy between receive and ORT: the hidden states and ids are the received bytes.
    expect(back[0].packet.hidden!.buffer).toBe(bytes.buffer);
    expect(back[0].packet.nodeIds.buffer).toBe(bytes.buffer);
  });

  it('copies only when a frame arrives misaligned, and still decodes it', () => {
    const env = packet('req-a', 2, 4);
    const bytes = received(encodePackets([env], 'FP32'), ALIGN_BIAS + 1);
    const before = frameStats.copiedArrays;
    expect(decodePackets(bytes)[0].packet).toEqual(env.packet);
    expect(frameStats.copiedArrays).toBeGreaterThan(before);
  });

  it('rounds hidden states to fp16 on request', () => {
    const env = packet('req-a', 2, 4);
    const back = decodePackets(received(encodePackets([env], 'FP16')))[0].packet;
    expect(Array.from(back.hidden!)).toEqual(
      Array.from(env.packet.hidden!).map((v) => halfBitsToNumber(toHalfBits(v))),
    );
  });

  it('adds a hop codec time to every segment of an encoded frame', () => {
    const frame = encodePackets([packet('a', 1, 2), packet('b', 1, 2)], 'FP32');
    addCodecMs(frame, 0.25);
    expect(decodePackets(received(frame)).map((e) => e.trace.codecMs)).toEqual([0.35, 0.35]);
  });

  it('round-trips verdicts, failures included, and decisions of every keep mode', () => {
    const verdicts: VerdictEnvelope[] = [
      {
        verdict: {
          requestId: 'r1',
          epoch: 1,
          seq: 2,
          nodeIds: Int32Array.of(4, 5),
          tokens: Int32Array.of(9, 10),
          logits: Float32Array.of(1.5, -2),
        },
        trace: { computeMs: [1], rows: [2], codecMs: 0 },
      },
      {
        verdict: {
          requestId: 'r2',
          epoch: 0,
          seq: 0,
          nodeIds: new Int32Array(0),
          tokens: new Int32Array(0),
          logits: new Float32Array(0),
        },
        trace: { computeMs: [], rows: [], codecMs: 0 },
        failure: { stage: 3, message: 'ORT ran out of memory' },
      },
    ];
    expect(decodeVerdicts(received(encodeVerdicts(verdicts)))).toEqual(verdicts);
    const decisions: Decision[] = [
      { requestId: 'r1', epoch: 2, seq: 0, commit: [4, 5], keep: [7, 8], upTo: 9 },
      { requestId: 'r1', epoch: 2, seq: 1, commit: [], keep: 'all', upTo: 9 },
      { requestId: 'r1', epoch: 3, seq: 2, commit: [10], keep: 'none', upTo: -1, release: true },
    ];
    expect(decodeDecisions(received(encodeDecisions(decisions)))).toEqual(decisions);
  });

  it('skips an unknown optional extension and refuses a must-understand one', () => {
    const frame = encodeDecisions([
      { requestId: 'r', epoch: 0, seq: 0, commit: [], keep: 'all', upTo: 0 },
    ]);
    const withExt = (flags: number) => {
      const ext = Buffer.alloc(16);
      ext.writeUInt16LE(77, 0);
      ext.writeUInt16LE(flags, 2);
      ext.writeUInt32LE(8, 4);
      // The segment is the only one and ends at the frame's end, at an aligned offset + 0..7.
      const pad = ((frame.byteLength + ALIGN_BIAS + 7) & ~7) - ALIGN_BIAS - frame.byteLength;
      const b = Buffer.concat([frame, Buffer.alloc(pad), ext]);
      b.writeUInt32LE(b.byteLength, 8);
      const seg = ((16 + ALIGN_BIAS + 7) & ~7) - ALIGN_BIAS;
      b.writeUInt32LE(b.byteLength - seg, seg);
      return received(b);
    };
    expect(decodeDecisions(withExt(0))[0].requestId).toBe('r');
    expect(refusal(() => decodeDecisions(withExt(1))).message).toMatch(
      /extension 77 must be understood/,
    );
  });

  it('refuses malformed, truncated, foreign and unknown-version frames naming what is wrong', () => {
    const good = encodePackets([packet('req-x', 2, 4)], 'FP32');
    const mutate = (f: (b: Buffer) => void, length = good.byteLength) => {
      const b = Buffer.from(good.subarray(0, length));
      f(b);
      return received(b);
    };
    expect(refusal(() => decodePackets(received(Buffer.from('hello')))).code).toBe(
      'FRAME_TRUNCATED',
    );
    expect(refusal(() => decodePackets(mutate((b) => b.writeUInt32LE(0x1234, 0)))).code).toBe(
      'FRAME_FOREIGN',
    );
    const version = refusal(() => decodePackets(mutate((b) => b.writeUInt8(9, 4))));
    expect(version.code).toBe('FRAME_VERSION');
    expect(version.message).toMatch(/version 9/);
    expect(refusal(() => decodeVerdicts(received(good))).message).toMatch(
      /kind 1 on a stream of kind 2/,
    );
    const cut = refusal(() => decodePackets(mutate(() => undefined, good.byteLength - 3)));
    expect(cut.code).toBe('FRAME_TRUNCATED');
    // The header's length fixed up: the hidden states themselves are short, and the refusal
    // names the request.
    const short = refusal(() =>
      decodePackets(mutate((b) => b.writeUInt32LE(b.byteLength, 8), good.byteLength - 8)),
    );
    expect(short.code).toBe('FRAME_TRUNCATED');
    expect(short.requestId).toBe('req-x');
    expect(short.seq).toBe(7);
    const seg = ((16 + ALIGN_BIAS + 7) & ~7) - ALIGN_BIAS;
    const rows = refusal(() => decodePackets(mutate((b) => b.writeUInt32LE(0x7fffffff, seg + 20))));
    expect(rows.message).toMatch(/row count 2147483647/);
    const topP = refusal(() => decodePackets(mutate((b) => b.writeDoubleLE(0, seg + 40))));
    expect(topP.message).toMatch(/topP 0/);
  });

  it('survives random corruption: every mutated frame decodes or is refused with a FrameError', () => {
    const carrying = packet('req-g', 1, 4);
    carrying.decisions = [
      { requestId: 'req-g', epoch: 3, seq: 2, commit: [99], keep: [100], upTo: 100 },
      { requestId: 'req-g', epoch: 3, seq: 3, commit: [], keep: 'none', upTo: 100 },
    ];
    const good = encodePackets([packet('req-f', 3, 4, true), carrying], 'FP16');
    let state = 12345;
    const rand = () => (state = (state * 1103515245 + 12345) & 0x7fffffff);
    let refused = 0;
    for (let i = 0; i < 2000; i++) {
      const b = Buffer.from(
        good.subarray(0, i % 5 === 0 ? rand() % good.byteLength : good.byteLength),
      );
      for (let k = 0; k < 1 + (rand() % 4); k++) b[rand() % b.byteLength] = rand() & 0xff;
      try {
        decodePackets(received(b));
      } catch (e) {
        expect(e).toBeInstanceOf(FrameError);
        refused++;
      }
    }
    expect(refused).toBeGreaterThan(500);
  });

  it('carries the decisions that precede a packet (tag 3), per segment, and refuses inconsistent ones', () => {
    const a = packet('req-a', 2, 4);
    a.decisions = [
      { requestId: 'req-a', epoch: 3, seq: 1, commit: [98, 99], keep: [100, 101], upTo: 101 },
      { requestId: 'req-a', epoch: 4, seq: 2, commit: [], keep: 'all', upTo: 101 },
      { requestId: 'req-a', epoch: 4, seq: 3, commit: [100], keep: 'none', upTo: -1 },
    ];
    const b = packet('req-b', 1, 4); // carries none
    const back = decodePackets(received(encodePackets([a, b], 'FP32')));
    expect(back[0].decisions).toEqual(a.decisions);
    expect(back[0].packet.nodeIds).toEqual(a.packet.nodeIds);
    expect(back[1].decisions).toBeUndefined();

    const refused = (ds: Decision[]) => {
      const env = packet('req-a', 1, 4);
      env.decisions = ds;
      return refusal(() => decodePackets(received(encodePackets([env], 'FP32')))).message;
    };
    const d = (seq: number): Decision => ({
      requestId: 'req-a',
      epoch: 3,
      seq,
      commit: [],
      keep: 'all',
      upTo: 1,
    });
    // decisionCount is 4: a carried decision must precede the packet, and come in order.
    expect(refused([d(4)])).toMatch(/carried decision seq 4: .*decision count 4/);
    expect(refused([d(1), d(3)])).toMatch(/carried decision seq 3/);
    // A release is never carried: it must reach stages that no packet will reach.
    expect(() =>
      encodePackets(
        [{ ...packet('req-a', 1, 4), decisions: [{ ...d(0), release: true }] }],
        'FP32',
      ),
    ).toThrow(/release is not carried/);
    // A corrupted count or keep mode is refused by name.
    const frame = encodePackets([{ ...packet('req-a', 1, 4), decisions: [d(2)] }], 'FP32');
    const countAt = frame.indexOf(Buffer.from([3, 0, 1, 0])) + 8; // tag 3, must-understand
    const bad = Buffer.from(frame);
    bad.writeUInt32LE(0x7fffffff, countAt);
    expect(refusal(() => decodePackets(received(bad))).message).toMatch(/carried decision count/);
    const badMode = Buffer.from(frame);
    badMode.writeUInt8(7, countAt + 8 + 8);
    expect(refusal(() => decodePackets(received(badMode))).message).toMatch(/keep mode 7/);
  });

  it("carries distribution-mode acceptance and top-k (tag 1) and the verdicts' sampled distributions (tag 2)", () => {
    const env = packet('req-d', 2, 4);
    env.packet.sampling = { ...env.packet.sampling, acceptance: 'distribution', topK: 5 };
    const back = decodePackets(received(encodePackets([env], 'FP32')));
    expect(back[0].packet).toEqual(env.packet);
    // Exact mode without top-k writes no extension: the frame is byte-identical to before.
    const plain = packet('req-d', 2, 4);
    const exact = packet('req-d', 2, 4);
    exact.packet.sampling = { ...exact.packet.sampling, acceptance: 'exact' };
    expect(encodePackets([exact], 'FP32').equals(encodePackets([plain], 'FP32'))).toBe(true);

    const vocab = 6;
    const verdict: VerdictEnvelope = {
      verdict: {
        requestId: 'req-d',
        epoch: 1,
        seq: 2,
        nodeIds: Int32Array.from([4, 5]),
        tokens: Int32Array.from([1, 3]),
        logits: Float32Array.from([0.5, 1.5]),
        probs: Float32Array.from({ length: 2 * vocab }, (_, i) => (i % vocab) / 15),
      },
      trace: { computeMs: [1], rows: [2], codecMs: 0 },
    };
    const copies = frameStats.copiedArrays;
    const got = decodeVerdicts(received(encodeVerdicts([verdict])));
    expect(frameStats.copiedArrays).toBe(copies); // a view over the received bytes
    expect(got[0].verdict).toEqual(verdict.verdict);
  });
});
