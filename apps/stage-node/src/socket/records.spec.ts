import fc from 'fast-check';
import type { Decision } from '@pipedec/engine';
import { StageInbox } from '../wire/stage-inbox.js';
import type { PeerLinkEvents, RefusedAck } from '../wire/link.js';
import {
  ALIGN_BIAS,
  decodePackets,
  encodePackets,
  frameStats,
  type PacketEnvelope,
  type VerdictEnvelope,
} from '../wire/frame.js';
import { FrameReceiver } from '../wire/frame-receiver.js';
import { FrameSocketServer } from './frame-socket-server.js';
import { RECORD_HEADER_BYTES, RecordError, RecordReader, writeRecord } from './records.js';
import { SocketLink } from './socket-link.js';

function packet(requestId: string, rows: number, width: number): PacketEnvelope {
  return {
    packet: {
      requestId,
      epoch: 1,
      seq: rows,
      nodeIds: Int32Array.from({ length: rows }, (_, i) => i),
      parentIds: Int32Array.from({ length: rows }, (_, i) => i - 1),
      positions: Int32Array.from({ length: rows }, (_, i) => 10 + i),
      hidden: Float32Array.from({ length: rows * width }, (_, i) => Math.cos(i)),
      sampling: { temperature: 0, topP: 1, seed: 0 },
    },
    decisionCount: 0,
    trace: { computeMs: [], rows: [], codecMs: 0 },
  };
}

/** What a socket's writes put on the wire, as one buffer. */
function wire(frames: Uint8Array[]): Buffer {
  const out: Buffer[] = [];
  const sink = {
    cork: () => undefined,
    uncork: () => undefined,
    write: (b: Uint8Array) => out.push(Buffer.from(b)) > 0,
  };
  for (const f of frames) writeRecord(sink, f);
  return Buffer.concat(out);
}

/** The stream cut at `cuts`, each piece in a fresh buffer (8-aligned, as a socket's chunks). */
function chunks(stream: Buffer, cuts: number[]): Buffer[] {
  const at = [...new Set(cuts.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b);
  const pieces: Buffer[] = [];
  let from = 0;
  for (const c of [...at, stream.length]) {
    if (c <= from) continue;
    const b = Buffer.allocUnsafeSlow(c - from);
    stream.copy(b, 0, from, c);
    pieces.push(b);
    from = c;
  }
  return pieces;
}

describe('socket records', () => {
  it('a record is a multiple of 8 bytes with its frame at byte 5', () => {
    for (const n of [0, 1, 5, 13, 64, 1000]) {
      const w = wire([Buffer.alloc(n, 7)]);
      expect(w.length % 8).toBe(0);
      expect(w.readUInt32LE(0)).toBe(n);
      expect(w.subarray(RECORD_HEADER_BYTES, RECORD_HEADER_BYTES + n)).toEqual(Buffer.alloc(n, 7));
    }
  });

  it('finds every frame, in order and aligned for frame.ts, however the stream is cut', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            fc.uint8Array({ maxLength: 300 }),
            fc
              .record({
                rows: fc.integer({ min: 1, max: 9 }),
                width: fc.integer({ min: 0, max: 40 }),
              })
              .map(({ rows, width }) => encodePackets([packet('r', rows, width)], 'FP32')),
          ),
          { maxLength: 12 },
        ),
        fc.array(fc.nat(), { maxLength: 30 }),
        (frames, cuts) => {
          const got: Buffer[] = [];
          const reader = new RecordReader((f) => got.push(f));
          for (const c of chunks(wire(frames), cuts)) reader.push(c);
          expect(got.map((g) => Buffer.from(g))).toEqual(frames.map((f) => Buffer.from(f)));
          for (const g of got) expect(g.byteOffset % 8).toBe(ALIGN_BIAS);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('hands packets to the decoder as views: no array is copied', () => {
    const frames = [3, 1, 16, 2].map((rows) => encodePackets([packet('v', rows, 24)], 'FP32'));
    const reader = new RecordReader((f) => decodePackets(f));
    const before = frameStats.copiedArrays;
    // Whole records per chunk (the usual case), then one record split over three chunks.
    for (const c of chunks(wire(frames), [])) reader.push(c);
    for (const c of chunks(wire(frames), [5, 200])) reader.push(c);
    expect(frameStats.copiedArrays).toBe(before);
  });

  it('refuses a header no writer makes', () => {
    const good = wire([Buffer.alloc(10)]);
    const tooBig = Buffer.from(good);
    tooBig.writeUInt32LE(1000, 0);
    expect(() => new RecordReader(() => undefined, 100).push(tooBig)).toThrow(
      /1000-byte frame is over 100 bytes/,
    );
    const badPad = Buffer.from(good);
    badPad[4] = 6;
    expect(() => new RecordReader(() => undefined).push(badPad)).toThrow(RecordError);
  });
});

class Inbox extends StageInbox {
  packets: PacketEnvelope[] = [];
  refusals: string[] = [];
  decisionsEnded = 0;
  packet(env: PacketEnvelope): void {
    this.packets.push(env);
  }
  decision(_d: Decision): void {}
  verdict(_env: VerdictEnvelope): void {}
  decisionsClosed(): void {
    this.decisionsEnded++;
  }
  refused(requestId: string, seq: number, error: string): void {
    this.refusals.push(`${requestId}#${seq}: ${error}`);
  }
}

describe('frame sockets between a link and a stage', () => {
  let inbox: Inbox;
  let server: FrameSocketServer;
  let address: string;

  beforeEach(async () => {
    inbox = new Inbox();
    server = new FrameSocketServer('127.0.0.1:0', new FrameReceiver(inbox));
    await new Promise<void>((resolve, reject) => server.listen((e) => (e ? reject(e) : resolve())));
    address = `127.0.0.1:${server.port}`;
  });
  afterEach(() => server.close());

  function events(): PeerLinkEvents & {
    acks: RefusedAck[];
    breaks: Error[];
    changed: Promise<void>;
  } {
    let wake = (): void => undefined;
    const e = {
      acks: [] as RefusedAck[],
      breaks: [] as Error[],
      changed: new Promise<void>((r) => (wake = r)),
      refused: (a: RefusedAck) => {
        e.acks.push(a);
        wake();
      },
      broken: (err: Error) => {
        e.breaks.push(err);
        wake();
      },
    };
    return e;
  }

  async function until(check: () => boolean): Promise<void> {
    while (!check()) await new Promise((r) => setImmediate(r));
  }

  it('delivers packets in order, with their rows and hidden states', async () => {
    const link = new SocketLink(address, 'Packets', events());
    for (let i = 1; i <= 50; i++)
      link.write(encodePackets([packet(`q${i}`, 1 + (i % 5), 48)], 'FP32'));
    await until(() => inbox.packets.length === 50);
    expect(inbox.packets.map((p) => p.packet.requestId)).toEqual(
      Array.from({ length: 50 }, (_, i) => `q${i + 1}`),
    );
    const p7 = inbox.packets[6].packet;
    expect(Array.from(p7.positions)).toEqual([10, 11, 12]);
    expect(p7.hidden![5]).toBeCloseTo(Math.cos(5), 6);
    link.close();
  });

  it('answers a malformed frame with an ack and keeps serving the link', async () => {
    const e = events();
    const link = new SocketLink(address, 'Packets', e);
    const bad = Buffer.from(encodePackets([packet('bad', 2, 8)], 'FP32'));
    bad.writeUInt32LE(0xdeadbeef, 0); // not a stage frame
    link.write(bad);
    link.write(encodePackets([packet('after', 1, 8)], 'FP32'));
    await e.changed;
    expect(e.acks[0].error).toMatch(/magic/i);
    await until(() => inbox.packets.length === 1);
    expect(inbox.packets[0].packet.requestId).toBe('after');
    expect(e.breaks).toEqual([]);
    link.close();
  });

  it('reports a peer that goes away once, and the stage hears the decision link end', async () => {
    const e = events();
    const link = new SocketLink(address, 'Decisions', e);
    link.write(Buffer.alloc(0)); // opens the link (an empty frame is refused, not fatal)
    await e.changed;
    await server.close();
    await until(() => e.breaks.length > 0);
    expect(e.breaks[0].message).toMatch(/closed/);
    expect(inbox.decisionsEnded).toBe(1);
    await new Promise((r) => setImmediate(r));
    expect(e.breaks).toHaveLength(1);
    link.close();
  });

  it('closes a connection whose first record names no link, and only that one', async () => {
    const e = events();
    const stray = new SocketLink(address, 'Bogus' as 'Packets', e);
    stray.write(Buffer.alloc(4));
    await e.changed;
    expect(e.breaks).toHaveLength(1);
    const link = new SocketLink(address, 'Packets', events());
    link.write(encodePackets([packet('ok', 1, 8)], 'FP32'));
    await until(() => inbox.packets.length === 1);
    link.close();
  });
});
