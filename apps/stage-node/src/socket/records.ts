// Stage frames (wire/frame.ts) on a plain TCP socket, the FRAME_TRANSPORT=tcp path: how a
// frame is delimited on the byte stream, and how a reader finds the frames in the chunks a
// socket delivers without copying them.
//
// Why a socket of our own: grpc-js's bidi streams cost a stage CPU per frame in HTTP/2 and
// gRPC (receive: DATA frames and grpc-js's reassembly, which copies every message; send:
// HTTP/2 framing and flow-control bookkeeping). bench:socket (bench/results/socket-relay.json),
// a process that receives, decodes, re-encodes and sends one packet frame at a time: 252 µs
// of CPU per frame over gRPC against 179 µs over this socket for a 1-row packet, 305 against
// 256 for 16 rows. In the 4-stage pipeline (bench:cluster, bench/results/transport-ab) stage
// CPU per token fell to 0.82-0.93x and ms per token to 0.83-0.96x. The gRPC server stays: it
// carries Echo and Ping, and FRAME_TRANSPORT=grpc sends frames on it.
//
// A record, little-endian:
//
//     0  u32  frame bytes n (at most MAX_FRAME_BYTES)
//     4  u8   pad p (0..7): zeros after the frame, so that the record is a multiple of 8 bytes
//     5  n    the frame
//     5+n p   zeros
//
// Why 5 bytes and the pad: frame.ts lays its arrays out to be aligned where grpc-js puts a
// frame, 5 bytes into an aligned buffer (frame.ts ALIGN_BIAS). A socket's chunks start
// 8-aligned, so a frame at byte 5 of an 8-aligned record sits where frame.ts wants it, and the
// decoder hands out views, not copies. A record split across chunks is assembled into a fresh
// buffer at that offset; a frame that a split left misaligned is copied once (grpc-js copies
// every message).
//
//         chunk (8-aligned)                    chunk
//     |[n p][frame ......][pad]|[n p][fra|me ....][pad]|[n p][frame][pad]|...
//      ^ record, 8k bytes       ^ split record: assembled  ^ after a split, maybe
//                                                            misaligned: copied
import type { Socket } from 'node:net';
import { ALIGN_BIAS } from '../wire/frame.js';

export const RECORD_HEADER_BYTES = 5;
/** The largest frame a record may carry (as gRPC's max message length on the stage links). */
export const MAX_FRAME_BYTES = 256 * 1024 * 1024;
/** Where a frame starts in an 8-aligned buffer for its arrays to be aligned (frame.ts). */
const FRAME_ALIGN_OFFSET = ALIGN_BIAS;
const ZEROS = Buffer.alloc(8);

export class RecordError extends Error {}

/** host:port as net.connect and net.Server.listen take it. */
export function hostPort(address: string): { host: string; port: number } {
  const i = address.lastIndexOf(':');
  return { host: address.slice(0, i), port: Number(address.slice(i + 1)) };
}

/** Writes one frame as a record: one writev of header, frame (not copied) and pad. */
export function writeRecord(
  socket: Pick<Socket, 'cork' | 'write' | 'uncork'>,
  frame: Uint8Array,
): void {
  const pad = (8 - ((RECORD_HEADER_BYTES + frame.byteLength) % 8)) % 8;
  const header = Buffer.allocUnsafe(RECORD_HEADER_BYTES);
  header.writeUInt32LE(frame.byteLength, 0);
  header[4] = pad;
  socket.cork();
  socket.write(header);
  socket.write(frame);
  if (pad > 0) socket.write(ZEROS.subarray(0, pad));
  socket.uncork();
}

/** The record's size from its header at `at` of `b`; refuses a header no writer makes. */
function recordBytes(b: Buffer, at: number, maxFrameBytes: number): number {
  const n = b.readUInt32LE(at);
  const pad = b[at + 4];
  if (n > maxFrameBytes) throw new RecordError(`a ${n}-byte frame is over ${maxFrameBytes} bytes`);
  if (pad !== (8 - ((RECORD_HEADER_BYTES + n) % 8)) % 8) {
    throw new RecordError(`record pad ${pad} does not fit a ${n}-byte frame`);
  }
  return RECORD_HEADER_BYTES + n + pad;
}

/** A buffer of `n` bytes placed where frame.ts's arrays are aligned. */
function alignedFrame(n: number): Buffer {
  return Buffer.allocUnsafeSlow(n + FRAME_ALIGN_OFFSET).subarray(FRAME_ALIGN_OFFSET);
}

/**
 * Finds the frames in a socket's chunks, in order, and hands each to `onFrame` (a view of the
 * chunk when it is aligned). `push` throws RecordError on a header no writer makes: the
 * stream can't be resynchronised, so its owner closes the socket.
 */
export class RecordReader {
  private parts: Buffer[] = [];
  private held = 0;
  /** Size of the record the held bytes begin, once its header is whole; 0 before. */
  private need = 0;

  constructor(
    private readonly onFrame: (frame: Buffer) => void,
    private readonly maxFrameBytes = MAX_FRAME_BYTES,
  ) {}

  push(chunk: Buffer): void {
    if (this.held === 0) return this.scan(chunk, 0);
    this.parts.push(chunk);
    this.held += chunk.length;
    if (this.need === 0) {
      if (this.held < RECORD_HEADER_BYTES) return;
      const joined = Buffer.concat(this.parts, this.held); // a split header: a few bytes
      this.parts = [joined];
      this.need = recordBytes(joined, 0, this.maxFrameBytes);
    }
    if (this.held < this.need) return;
    // The record ends in this chunk: copy its frame out of the held parts, then go on in the
    // chunk after the record.
    const n = this.need - RECORD_HEADER_BYTES - this.parts[0].readUInt8(4);
    const frame = alignedFrame(n);
    let skip = RECORD_HEADER_BYTES;
    let filled = 0;
    for (const p of this.parts) {
      if (skip >= p.length) {
        skip -= p.length;
        continue;
      }
      const take = Math.min(p.length - skip, n - filled);
      p.copy(frame, filled, skip, skip + take);
      filled += take;
      skip = 0;
      if (filled === n) break;
    }
    const rest = chunk.length - (this.held - this.need);
    this.parts = [];
    this.held = 0;
    this.need = 0;
    this.onFrame(frame);
    this.scan(chunk, rest);
  }

  private scan(chunk: Buffer, from: number): void {
    let at = from;
    while (chunk.length - at >= RECORD_HEADER_BYTES) {
      const size = recordBytes(chunk, at, this.maxFrameBytes);
      if (chunk.length - at < size) break;
      const start = at + RECORD_HEADER_BYTES;
      const n = chunk.readUInt32LE(at);
      let frame = chunk.subarray(start, start + n);
      if ((chunk.byteOffset + start) % 8 !== FRAME_ALIGN_OFFSET) {
        const copy = alignedFrame(n);
        frame.copy(copy);
        frame = copy;
      }
      at += size;
      this.onFrame(frame);
    }
    if (at < chunk.length) {
      const tail = chunk.subarray(at);
      this.parts = [tail];
      this.held = tail.length;
      this.need = tail.length >= RECORD_HEADER_BYTES ? recordBytes(tail, 0, this.maxFrameBytes) : 0;
    }
  }
}
