// The stage wire format: layer packets, verdicts and decisions as binary frames. A frame is
// the whole payload of one gRPC message on the Packets, Verdicts and Decisions streams
// (stage-codec.ts gives grpc-js an identity codec for them: no protobuf, zod or JSON per
// packet). The engine's records (libs/engine messages.ts) are the only declaration of what
// travels; this file only lays them out.
//
// Why binary, and why this layout: the decoder hands the stage typed-array VIEWS over the
// received Buffer (node ids, parents, positions, tokens, hidden states in fp32): nothing is
// copied between receive and ORT. Views need aligned offsets, and grpc-js delivers a message
// that spanned several HTTP/2 DATA frames (every packet with hidden states) at byte 5 of a
// fresh buffer, after its 5-byte length prefix. So every array starts at a frame offset o with
// (o + ALIGN_BIAS) % 8 === 0, ALIGN_BIAS = 5: aligned where grpc-js puts it. A frame found at
// another offset still decodes: each misaligned array is copied (counted in frameStats).
//
// Layout (little-endian; "pad" = zeros up to the next aligned offset as above):
//
//   frame header, 16 bytes
//     0  u32  magic 0x46574450 ("PDWF")
//     4  u8   version (1)
//     5  u8   kind: 1 packets, 2 verdicts, 3 decisions
//     6  u16  segment count (>= 1)
//     8  u32  frame bytes, this header included (a truncated frame is refused)
//     12 u32  frame flags; none defined, a frame with an unknown bit is refused
//   then `segment count` segments, each of one request (so one frame can carry the rows of
//   several requests: a stage that batches requests per timestep sends one frame per hop):
//     0  u32  segment bytes, this word included
//     4  u16  segment flags (per kind, below)
//     6  u16  request id bytes (UTF-8, 1..200)
//     ...     the kind's fixed fields, then its arrays, then extension sections
//
//   packet segment (kind 1), fixed part 64 bytes
//     flags: 1 tokens present, 2 hidden present, 4 hidden is fp16 (else fp32)
//     8 u32 epoch, 12 u32 seq, 16 u32 decisionCount, 20 u32 rows n, 24 u32 hiddenSize,
//     28 u32 trace stages t, 32 f64 temperature, 40 f64 topP, 48 f64 seed, 56 f64 codecMs
//     arrays: request id, i32 nodeIds[n], i32 parentIds[n], i32 positions[n], i32 tokens[n]?,
//             f32 trace computeMs[t], u32 trace rows[t], hidden f32|f16 [n * hiddenSize]?
//   verdict segment (kind 2), fixed part 40 bytes
//     flags: 1 failure
//     8 u32 epoch, 12 u32 seq, 16 u32 rows m, 20 u32 trace stages t, 24 u32 failed stage,
//     28 u32 failure message bytes, 32 f64 codecMs
//     arrays: request id, i32 nodeIds[m], i32 tokens[m], f32 logits[m], f32 computeMs[t],
//             u32 rows[t], failure message (UTF-8)
//   decision segment (kind 3), fixed part 32 bytes
//     flags: 1 release
//     8 u32 epoch, 12 u32 seq, 16 u8 keep mode (0 all, 1 none, 2 list), 17..19 zero,
//     20 i32 upTo, 24 u32 commit count c, 28 u32 keep count k
//     arrays: request id, i32 commit[c], i32 keep[k]
//
//   Extension sections fill the rest of a segment, each at an aligned offset:
//     0 u16 tag, 2 u16 flags (1 = must understand), 4 u32 payload bytes, then the payload.
//   A reader skips a section whose tag it does not know unless it is marked must-understand,
//   then the segment is refused naming the tag. New optional fields (say a sampling or
//   acceptance parameter) go into a new tag without a version bump; a change to the fixed
//   parts bumps the version, and a reader refuses versions it does not know.
//   Defined tags:
//     1 sampling (packets; must-understand, written only when it says more than the fixed
//       part): u8 acceptance (0 exact, 1 distribution), 3 zero bytes, u32 topK (0 = off).
//       Must be understood: a stage that ignored it would sample another distribution.
//     2 sampled distributions (verdicts of distribution-mode packets): u32 vocab, u32 zero,
//       f32 probs[m * vocab] (Verdict.probs). The head's engine refuses a distribution-mode
//       verdict without it (requireDistributions) rather than silently accepting exactly.
//     3 carried decisions (packets; must-understand): the request's decisions that precede the
//       packet (seq < decisionCount) and have not travelled to the stages after the head in an
//       earlier packet. u32 count d, u32 zero, then d records in seq order, each: u32 epoch,
//       u32 seq, u8 keep mode (0 all, 1 none, 2 list), 3 zero bytes, i32 upTo, u32 commit
//       count c, u32 keep count k, i32 commit[c], i32 keep[k]. A stage applies those it has not
//       seen before it runs the packet and passes them on with it, so a decision costs the
//       stages no message of its own (and an idle stage no wake-up). The head carries only
//       commit-only decisions this way; prunes and releases it broadcasts on their own
//       (head/grpc-pipeline.ts). Must be understood: a stage that skipped them would compute over rows the
//       head had already pruned.
//
// Every length is checked against the bytes actually there before any view is made, so a
// malformed, truncated or foreign frame is refused with a FrameError naming what is wrong
// (and the request id and seq when they could be read), never read out of bounds.
import type { Decision, LayerPacket, SamplingParams, Verdict } from '@pipedec/engine';
import { decodeFp16, encodeFp16 } from '@pipedec/model';
import { endianness } from 'node:os';

if (endianness() !== 'LE') {
  // Typed-array views would read big-endian numbers as garbage.
  throw new Error('the stage wire format needs a little-endian host');
}

export const FRAME_MAGIC = 0x46574450;
export const FRAME_VERSION = 1;
export const FRAME_HEADER_BYTES = 16;
/** Arrays are aligned for a frame that sits 5 bytes into an aligned buffer (grpc-js). */
export const ALIGN_BIAS = 5;
const MAX_REQUEST_ID = 200;

export const FrameKind = { Packets: 1, Verdicts: 2, Decisions: 3 } as const;
export type FrameKind = (typeof FrameKind)[keyof typeof FrameKind];

export type WireDtype = 'FP32' | 'FP16';

/** Durations summed over the stages a packet passed, each measured on its own host. */
export interface PacketTrace {
  computeMs: number[]; // [stages passed] each stage's forward time
  rows: number[]; // [stages passed] rows each stage computed
  codecMs: number; // encode + decode of the frames, summed
}

/** A packet with what the transport adds around it. */
export interface PacketEnvelope {
  packet: LayerPacket;
  decisionCount: number; // decisions the head had broadcast before injecting the packet
  trace: PacketTrace;
  /**
   * Decisions carried to the stages after the head (extension 3): the request's decisions
   * with seq < decisionCount that no earlier packet carried, in seq order.
   */
  decisions?: readonly Decision[];
}

export interface VerdictEnvelope {
  verdict: Verdict;
  trace: PacketTrace;
  /** A stage could not compute the packet: the request fails with this. */
  failure?: { stage: number; message: string };
}

export type FrameErrorCode =
  'FRAME_TRUNCATED' | 'FRAME_FOREIGN' | 'FRAME_VERSION' | 'FRAME_INVALID';

/** A frame refused at the boundary; requestId/seq name the request when they could be read. */
export class FrameError extends Error {
  override readonly name = 'FrameError';
  constructor(
    readonly code: FrameErrorCode,
    message: string,
    readonly requestId = '',
    readonly seq = 0,
  ) {
    super(`${code}: ${message}`);
  }
}

/** Decoder counters: frames whose arrays could not be viewed in place and were copied. */
export const frameStats = { frames: 0, copiedArrays: 0 };

export const emptyTrace = (): PacketTrace => ({ computeMs: [], rows: [], codecMs: 0 });

const enc = new TextEncoder();
const dec = new TextDecoder('utf-8', { fatal: true });

/** The aligned offset at or after `o` (see ALIGN_BIAS). */
function align(o: number): number {
  return ((o + ALIGN_BIAS + 7) & ~7) - ALIGN_BIAS;
}

// Encoding ------------------------------------------------------------------------------

interface SegmentPlan {
  bytes: number;
  id: Uint8Array;
}

/** Writes segments into one frame; `plan` sizes a segment, `write` fills it at its offset. */
function encodeFrame<T>(
  kind: FrameKind,
  items: readonly T[],
  plan: (item: T, id: Uint8Array, at: number) => number,
  requestIdOf: (item: T) => string,
  write: (b: Buffer, view: DataView, at: number, item: T, p: SegmentPlan) => void,
): Buffer {
  if (items.length === 0 || items.length > 0xffff) {
    throw new FrameError('FRAME_INVALID', `a frame holds 1..65535 segments, not ${items.length}`);
  }
  const plans: SegmentPlan[] = [];
  let size = FRAME_HEADER_BYTES;
  for (const item of items) {
    const id = enc.encode(requestIdOf(item));
    if (id.length === 0 || id.length > MAX_REQUEST_ID) {
      throw new FrameError('FRAME_INVALID', `request id of ${id.length} bytes (1..200)`);
    }
    size = align(size);
    const bytes = plan(item, id, size);
    plans.push({ bytes, id });
    size += bytes;
  }
  // Zeroed: padding must not leak old memory onto the network.
  const b = Buffer.alloc(size);
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  view.setUint32(0, FRAME_MAGIC, true);
  view.setUint8(4, FRAME_VERSION);
  view.setUint8(5, kind);
  view.setUint16(6, items.length, true);
  view.setUint32(8, size, true);
  let at = FRAME_HEADER_BYTES;
  for (let i = 0; i < items.length; i++) {
    at = align(at);
    view.setUint32(at, plans[i].bytes, true);
    view.setUint16(at + 6, plans[i].id.length, true);
    write(b, view, at, items[i], plans[i]);
    at += plans[i].bytes;
  }
  return b;
}

/** Running offset inside a segment being laid out: fixed part, then aligned arrays. */
class Layout {
  constructor(
    private readonly base: number, // the segment's frame offset
    public end: number, // frame offset after the last placed part
  ) {}
  place(bytes: number): number {
    const at = align(this.end);
    this.end = at + bytes;
    return at;
  }
  get size(): number {
    return this.end - this.base;
  }
}

function putBytes(b: Buffer, at: number, src: Uint8Array | ArrayBufferView): void {
  b.set(new Uint8Array(src.buffer, src.byteOffset, src.byteLength), at);
}

function putNumbers(b: Buffer, at: number, values: readonly number[], kind: 'f32' | 'u32' | 'i32') {
  const arr =
    kind === 'f32'
      ? Float32Array.from(values)
      : kind === 'u32'
        ? Uint32Array.from(values)
        : Int32Array.from(values);
  putBytes(b, at, arr);
}

const PACKET_FIXED = 64;
const EXT_SAMPLING = 1;
const EXT_PROBS = 2;
const EXT_DECISIONS = 3;
const CARRIED_FIXED = 24; // one carried decision's fixed part (extension 3)

/** Payload bytes of extension 3 for `ds`. */
function carriedBytes(ds: readonly Decision[]): number {
  let bytes = 8;
  for (const d of ds) {
    bytes += CARRIED_FIXED + 4 * (d.commit.length + (Array.isArray(d.keep) ? d.keep.length : 0));
  }
  return bytes;
}

/** Whether a packet's sampling needs the sampling extension (tag 1). */
function samplingExt(s: SamplingParams): boolean {
  return s.acceptance === 'distribution' || (s.topK ?? 0) > 0;
}

/** Writes an extension section's 8-byte header at `at`. */
function putExtension(v: DataView, at: number, tag: number, flags: number, bytes: number): void {
  v.setUint16(at, tag, true);
  v.setUint16(at + 2, flags, true);
  v.setUint32(at + 4, bytes, true);
}
const VERDICT_FIXED = 40;
const DECISION_FIXED = 32;

/** One frame holding `envs` (one segment each, in order). */
export function encodePackets(envs: readonly PacketEnvelope[], dtype: WireDtype): Buffer {
  const hiddenBytes = (p: LayerPacket) =>
    p.hidden ? p.hidden.length * (dtype === 'FP16' ? 2 : 4) : 0;
  const layout = (at: number, env: PacketEnvelope, idLen: number) => {
    const p = env.packet;
    const n = p.nodeIds.length;
    const t = env.trace.computeMs.length;
    const l = new Layout(at, at + PACKET_FIXED);
    return {
      id: l.place(idLen),
      nodeIds: l.place(4 * n),
      parentIds: l.place(4 * n),
      positions: l.place(4 * n),
      tokens: p.tokens ? l.place(4 * n) : 0,
      computeMs: l.place(4 * t),
      rows: l.place(4 * t),
      hidden: p.hidden ? l.place(hiddenBytes(p)) : 0,
      samplingExt: samplingExt(p.sampling) ? l.place(16) : 0,
      decisionsExt: env.decisions?.length ? l.place(8 + carriedBytes(env.decisions)) : 0,
      size: l.size,
    };
  };
  return encodeFrame(
    FrameKind.Packets,
    envs,
    (env, id, at) => layout(at, env, id.length).size,
    (env) => env.packet.requestId,
    (b, v, at, env, plan) => {
      const p = env.packet;
      const n = p.nodeIds.length;
      checkRows(p, n);
      const o = layout(at, env, plan.id.length);
      const hiddenSize = p.hidden && n > 0 ? p.hidden.length / n : 0;
      if (p.hidden && !Number.isInteger(hiddenSize)) {
        throw new FrameError('FRAME_INVALID', `${p.hidden.length} hidden values for ${n} rows`);
      }
      v.setUint16(
        at + 4,
        (p.tokens ? 1 : 0) | (p.hidden ? 2 : 0) | (p.hidden && dtype === 'FP16' ? 4 : 0),
        true,
      );
      v.setUint32(at + 8, p.epoch, true);
      v.setUint32(at + 12, p.seq, true);
      v.setUint32(at + 16, env.decisionCount, true);
      v.setUint32(at + 20, n, true);
      v.setUint32(at + 24, hiddenSize, true);
      v.setUint32(at + 28, env.trace.computeMs.length, true);
      v.setFloat64(at + 32, p.sampling.temperature, true);
      v.setFloat64(at + 40, p.sampling.topP, true);
      v.setFloat64(at + 48, p.sampling.seed, true);
      v.setFloat64(at + 56, env.trace.codecMs, true);
      b.set(plan.id, o.id);
      putBytes(b, o.nodeIds, p.nodeIds);
      putBytes(b, o.parentIds, p.parentIds);
      putBytes(b, o.positions, p.positions);
      if (p.tokens) putBytes(b, o.tokens, p.tokens);
      putNumbers(b, o.computeMs, env.trace.computeMs, 'f32');
      putNumbers(b, o.rows, env.trace.rows, 'u32');
      if (p.hidden) {
        if (dtype === 'FP16') {
          // Encode straight into the frame when aligned (it is: align() is 8-byte granular).
          const at16 = b.byteOffset + o.hidden;
          if (at16 % 2 === 0)
            encodeFp16(p.hidden, new Uint16Array(b.buffer, at16, p.hidden.length));
          else putBytes(b, o.hidden, encodeFp16(p.hidden));
        } else {
          putBytes(b, o.hidden, p.hidden);
        }
      }
      if (o.samplingExt) {
        putExtension(v, o.samplingExt, EXT_SAMPLING, 1, 8);
        v.setUint8(o.samplingExt + 8, p.sampling.acceptance === 'distribution' ? 1 : 0);
        v.setUint32(o.samplingExt + 12, p.sampling.topK ?? 0, true);
      }
      if (o.decisionsExt) putCarried(v, o.decisionsExt, env.decisions!);
    },
  );
}

/** Writes extension 3 (header and payload) at `at`. */
function putCarried(v: DataView, at: number, ds: readonly Decision[]): void {
  putExtension(v, at, EXT_DECISIONS, 1, carriedBytes(ds));
  v.setUint32(at + 8, ds.length, true);
  let o = at + 16;
  for (const d of ds) {
    if (d.release) throw new FrameError('FRAME_INVALID', 'a release is not carried in a packet');
    const keep = Array.isArray(d.keep) ? d.keep : [];
    v.setUint32(o, d.epoch, true);
    v.setUint32(o + 4, d.seq, true);
    v.setUint8(o + 8, Array.isArray(d.keep) ? 2 : KEEP_MODE[d.keep]);
    v.setInt32(o + 12, d.upTo, true);
    v.setUint32(o + 16, d.commit.length, true);
    v.setUint32(o + 20, keep.length, true);
    o += CARRIED_FIXED;
    for (const ids of [d.commit, keep]) {
      for (const id of ids) {
        v.setInt32(o, id, true);
        o += 4;
      }
    }
  }
}

export function encodeVerdicts(envs: readonly VerdictEnvelope[]): Buffer {
  const layout = (at: number, env: VerdictEnvelope, idLen: number, msgLen: number) => {
    const m = env.verdict.nodeIds.length;
    const t = env.trace.computeMs.length;
    const l = new Layout(at, at + VERDICT_FIXED);
    return {
      id: l.place(idLen),
      nodeIds: l.place(4 * m),
      tokens: l.place(4 * m),
      logits: l.place(4 * m),
      computeMs: l.place(4 * t),
      rows: l.place(4 * t),
      message: l.place(msgLen),
      probs: env.verdict.probs ? l.place(16 + 4 * env.verdict.probs.length) : 0,
      size: l.size,
    };
  };
  const messages = envs.map((e) => (e.failure ? enc.encode(e.failure.message) : new Uint8Array(0)));
  let i = 0;
  let j = 0;
  return encodeFrame(
    FrameKind.Verdicts,
    envs,
    (env, id, at) => layout(at, env, id.length, messages[i++].length).size,
    (env) => env.verdict.requestId,
    (b, v, at, env, plan) => {
      const msg = messages[j++];
      const r = env.verdict;
      const m = r.nodeIds.length;
      if (r.tokens.length !== m || r.logits.length !== m) {
        throw new FrameError(
          'FRAME_INVALID',
          `verdict: ${m} node ids, ${r.tokens.length} tokens, ${r.logits.length} logits`,
        );
      }
      const o = layout(at, env, plan.id.length, msg.length);
      v.setUint16(at + 4, env.failure ? 1 : 0, true);
      v.setUint32(at + 8, r.epoch, true);
      v.setUint32(at + 12, r.seq, true);
      v.setUint32(at + 16, m, true);
      v.setUint32(at + 20, env.trace.computeMs.length, true);
      v.setUint32(at + 24, env.failure?.stage ?? 0, true);
      v.setUint32(at + 28, msg.length, true);
      v.setFloat64(at + 32, env.trace.codecMs, true);
      b.set(plan.id, o.id);
      putBytes(b, o.nodeIds, r.nodeIds);
      putBytes(b, o.tokens, r.tokens);
      putBytes(b, o.logits, r.logits);
      putNumbers(b, o.computeMs, env.trace.computeMs, 'f32');
      putNumbers(b, o.rows, env.trace.rows, 'u32');
      b.set(msg, o.message);
      if (r.probs) {
        const vocab = m > 0 ? r.probs.length / m : 0;
        if (!Number.isInteger(vocab)) {
          throw new FrameError('FRAME_INVALID', `${r.probs.length} probabilities for ${m} rows`);
        }
        putExtension(v, o.probs, EXT_PROBS, 0, 8 + 4 * r.probs.length);
        v.setUint32(o.probs + 8, vocab, true);
        putBytes(b, o.probs + 16, r.probs);
      }
    },
  );
}

const KEEP_MODE = { all: 0, none: 1 } as const;

export function encodeDecisions(ds: readonly Decision[]): Buffer {
  const layout = (at: number, d: Decision, idLen: number) => {
    const l = new Layout(at, at + DECISION_FIXED);
    return {
      id: l.place(idLen),
      commit: l.place(4 * d.commit.length),
      keep: l.place(4 * (Array.isArray(d.keep) ? d.keep.length : 0)),
      size: l.size,
    };
  };
  return encodeFrame(
    FrameKind.Decisions,
    ds,
    (d, id, at) => layout(at, d, id.length).size,
    (d) => d.requestId,
    (b, v, at, d, plan) => {
      const o = layout(at, d, plan.id.length);
      const keep = Array.isArray(d.keep) ? d.keep : [];
      v.setUint16(at + 4, d.release ? 1 : 0, true);
      v.setUint32(at + 8, d.epoch, true);
      v.setUint32(at + 12, d.seq, true);
      v.setUint8(at + 16, Array.isArray(d.keep) ? 2 : KEEP_MODE[d.keep]);
      v.setInt32(at + 20, d.upTo, true);
      v.setUint32(at + 24, d.commit.length, true);
      v.setUint32(at + 28, keep.length, true);
      b.set(plan.id, o.id);
      putNumbers(b, o.commit, d.commit, 'i32');
      putNumbers(b, o.keep, keep, 'i32');
    },
  );
}

function checkRows(p: LayerPacket, n: number): void {
  if (p.parentIds.length !== n || p.positions.length !== n || (p.tokens && p.tokens.length !== n)) {
    throw new FrameError(
      'FRAME_INVALID',
      `packet ${p.requestId}#${p.seq}: ${n} node ids, ${p.parentIds.length} parents, ` +
        `${p.positions.length} positions, ${p.tokens?.length ?? 0} tokens`,
      p.requestId,
      p.seq,
    );
  }
}

// Decoding ------------------------------------------------------------------------------

/** Reads one frame's segments, checking every length against the bytes there. */
class Reader {
  readonly view: DataView;
  requestId = '';
  seq = 0;

  constructor(
    readonly buf: Uint8Array,
    readonly what: string,
  ) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  fail(code: FrameErrorCode, message: string): never {
    const who = this.requestId ? ` (request ${this.requestId}#${this.seq})` : '';
    throw new FrameError(code, `${this.what}${who}: ${message}`, this.requestId, this.seq);
  }

  /** Checks the header; returns the segment count. */
  header(kind: FrameKind): number {
    const b = this.buf;
    if (b.byteLength < FRAME_HEADER_BYTES) {
      this.fail('FRAME_TRUNCATED', `${b.byteLength} bytes, shorter than the 16-byte header`);
    }
    const v = this.view;
    if (v.getUint32(0, true) !== FRAME_MAGIC) {
      this.fail(
        'FRAME_FOREIGN',
        `not a stage frame (magic 0x${v.getUint32(0, true).toString(16)})`,
      );
    }
    const version = v.getUint8(4);
    if (version !== FRAME_VERSION) {
      this.fail('FRAME_VERSION', `frame version ${version}, this stage reads ${FRAME_VERSION}`);
    }
    if (v.getUint8(5) !== kind) {
      this.fail('FRAME_INVALID', `frame kind ${v.getUint8(5)} on a stream of kind ${kind}`);
    }
    const total = v.getUint32(8, true);
    if (total !== b.byteLength) {
      this.fail(
        total > b.byteLength ? 'FRAME_TRUNCATED' : 'FRAME_INVALID',
        `header says ${total} bytes, received ${b.byteLength}`,
      );
    }
    const flags = v.getUint32(12, true);
    if (flags !== 0) this.fail('FRAME_INVALID', `unknown frame flags 0x${flags.toString(16)}`);
    const count = v.getUint16(6, true);
    if (count === 0) this.fail('FRAME_INVALID', 'no segments');
    return count;
  }

  /** Checks the bounds of the segment at `at`; returns its end and flags. */
  segment(at: number, fixed: number): { end: number; flags: number } {
    this.requestId = '';
    this.seq = 0;
    const b = this.buf;
    if (at + fixed > b.byteLength) {
      this.fail(
        'FRAME_TRUNCATED',
        `segment at byte ${at} needs ${fixed} bytes, frame has ${b.byteLength}`,
      );
    }
    const v = this.view;
    // Name the request in any refusal from here on, when its id is there to read.
    const idLen = v.getUint16(at + 6, true);
    const idAt = align(at + fixed);
    if (idLen > 0 && idLen <= MAX_REQUEST_ID && idAt + idLen <= b.byteLength) {
      try {
        this.requestId = dec.decode(b.subarray(idAt, idAt + idLen));
        this.seq = v.getUint32(at + 12, true);
      } catch {
        // Not UTF-8: id() refuses it below.
      }
    }
    const bytes = v.getUint32(at, true);
    if (bytes < fixed || at + bytes > b.byteLength) {
      this.fail(
        'FRAME_TRUNCATED',
        `segment at byte ${at} claims ${bytes} bytes of ${b.byteLength - at} left`,
      );
    }
    const flags = v.getUint16(at + 4, true);
    return { end: at + bytes, flags };
  }

  id(at: number, len: number, end: number): string {
    if (len === 0 || len > MAX_REQUEST_ID)
      this.fail('FRAME_INVALID', `request id of ${len} bytes (1..200)`);
    this.within(at, len, end, 'request id');
    if (this.requestId === '') this.fail('FRAME_INVALID', 'request id is not UTF-8');
    return this.requestId;
  }

  within(at: number, bytes: number, end: number, field: string): void {
    if (at + bytes > end) {
      this.fail(
        'FRAME_TRUNCATED',
        `${field} (${bytes} bytes at ${at}) runs past the segment end ${end}`,
      );
    }
  }

  count(value: number, perItem: number, field: string): number {
    // A count whose bytes could not fit in any frame: refuse before multiplying into overflow.
    if (value * perItem > this.buf.byteLength) {
      this.fail('FRAME_TRUNCATED', `${field} count ${value} needs more bytes than the frame holds`);
    }
    return value;
  }

  i32(at: number, n: number, end: number, field: string): Int32Array {
    this.within(at, 4 * n, end, field);
    const abs = this.buf.byteOffset + at;
    if (abs % 4 === 0) return new Int32Array(this.buf.buffer, abs, n);
    frameStats.copiedArrays++;
    return new Int32Array(copy(this.buf, at, 4 * n));
  }

  u32s(at: number, n: number, end: number, field: string): number[] {
    this.within(at, 4 * n, end, field);
    const out: number[] = new Array<number>(n);
    for (let i = 0; i < n; i++) out[i] = this.view.getUint32(at + 4 * i, true);
    return out;
  }

  f32s(at: number, n: number, end: number, field: string): number[] {
    this.within(at, 4 * n, end, field);
    const out: number[] = new Array<number>(n);
    for (let i = 0; i < n; i++) out[i] = this.view.getFloat32(at + 4 * i, true);
    return out;
  }

  f32(at: number, n: number, end: number, field: string): Float32Array {
    this.within(at, 4 * n, end, field);
    const abs = this.buf.byteOffset + at;
    if (abs % 4 === 0) return new Float32Array(this.buf.buffer, abs, n);
    frameStats.copiedArrays++;
    return new Float32Array(copy(this.buf, at, 4 * n));
  }

  f16(at: number, n: number, end: number, field: string): Float32Array {
    this.within(at, 2 * n, end, field);
    const abs = this.buf.byteOffset + at;
    if (abs % 2 === 0) return decodeFp16(new Uint16Array(this.buf.buffer, abs, n));
    frameStats.copiedArrays++;
    return decodeFp16(new Uint16Array(copy(this.buf, at, 2 * n)));
  }

  /**
   * Walks the extension sections in [at, end): hands a known tag's payload (offset, bytes) to
   * its reader; skips the unknown, refuses an unknown must-understand.
   */
  extensions(
    at: number,
    end: number,
    known: Record<number, (payload: number, bytes: number) => void> = {},
  ): void {
    for (let o = align(at); o < end;) {
      if (o + 8 > end) this.fail('FRAME_INVALID', `${end - at} stray bytes after the fields`);
      const tag = this.view.getUint16(o, true);
      const flags = this.view.getUint16(o + 2, true);
      const bytes = this.view.getUint32(o + 4, true);
      this.within(o + 8, bytes, end, `extension ${tag}`);
      const read = known[tag];
      if (read) read(o + 8, bytes);
      else if (flags & 1)
        this.fail(
          'FRAME_INVALID',
          `extension ${tag} must be understood; this stage does not know it`,
        );
      o = align(o + 8 + bytes);
    }
  }
}

function copy(buf: Uint8Array, at: number, bytes: number): ArrayBuffer {
  const out = new ArrayBuffer(bytes);
  new Uint8Array(out).set(buf.subarray(at, at + bytes));
  return out;
}

function segments(r: Reader, kind: FrameKind, each: (at: number) => number): void {
  const count = r.header(kind);
  let at = FRAME_HEADER_BYTES;
  for (let i = 0; i < count; i++) {
    at = align(at);
    at = each(at);
  }
  if (at !== r.buf.byteLength) {
    r.fail('FRAME_INVALID', `${r.buf.byteLength - at} bytes after the last of ${count} segments`);
  }
}

function unknownFlags(r: Reader, flags: number, known: number): void {
  if (flags & ~known)
    r.fail('FRAME_INVALID', `unknown segment flags 0x${(flags & ~known).toString(16)}`);
}

export function decodePackets(buf: Uint8Array): PacketEnvelope[] {
  frameStats.frames++;
  const r = new Reader(buf, 'packet frame');
  const v = r.view;
  const out: PacketEnvelope[] = [];
  segments(r, FrameKind.Packets, (at) => {
    const { end, flags } = r.segment(at, PACKET_FIXED);
    const l = new Layout(at, at + PACKET_FIXED);
    const requestId = r.id(l.place(v.getUint16(at + 6, true)), v.getUint16(at + 6, true), end);
    r.seq = v.getUint32(at + 12, true);
    unknownFlags(r, flags, 7);
    const n = r.count(v.getUint32(at + 20, true), 12, 'row');
    const hiddenSize = v.getUint32(at + 24, true);
    const t = r.count(v.getUint32(at + 28, true), 8, 'trace stage');
    const sampling: SamplingParams = {
      temperature: v.getFloat64(at + 32, true),
      topP: v.getFloat64(at + 40, true),
      seed: v.getFloat64(at + 48, true),
    };
    checkSampling(r, sampling);
    const decisionCount = v.getUint32(at + 16, true);
    let decisions: Decision[] | undefined;
    const packet: LayerPacket = {
      requestId,
      epoch: v.getUint32(at + 8, true),
      seq: r.seq,
      nodeIds: r.i32(l.place(4 * n), n, end, 'node ids'),
      parentIds: r.i32(l.place(4 * n), n, end, 'parent ids'),
      positions: r.i32(l.place(4 * n), n, end, 'positions'),
      sampling,
    };
    if (flags & 1) packet.tokens = r.i32(l.place(4 * n), n, end, 'tokens');
    const trace: PacketTrace = {
      computeMs: r.f32s(l.place(4 * t), t, end, 'trace compute'),
      rows: r.u32s(l.place(4 * t), t, end, 'trace rows'),
      codecMs: v.getFloat64(at + 56, true),
    };
    if (flags & 2) {
      const fp16 = (flags & 4) !== 0;
      const count = r.count(n * hiddenSize, fp16 ? 2 : 4, 'hidden value');
      if (n > 0 && hiddenSize === 0)
        r.fail('FRAME_INVALID', `hidden states of width 0 for ${n} rows`);
      const o = l.place(count * (fp16 ? 2 : 4));
      packet.hidden = fp16 ? r.f16(o, count, end, 'hidden') : r.f32(o, count, end, 'hidden');
    } else if (flags & 4) {
      r.fail('FRAME_INVALID', 'fp16 flag without hidden states');
    }
    r.extensions(l.end, end, {
      [EXT_SAMPLING]: (o, bytes) => {
        if (bytes !== 8) r.fail('FRAME_INVALID', `sampling extension of ${bytes} bytes (8)`);
        const acceptance = v.getUint8(o);
        if (acceptance > 1)
          r.fail('FRAME_INVALID', `acceptance ${acceptance} (0 exact, 1 distribution)`);
        if (acceptance === 1) sampling.acceptance = 'distribution';
        const topK = v.getUint32(o + 4, true);
        if (topK > 0) sampling.topK = topK;
      },
      [EXT_DECISIONS]: (o, bytes) => {
        decisions = readCarried(r, o, bytes, requestId, decisionCount);
      },
    });
    const env: PacketEnvelope = { packet, decisionCount, trace };
    if (decisions) env.decisions = decisions;
    out.push(env);
    return end;
  });
  return out;
}

/**
 * Extension 3's decisions: every length checked against the payload, seqs consecutive and
 * below the packet's decisionCount (a decision can only precede the packet that carries it).
 */
function readCarried(
  r: Reader,
  at: number,
  bytes: number,
  requestId: string,
  decisionCount: number,
): Decision[] {
  const v = r.view;
  const end = at + bytes;
  r.within(at, 8, end, 'carried decisions');
  const count = r.count(v.getUint32(at, true), CARRIED_FIXED, 'carried decision');
  const out: Decision[] = [];
  let o = at + 8;
  for (let i = 0; i < count; i++) {
    r.within(o, CARRIED_FIXED, end, 'carried decision');
    const seq = v.getUint32(o + 4, true);
    const mode = v.getUint8(o + 8);
    if (mode > 2)
      r.fail('FRAME_INVALID', `carried decision keep mode ${mode} (0 all, 1 none, 2 list)`);
    const c = r.count(v.getUint32(o + 16, true), 4, 'carried commit');
    const k = r.count(v.getUint32(o + 20, true), 4, 'carried keep');
    if (mode !== 2 && k !== 0) {
      r.fail('FRAME_INVALID', `carried decision with ${k} kept rows and keep mode ${mode}`);
    }
    if (seq >= decisionCount || (i > 0 && seq !== out[i - 1].seq + 1)) {
      r.fail(
        'FRAME_INVALID',
        `carried decision seq ${seq}: seqs must run consecutively below the packet's decision count ${decisionCount}`,
      );
    }
    const commit = Array.from(r.i32(o + CARRIED_FIXED, c, end, 'carried commit'));
    const keepList = Array.from(r.i32(o + CARRIED_FIXED + 4 * c, k, end, 'carried keep'));
    out.push({
      requestId,
      epoch: v.getUint32(o, true),
      seq,
      commit,
      keep: mode === 0 ? 'all' : mode === 1 ? 'none' : keepList,
      upTo: v.getInt32(o + 12, true),
    });
    o += CARRIED_FIXED + 4 * (c + k);
  }
  if (o !== end) r.fail('FRAME_INVALID', `${end - o} stray bytes after the carried decisions`);
  return out;
}

function checkSampling(r: Reader, s: SamplingParams): void {
  if (!(s.temperature >= 0) || !Number.isFinite(s.temperature)) {
    r.fail('FRAME_INVALID', `sampling temperature ${s.temperature} (>= 0)`);
  }
  if (!(s.topP > 0 && s.topP <= 1)) r.fail('FRAME_INVALID', `sampling topP ${s.topP} (0, 1]`);
  if (!Number.isSafeInteger(s.seed) || s.seed < 0) {
    r.fail('FRAME_INVALID', `sampling seed ${s.seed} (an integer in [0, 2^53))`);
  }
}

export function decodeVerdicts(buf: Uint8Array): VerdictEnvelope[] {
  frameStats.frames++;
  const r = new Reader(buf, 'verdict frame');
  const v = r.view;
  const out: VerdictEnvelope[] = [];
  segments(r, FrameKind.Verdicts, (at) => {
    const { end, flags } = r.segment(at, VERDICT_FIXED);
    const l = new Layout(at, at + VERDICT_FIXED);
    const idLen = v.getUint16(at + 6, true);
    const requestId = r.id(l.place(idLen), idLen, end);
    r.seq = v.getUint32(at + 12, true);
    unknownFlags(r, flags, 1);
    const m = r.count(v.getUint32(at + 16, true), 12, 'row');
    const t = r.count(v.getUint32(at + 20, true), 8, 'trace stage');
    const msgLen = r.count(v.getUint32(at + 28, true), 1, 'message byte');
    const verdict: Verdict = {
      requestId,
      epoch: v.getUint32(at + 8, true),
      seq: r.seq,
      nodeIds: r.i32(l.place(4 * m), m, end, 'node ids'),
      tokens: r.i32(l.place(4 * m), m, end, 'tokens'),
      logits: r.f32(l.place(4 * m), m, end, 'logits'),
    };
    const env: VerdictEnvelope = {
      verdict,
      trace: {
        computeMs: r.f32s(l.place(4 * t), t, end, 'trace compute'),
        rows: r.u32s(l.place(4 * t), t, end, 'trace rows'),
        codecMs: v.getFloat64(at + 32, true),
      },
    };
    const mo = l.place(msgLen);
    r.within(mo, msgLen, end, 'failure message');
    if (flags & 1) {
      env.failure = {
        stage: v.getUint32(at + 24, true),
        message: Buffer.from(buf.buffer, buf.byteOffset + mo, msgLen).toString('utf8'),
      };
    }
    r.extensions(l.end, end, {
      [EXT_PROBS]: (o, bytes) => {
        const vocab = v.getUint32(o, true);
        const count = r.count((bytes - 8) / 4, 4, 'probability');
        if (bytes < 8 || !Number.isInteger(count) || count !== m * vocab) {
          r.fail('FRAME_INVALID', `${bytes} bytes of probabilities for ${m} rows of ${vocab}`);
        }
        verdict.probs = r.f32(o + 8, count, end, 'probabilities');
      },
    });
    out.push(env);
    return end;
  });
  return out;
}

export function decodeDecisions(buf: Uint8Array): Decision[] {
  frameStats.frames++;
  const r = new Reader(buf, 'decision frame');
  const v = r.view;
  const out: Decision[] = [];
  segments(r, FrameKind.Decisions, (at) => {
    const { end, flags } = r.segment(at, DECISION_FIXED);
    const l = new Layout(at, at + DECISION_FIXED);
    const idLen = v.getUint16(at + 6, true);
    const requestId = r.id(l.place(idLen), idLen, end);
    r.seq = v.getUint32(at + 12, true);
    unknownFlags(r, flags, 1);
    const mode = v.getUint8(at + 16);
    if (mode > 2) r.fail('FRAME_INVALID', `keep mode ${mode} (0 all, 1 none, 2 list)`);
    const c = r.count(v.getUint32(at + 24, true), 4, 'commit');
    const k = r.count(v.getUint32(at + 28, true), 4, 'keep');
    if (mode !== 2 && k !== 0) r.fail('FRAME_INVALID', `${k} kept rows with keep mode ${mode}`);
    const commit = Array.from(r.i32(l.place(4 * c), c, end, 'commit'));
    const keepList = Array.from(r.i32(l.place(4 * k), k, end, 'keep'));
    const d: Decision = {
      requestId,
      epoch: v.getUint32(at + 8, true),
      seq: r.seq,
      commit,
      keep: mode === 0 ? 'all' : mode === 1 ? 'none' : keepList,
      upTo: v.getInt32(at + 20, true),
    };
    if (flags & 1) d.release = true;
    r.extensions(l.end, end);
    out.push(d);
    return end;
  });
  return out;
}

/** The hidden-state dtype of a packet frame's first segment (FP32 when it has none). */
export function packetFrameDtype(buf: Uint8Array): WireDtype {
  const at = align(FRAME_HEADER_BYTES);
  if (buf.byteLength < at + 6) return 'FP32';
  return buf[at + 4] & 4 ? 'FP16' : 'FP32';
}

/** Adds `ms` to the codec time of every segment of an encoded packet frame (its own encode). */
export function addCodecMs(frame: Buffer, ms: number): void {
  const v = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  let at = FRAME_HEADER_BYTES;
  for (let i = v.getUint16(6, true); i > 0; i--) {
    at = align(at);
    v.setFloat64(at + 56, v.getFloat64(at + 56, true) + ms, true);
    at += v.getUint32(at, true);
  }
}
